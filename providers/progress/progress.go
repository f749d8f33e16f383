// Package progress carries download progress from the registry client, and
// build progress from the builders (Builds), to whoever shows it: progress
// bars on a terminal (NewBars), plain log lines (NewLines) or a JSON event
// stream for automation (NewJSON).
//
// Producers call Emit, which accepts a nil Sink (no output), so library code
// never needs to check whether anyone is listening.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Type is the kind of an Event.
type Type string

// Event types. A download emits one Start, any number of Progress, and one
// Done or Error.
const (
	Start    Type = "start"
	Progress Type = "progress"
	Done     Type = "done"
	Error    Type = "error"
)

// Kinds of work an Event reports on.
const (
	// KindDownload (the zero value, not written in JSON) is a blob download.
	KindDownload = ""
	// KindBuild is an artifact build: Current counts the bytes of the
	// flattened root file system stream the builder has written to
	// mksquashfs, Total estimates the whole stream (0 while unknown, during
	// the flatten).
	KindBuild = "build"
)

// Event reports the state of one transfer or build.
type Event struct {
	// Type is start, progress, done or error.
	Type Type `json:"type"`
	// Kind is "" for a download, "build" for an artifact build.
	Kind string `json:"kind,omitempty"`
	// Address and Format name the artifact a build makes.
	Address string `json:"address,omitempty"`
	Format  string `json:"format,omitempty"`
	// ID identifies the transfer; unique among concurrent transfers (the
	// blob digest for blob downloads).
	ID string `json:"id"`
	// Ref is the image reference the transfer belongs to, if known.
	Ref string `json:"ref,omitempty"`
	// Digest is the digest of the blob being transferred.
	Digest string `json:"digest,omitempty"`
	// Total is the expected size in bytes (-1 or 0 when unknown).
	Total int64 `json:"total"`
	// Current is the number of bytes transferred so far.
	Current int64 `json:"current"`
	// Err describes the failure of an Error event.
	Err string `json:"error,omitempty"`
	// Time is when the event happened.
	Time time.Time `json:"time"`
}

// Sink receives events. Implementations must be safe for concurrent use.
type Sink interface {
	Event(Event)
}

// Emit sends e to s, filling in e.Time when unset. A nil s is allowed and
// discards the event.
func Emit(s Sink, e Event) {
	if s == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s.Event(e)
}

// Closer is implemented by sinks that render asynchronously (Bars); Close
// flushes their output and must be called once all transfers have ended.
type Closer interface {
	Close()
}

// Close flushes s when it implements Closer; otherwise it does nothing.
func Close(s Sink) {
	if c, ok := s.(Closer); ok {
		c.Close()
	}
}

// LinePrinter is implemented by sinks that own the screen (Bars): a line
// of other output printed through it appears above the bars instead of
// being overdrawn by them.
type LinePrinter interface {
	Println(line string)
}

// Lazy returns a sink that creates the real one (with make) at its first
// event, so that nothing is drawn before there is something to show (for
// example while a confirmation prompt waits). Lines printed before that go
// to w. Close flushes the real sink if it was made.
func Lazy(make func() Sink, w io.Writer) Sink {
	return &lazy{make: make, w: w}
}

type lazy struct {
	mu   sync.Mutex
	make func() Sink
	s    Sink
	w    io.Writer
}

func (l *lazy) sink(create bool) Sink {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s == nil && create && l.make != nil {
		l.s, l.make = l.make(), nil
	}
	return l.s
}

func (l *lazy) Event(e Event) {
	if s := l.sink(true); s != nil {
		s.Event(e)
	}
}

func (l *lazy) Println(line string) {
	if lp, ok := l.sink(false).(LinePrinter); ok {
		lp.Println(line)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, line)
}

func (l *lazy) Close() {
	if s := l.sink(false); s != nil {
		Close(s)
	}
}

// Println prints a line through s when it owns the screen, else to w.
func Println(s Sink, w io.Writer, line string) {
	if lp, ok := s.(LinePrinter); ok {
		lp.Println(line)
		return
	}
	fmt.Fprintln(w, line)
}

// Multi returns a sink that forwards every event to each non-nil sink.
func Multi(sinks ...Sink) Sink {
	var out multi
	for _, s := range sinks {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

type multi []Sink

func (m multi) Event(e Event) {
	for _, s := range m {
		s.Event(e)
	}
}

func (m multi) Close() {
	for _, s := range m {
		Close(s)
	}
}

// Reader wraps r and emits Progress events to sink as bytes are read, at
// most once per interval to keep the event volume low. base is copied into
// every event.
type Reader struct {
	r        io.Reader
	sink     Sink
	base     Event
	interval time.Duration
	last     time.Time
	n        int64
}

// NewReader returns a Reader that reports progress of reading r. With a nil
// sink it only counts bytes. The Current of the first event starts at
// base.Current (useful when resuming).
func NewReader(r io.Reader, sink Sink, base Event, interval time.Duration) *Reader {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	return &Reader{r: r, sink: sink, base: base, interval: interval, n: base.Current, last: time.Now()}
}

// Read implements io.Reader.
func (p *Reader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.sink != nil && n > 0 {
		if now := time.Now(); now.Sub(p.last) >= p.interval {
			p.last = now
			e := p.base
			e.Type = Progress
			e.Current = p.n
			e.Time = now
			p.sink.Event(e)
		}
	}
	return n, err
}

// N returns the number of bytes read so far (including base.Current).
func (p *Reader) N() int64 { return p.n }

// lockedWriter serialises writes of whole lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) write(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(b)
}
