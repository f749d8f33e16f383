package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/cachectl/cachectl/providers/store"
)

// TestFollow reads a blob while Put writes it: the reader gets the bytes
// as they arrive, and io.EOF only once the blob is verified and in place.
func TestFollow(t *testing.T) {
	s := open(t)
	data, h := blob(3<<20, 1)
	if _, err := s.Follow(h); !errors.Is(err, store.ErrNotStarted) {
		t.Fatalf("Follow before Put: %v", err)
	}
	pr, pw := io.Pipe()
	put := make(chan error, 1)
	go func() {
		_, err := s.Put(context.Background(), h, int64(len(data)), pr)
		put <- err
	}()
	if _, err := pw.Write(data[:1<<20]); err != nil {
		t.Fatal(err)
	}
	var rc io.ReadCloser
	for {
		var err error
		if rc, err = s.Follow(h); err == nil {
			break
		} else if !errors.Is(err, store.ErrNotStarted) {
			t.Fatal(err)
		}
	}
	defer rc.Close()
	got := make([]byte, 1<<20)
	if _, err := io.ReadFull(rc, got); err != nil || !bytes.Equal(got, data[:1<<20]) {
		t.Fatalf("first MiB while the rest is not written: %v", err)
	}
	if s.Has(h) {
		t.Fatal("blob in place before it was complete")
	}
	go func() { pw.Write(data[1<<20:]); pw.Close() }()
	rest, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(rest, data[1<<20:]) {
		t.Fatalf("rest: %d bytes, %v", len(rest), err)
	}
	if err := <-put; err != nil || !s.Has(h) {
		t.Fatalf("Put: %v", err)
	}
	// Complete blobs are opened as usual.
	rc2, err := s.Follow(h)
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := io.ReadAll(rc2); !bytes.Equal(all, data) {
		t.Error("Follow of a complete blob")
	}
	rc2.Close()
}

// TestFollowMismatch: bytes that do not hash to the digest end the reader
// with the Put's error, never with io.EOF.
func TestFollowMismatch(t *testing.T) {
	s := open(t)
	data, h := blob(1<<20, 2)
	bad := append([]byte(nil), data...)
	bad[len(bad)-1] ^= 1
	pr, pw := io.Pipe()
	put := make(chan error, 1)
	go func() {
		_, err := s.Put(context.Background(), h, int64(len(bad)), pr)
		put <- err
	}()
	pw.Write(bad[:1000])
	var rc io.ReadCloser
	for {
		var err error
		if rc, err = s.Follow(h); err == nil {
			break
		}
	}
	defer rc.Close()
	go func() { pw.Write(bad[1000:]); pw.Close() }()
	_, err := io.ReadAll(rc)
	if !errors.Is(err, store.ErrDigestMismatch) {
		t.Fatalf("reader error %v, want a digest mismatch", err)
	}
	if err := <-put; !errors.Is(err, store.ErrDigestMismatch) || s.Has(h) {
		t.Fatalf("Put: %v", err)
	}
}
