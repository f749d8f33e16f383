package progress

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// NewJSON returns a sink that writes one JSON object per event and line to w
// (the --progress=json stream). Progress events are passed through as they
// come; producers throttle them.
func NewJSON(w io.Writer) Sink {
	return &jsonSink{w: &lockedWriter{w: w}}
}

type jsonSink struct{ w *lockedWriter }

func (j *jsonSink) Event(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	j.w.write(append(b, '\n'))
}

// NewLines returns a sink that writes plain log lines to w, for output that
// is not a terminal: one line when a transfer or build starts, ends or
// fails, and a progress line at most every 5 seconds per transfer (every
// 10 seconds per build, with rate and ETA).
func NewLines(w io.Writer) Sink {
	return &lineSink{w: &lockedWriter{w: w}, last: map[string]time.Time{}, began: map[string]time.Time{},
		every: 5 * time.Second, buildEvery: 10 * time.Second}
}

type lineSink struct {
	w          *lockedWriter
	mu         sync.Mutex
	last       map[string]time.Time
	began      map[string]time.Time // builds
	every      time.Duration
	buildEvery time.Duration
}

func (l *lineSink) Event(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Kind == KindBuild {
		l.build(e)
		return
	}
	name := shortID(e)
	var line string
	switch e.Type {
	case Start:
		l.mu.Lock()
		l.last[e.ID] = e.Time
		l.mu.Unlock()
		line = fmt.Sprintf("%s: downloading %s (%s)", refOr(e), name, FormatBytes(e.Total))
	case Progress:
		l.mu.Lock()
		t, ok := l.last[e.ID]
		due := !ok || e.Time.Sub(t) >= l.every
		if due {
			l.last[e.ID] = e.Time
		}
		l.mu.Unlock()
		if !due {
			return
		}
		line = fmt.Sprintf("%s: %s %s / %s", refOr(e), name, FormatBytes(e.Current), FormatBytes(e.Total))
	case Done:
		l.forget(e.ID)
		line = fmt.Sprintf("%s: downloaded %s (%s)", refOr(e), name, FormatBytes(e.Current))
	case Error:
		l.forget(e.ID)
		line = fmt.Sprintf("%s: failed %s: %s", refOr(e), name, e.Err)
	default:
		return
	}
	l.w.write([]byte(line + "\n"))
}

// build writes the lines of a build: started, progress every buildEvery
// (bytes of the root file system stream against the estimate, rate, ETA),
// built.
func (l *lineSink) build(e Event) {
	l.mu.Lock()
	began, ok := l.began[e.ID]
	var line string
	switch e.Type {
	case Start:
		l.began[e.ID], l.last[e.ID] = e.Time, e.Time
		line = fmt.Sprintf("%s: building %s", e.Address, e.Format)
	case Progress:
		if !ok || e.Time.Sub(l.last[e.ID]) < l.buildEvery {
			l.mu.Unlock()
			return
		}
		l.last[e.ID] = e.Time
		line = fmt.Sprintf("%s: building %s: %s / about %s of the root file system%s", e.Address, e.Format,
			FormatBytes(e.Current), FormatBytes(e.Total), rateETA(e.Current, e.Total, e.Time.Sub(began)))
	case Done:
		line = fmt.Sprintf("%s: built %s", e.Address, e.Format)
		if e.Current > 0 {
			line += fmt.Sprintf(" from %s of root file system", FormatBytes(e.Current))
		}
		if ok {
			line += " in " + e.Time.Sub(began).Round(time.Second).String()
		}
	default: // a failed build: the apply's own line says why
	}
	if e.Type == Done || e.Type == Error {
		delete(l.began, e.ID)
		delete(l.last, e.ID)
	}
	l.mu.Unlock()
	if line != "" {
		l.w.write([]byte(line + "\n"))
	}
}

// rateETA renders ", 12.0 MiB/s, ETA 1m5s" for cur of total bytes done in d.
func rateETA(cur, total int64, d time.Duration) string {
	if d <= 0 || cur <= 0 {
		return ""
	}
	rate := float64(cur) / d.Seconds()
	s := fmt.Sprintf(", %s/s", FormatBytes(int64(rate)))
	if total > cur {
		s += ", ETA " + time.Duration(float64(total-cur)/rate*float64(time.Second)).Round(time.Second).String()
	}
	return s
}

func (l *lineSink) forget(id string) {
	l.mu.Lock()
	delete(l.last, id)
	l.mu.Unlock()
}

