package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// flight is a Put in progress in this process: readers (Follow) read its
// temporary file up to what was written, and learn how it ended.
type flight struct {
	path string
	mu   sync.Mutex
	cond *sync.Cond
	n    int64 // bytes written to the temporary file so far
	done bool
	err  error // why the Put failed (nil: the blob is in place)
}

func (f *flight) wrote(n int64) {
	f.mu.Lock()
	f.n += n
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *flight) end(err error) {
	f.mu.Lock()
	f.done, f.err = true, err
	f.mu.Unlock()
	f.cond.Broadcast()
}

// flightWriter counts what Put writes to the temporary file.
type flightWriter struct {
	f  *os.File
	fl *flight
}

func (w flightWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.fl.wrote(int64(n))
	return n, err
}

func (s *Store) startFlight(h v1.Hash, path string) *flight {
	fl := &flight{path: path}
	fl.cond = sync.NewCond(&fl.mu)
	s.mu.Lock()
	if s.flights == nil {
		s.flights = map[string]*flight{}
	}
	s.flights[h.Hex] = fl
	s.mu.Unlock()
	return fl
}

func (s *Store) endFlight(h v1.Hash, fl *flight, err error) {
	s.mu.Lock()
	if s.flights[h.Hex] == fl {
		delete(s.flights, h.Hex)
	}
	s.mu.Unlock()
	fl.end(err)
}

// ErrNotStarted is returned by Follow for a blob that is neither in the
// store nor being written by this process.
var ErrNotStarted = errors.New("blob is not in the store and not being written")

// ErrFollowFailed is wrapped by Follow and its reader's errors when the
// download they followed failed (a digest or size mismatch, a connection
// cut, a cancelled download): what was read is then not the blob, and a
// reader may read the blob again once a later download stored it.
var ErrFollowFailed = errors.New("the download followed failed")

// Follow opens blob h for reading while this process may still be writing
// it (Put): a reader of a blob in progress gets the bytes as they are
// written and waits for more; it ends with io.EOF only once the blob is
// verified and in place, and with Put's error when that failed (a digest
// mismatch, a cancelled download: what it read is then not the blob). A
// complete blob is opened as Open does. A blob that is neither fails with
// an error wrapping ErrNotStarted.
func (s *Store) Follow(h v1.Hash) (io.ReadCloser, error) {
	if !validHash(h) {
		return nil, fmt.Errorf("store: unsupported digest %q", h)
	}
	for {
		s.mu.Lock()
		fl := s.flights[h.Hex]
		s.mu.Unlock()
		if fl == nil {
			rc, err := s.Open(h)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrUntrustedBlob) || errors.Is(err, syscall.ELOOP) {
				// (A file Has counts as absent is one Put will replace.)
				return nil, fmt.Errorf("store: blob %s: %w", h, ErrNotStarted)
			}
			return rc, err
		}
		f, err := os.Open(fl.path)
		if errors.Is(err, fs.ErrNotExist) {
			// Renamed into place (or removed) just now: look again.
			fl.mu.Lock()
			for !fl.done {
				fl.cond.Wait()
			}
			ferr := fl.err
			fl.mu.Unlock()
			if ferr != nil {
				return nil, fmt.Errorf("store: blob %s: %w: %w", h, ErrFollowFailed, ferr)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return &followReader{f: f, fl: fl, h: h}, nil
	}
}

// followReader reads a blob being written.
type followReader struct {
	f   *os.File
	fl  *flight
	h   v1.Hash
	off int64
}

func (r *followReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	fl := r.fl
	fl.mu.Lock()
	for r.off >= fl.n && !fl.done {
		fl.cond.Wait()
	}
	avail, done, ferr := fl.n, fl.done, fl.err
	fl.mu.Unlock()
	if r.off >= avail {
		if ferr != nil {
			return 0, fmt.Errorf("store: blob %s: %w: %w", r.h, ErrFollowFailed, ferr)
		}
		if done {
			return 0, io.EOF
		}
	}
	if int64(len(p)) > avail-r.off {
		p = p[:avail-r.off]
	}
	n, err := r.f.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // the file is shorter than what was written
	}
	return n, err
}

func (r *followReader) Close() error { return r.f.Close() }

// Written returns how many bytes of blob h a Put in this process has
// written so far (0 when none is in progress).
func (s *Store) Written(h v1.Hash) int64 {
	s.mu.Lock()
	fl := s.flights[h.Hex]
	s.mu.Unlock()
	if fl == nil {
		return 0
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.n
}
