package progress

import (
	"sync"
	"sync/atomic"
	"time"
)

// Builds reports artifact builds to a sink, as events of KindBuild with ID
// "build ADDRESS": Begin when a build starts (the image is flattened
// first; Total stays 0), the callbacks of Callback as the builder writes the
// flattened tar stream into mksquashfs (Progress events, at most one per
// interval), and End when the artifact is placed (Done) or failed (Error).
// Safe for concurrent use; a nil sink makes every method a no-op.
type Builds struct {
	sink     Sink
	interval time.Duration
	mu       sync.Mutex
	builds   map[string]*buildState
}

type buildState struct {
	base Event
	// Written by the builder's goroutine, read by End.
	cur, tot atomic.Int64
	last     int64 // UnixNano of the last Progress event (builder's goroutine only)
}

// NewBuilds returns a Builds reporting to sink, with Progress events at
// most every interval per build (<= 0: 200ms).
func NewBuilds(sink Sink, interval time.Duration) *Builds {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	return &Builds{sink: sink, interval: interval, builds: map[string]*buildState{}}
}

// Begin reports that the build of address (in format, e.g. "sif") started.
func (b *Builds) Begin(address, format string) {
	if b == nil || b.sink == nil {
		return
	}
	st := &buildState{base: Event{Kind: KindBuild, ID: "build " + address, Address: address, Format: format}}
	b.mu.Lock()
	b.builds[address] = st
	b.mu.Unlock()
	e := st.base
	e.Type = Start
	Emit(b.sink, e)
}

// Callback returns the function a builder calls with the bytes of its tar
// stream written so far and the estimated total (BuildRequest.Progress),
// for a build begun with Begin (nil otherwise). It is called on every
// write: it stores the counts and emits a Progress event at most once per
// interval.
func (b *Builds) Callback(address string) func(written, total int64) {
	if b == nil || b.sink == nil {
		return nil
	}
	b.mu.Lock()
	st := b.builds[address]
	b.mu.Unlock()
	if st == nil {
		return nil
	}
	interval := b.interval.Nanoseconds()
	return func(written, total int64) {
		st.cur.Store(written)
		st.tot.Store(max(total, written))
		now := time.Now()
		if written == 0 || now.UnixNano()-st.last < interval {
			return
		}
		st.last = now.UnixNano()
		e := st.base
		e.Type, e.Current, e.Total, e.Time = Progress, written, max(total, written), now
		Emit(b.sink, e)
	}
}

// End reports that the build of address ended: Done when errMsg is "",
// else Error. Builds never begun are ignored.
func (b *Builds) End(address, errMsg string) {
	if b == nil || b.sink == nil {
		return
	}
	b.mu.Lock()
	st := b.builds[address]
	delete(b.builds, address)
	b.mu.Unlock()
	if st == nil {
		return
	}
	e := st.base
	e.Current, e.Total = st.cur.Load(), st.tot.Load()
	if errMsg == "" {
		e.Type = Done
	} else {
		e.Type, e.Err = Error, errMsg
	}
	Emit(b.sink, e)
}
