package progress_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cachectl/cachectl/providers/progress"
)

// A build reports start, throttled progress with the stream's bytes against
// the estimate, and done with the final count, to each kind of sink; the
// lines show rate and ETA, the bars a "build" bar that is not counted in
// the overall download bar.
func TestBuilds(t *testing.T) {
	rec := &recordSink{}
	var lines, bars bytes.Buffer
	ls := progress.NewLines(&lines)
	b := progress.NewBuilds(progress.Multi(rec, ls, progress.NewBars(&bars)), time.Hour)
	if b.Callback("cache.sif[\"x:1\"]") != nil {
		t.Fatal("a callback for a build never begun")
	}
	b.Begin(`cache.sif["x:1"]`, "sif")
	cb := b.Callback(`cache.sif["x:1"]`)
	cb(0, 100)
	cb(10, 100) // first bytes: reported
	cb(20, 100) // within the interval: not
	cb(150, 100)
	b.End(`cache.sif["x:1"]`, "")
	b.End(`cache.sif["x:1"]`, "") // twice: ignored
	b.Begin(`cache.sqsh["y:1"]`, "sqsh")
	b.End(`cache.sqsh["y:1"]`, "mksquashfs: exit status 1")

	var got []string
	for _, e := range rec.events {
		if e.Kind != progress.KindBuild {
			t.Errorf("kind %q", e.Kind)
		}
		got = append(got, string(e.Type)+" "+e.Address)
	}
	want := []string{`start cache.sif["x:1"]`, `progress cache.sif["x:1"]`, `done cache.sif["x:1"]`, `start cache.sqsh["y:1"]`, `error cache.sqsh["y:1"]`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events %q, want %q", got, want)
	}
	if p := rec.events[1]; p.Current != 10 || p.Total != 100 || p.Format != "sif" || p.ID != `build cache.sif["x:1"]` {
		t.Errorf("progress event %+v", p)
	}
	if d := rec.events[2]; d.Current != 150 || d.Total != 150 {
		t.Errorf("done event %+v: the final count is the last written, the total at least that", d)
	}
	if e := rec.events[4]; e.Err != "mksquashfs: exit status 1" {
		t.Errorf("error event %+v", e)
	}
	progress.Close(progress.Multi(rec, ls))
	for _, want := range []string{`cache.sif["x:1"]: building sif`, `cache.sif["x:1"]: built sif from 150 B of root file system in 0s`} {
		if !strings.Contains(lines.String(), want) {
			t.Errorf("lines lack %q:\n%s", want, lines.String())
		}
	}
}

// Lines: a progress line at most every 10 s per build, with rate and ETA.
func TestBuildLinesRateETA(t *testing.T) {
	var out bytes.Buffer
	s := progress.NewLines(&out)
	t0 := time.Unix(1000, 0)
	ev := func(typ progress.Type, at time.Duration, cur, tot int64) {
		s.Event(progress.Event{Type: typ, Kind: progress.KindBuild, ID: "build a", Address: "a", Format: "sqsh", Current: cur, Total: tot, Time: t0.Add(at)})
	}
	ev(progress.Start, 0, 0, 0)
	ev(progress.Progress, 5*time.Second, 50<<20, 200<<20) // too soon
	ev(progress.Progress, 10*time.Second, 100<<20, 200<<20)
	ev(progress.Done, 20*time.Second, 200<<20, 200<<20)
	want := regexp.MustCompile(`(?m)^a: building sqsh: 100\.0 MiB / about 200\.0 MiB of the root file system, 10\.0 MiB/s, ETA 10s$`)
	if !want.MatchString(out.String()) || strings.Count(out.String(), "\n") != 3 {
		t.Errorf("lines:\n%s", out.String())
	}
}
