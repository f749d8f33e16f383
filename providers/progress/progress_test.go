package progress_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cachectl/cachectl/providers/progress"
)

func TestProgressSinks(t *testing.T) {
	var lines, bars bytes.Buffer
	l := progress.NewLines(&lines)
	b := progress.NewBars(&bars)
	s := progress.Multi(l, nil, b)
	for _, typ := range []progress.Type{progress.Start, progress.Progress, progress.Done} {
		progress.Emit(s, progress.Event{Type: typ, ID: "sha256:0123456789abcdef0123", Digest: "sha256:0123456789abcdef0123", Ref: "x:1", Total: 2048, Current: 2048})
	}
	progress.Emit(s, progress.Event{Type: progress.Start, ID: "e", Ref: "x:1", Total: 10})
	progress.Emit(s, progress.Event{Type: progress.Error, ID: "e", Ref: "x:1", Err: "boom"})
	progress.Emit(nil, progress.Event{Type: progress.Start}) // nil sink is fine
	progress.Close(s)
	got := lines.String()
	for _, want := range []string{"x:1: downloading 0123456789ab (2.0 KiB)", "x:1: downloaded 0123456789ab", "failed e: boom"} {
		if !strings.Contains(got, want) {
			t.Errorf("lines output lacks %q:\n%s", want, got)
		}
	}
	if bars.Len() == 0 {
		t.Error("bars wrote nothing")
	}
}

func TestJSONOneEventPerLine(t *testing.T) {
	var buf bytes.Buffer
	s := progress.NewJSON(&buf)
	progress.Emit(s, progress.Event{Type: progress.Start, ID: "a", Total: 5})
	progress.Emit(s, progress.Event{Type: progress.Done, ID: "a", Current: 5})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	var e progress.Event
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil || e.Type != progress.Done || e.Current != 5 || e.Time.IsZero() {
		t.Errorf("event %+v, %v", e, err)
	}
}

type recordSink struct {
	events []progress.Event
	lines  []string
	closed bool
}

func (r *recordSink) Event(e progress.Event) { r.events = append(r.events, e) }
func (r *recordSink) Println(line string)    { r.lines = append(r.lines, line) }
func (r *recordSink) Close()                 { r.closed = true }

func TestLazyMakesTheSinkAtTheFirstEvent(t *testing.T) {
	var out bytes.Buffer
	made := 0
	rec := &recordSink{}
	s := progress.Lazy(func() progress.Sink { made++; return rec }, &out)
	progress.Println(s, &out, "before any download")
	if made != 0 || out.String() != "before any download\n" {
		t.Fatalf("made=%d out=%q", made, out.String())
	}
	s.Event(progress.Event{Type: progress.Start, ID: "a"})
	s.Event(progress.Event{Type: progress.Done, ID: "a"})
	progress.Println(s, &out, "above the bars")
	progress.Close(s)
	if made != 1 || len(rec.events) != 2 || len(rec.lines) != 1 || !rec.closed {
		t.Fatalf("made=%d rec=%+v", made, rec)
	}
}