func refOr(e Event) string {
	if e.Ref != "" {
		return e.Ref
	}
	return "pull"
}

// shortID names a transfer by the first 12 hex digits of its digest.
func shortID(e Event) string {
	s := e.Digest
	if s == "" {
		s = e.ID
	}
	if len(s) > 7+12 && s[:7] == "sha256:" {
		return s[7 : 7+12]
	}
	return s
}

// FormatBytes renders n in IEC units ("1.5 MiB").
func FormatBytes(n int64) string {
	if n < 0 {
		return "? B"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// NewBars returns a sink that draws progress bars on w (a terminal): one per
// download with bytes, rate and ETA, plus an overall bar. Call Close (or
// progress.Close) when done to flush the output.
func NewBars(w io.Writer) Sink {
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithAutoRefresh())
	b := &barSink{p: p, w: w, bars: map[string]*barState{}}
	b.total = p.AddBar(0,
		mpb.BarPriority(1<<30),
		mpb.PrependDecorators(decor.Name("total ", decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace)),
		mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace), decor.Name(" "), decor.AverageETA(decor.ET_STYLE_GO)),
	)
	return b
}

type barState struct {
	bar     *mpb.Bar
	current int64
	build   bool  // a build bar (not counted in the overall bar)
	total   int64 // a build's estimated total so far
}

// shortAddress shortens an artifact address for a bar's name.
func shortAddress(a string) string {
	const max = 48
	if r := []rune(a); len(r) > max {
		return string(r[:max/2-1]) + "…" + string(r[len(r)-max/2:])
	}
	return a
}

type barSink struct {
	p      *mpb.Progress
	w      io.Writer
	mu     sync.Mutex
	bars   map[string]*barState
	total  *mpb.Bar
	sum    int64 // sum of totals of started transfers
	closed bool
}

func (b *barSink) Event(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	st := b.bars[e.ID]
	switch e.Type {
	case Start:
		if st != nil {
			return
		}
		total := max(e.Total, 0)
		name := shortID(e)
		// Downloads: moving-average rate and ETA; builds, reported a few
		// times a second after a flatten: the average since the start.
		speed := decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30, decor.WCSyncSpace)
		eta := decor.EwmaETA(decor.ET_STYLE_GO, 30)
		if e.Kind == KindBuild {
			name = "build " + e.Format + " " + shortAddress(e.Address)
			speed = decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace)
			eta = decor.AverageETA(decor.ET_STYLE_GO)
		}
		bar := b.p.AddBar(total,
			mpb.BarRemoveOnComplete(),
			mpb.PrependDecorators(decor.Name(name+" ", decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace)),
			mpb.AppendDecorators(speed, decor.Name(" "), eta),
		)
		b.bars[e.ID] = &barState{bar: bar, current: e.Current, build: e.Kind == KindBuild, total: total}
		if e.Kind != KindBuild { // the overall bar counts downloads
			b.sum += total
			b.total.SetTotal(b.sum, false)
		}
	case Progress, Done:
		if st == nil {
			return
		}
		cur := e.Current
		if e.Type == Done && e.Total > 0 && !st.build {
			cur = e.Total
		}
		if st.build && e.Total > st.total && e.Type == Progress {
			st.total = e.Total
			st.bar.SetTotal(e.Total, false)
		}
		if d := cur - st.current; d > 0 {
			if st.build {
				st.bar.IncrInt64(d)
			} else {
				st.bar.EwmaIncrInt64(d, 150*time.Millisecond)
				b.total.IncrInt64(d)
			}
			st.current = cur
		}
		if e.Type == Done {
			st.bar.SetTotal(-1, true)
			delete(b.bars, e.ID)
		}
	case Error:
		if st == nil {
			return
		}
		st.bar.Abort(false)
		delete(b.bars, e.ID)
	}
}

// Println prints a line above the bars.
func (b *barSink) Println(line string) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	// Write waits for the next refresh: never hold b.mu across it.
	if closed {
		fmt.Fprintln(b.w, line)
	} else if _, err := b.p.Write([]byte(line + "\n")); err != nil {
		fmt.Fprintln(b.w, line)
	}
}

// Close completes the overall bar and waits for the final render.
func (b *barSink) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	for id, st := range b.bars {
		st.bar.Abort(false)
		delete(b.bars, id)
	}
	b.total.SetTotal(-1, true)
	b.mu.Unlock()
	b.p.Wait()
}
