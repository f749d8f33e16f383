package rootfs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// compressedBufSize is the read buffer between a layer's compressed stream
// and the inflater.
const compressedBufSize = 256 << 10

var gzipMagic = []byte{0x1f, 0x8b}

var errReadAheadClosed = errors.New("read-ahead closed")

// layerStream is a layer's uncompressed tar stream.
type layerStream struct {
	r       io.Reader
	closers []io.Closer
	// drain, when set, is read to its end after the tar stream ended, so
	// that trailing corruption or a digest mismatch of the blob is reported.
	drain io.Reader
}

func (s *layerStream) Read(p []byte) (int, error) { return s.r.Read(p) }

// finish reads what is left of the layer (past the tar end) and reports
// any error of the underlying streams.
func (s *layerStream) finish() error {
	if _, err := io.Copy(io.Discard, s.r); err != nil {
		return err
	}
	if s.drain != nil {
		if _, err := io.Copy(io.Discard, s.drain); err != nil {
			return err
		}
	}
	return nil
}

func (s *layerStream) Close() error {
	var first error
	for _, c := range s.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// openLayer returns the uncompressed tar stream of l. A gzip layer (by its
// bytes, whatever its media type says) is inflated with
// klauspost/compress's gzip, about twice as fast as the standard library's;
// uncompressed, zstd and any other layers use l.Uncompressed().
func openLayer(l v1.Layer) (*layerStream, error) {
	if mt, err := l.MediaType(); err == nil {
		switch mt {
		case types.DockerUncompressedLayer, types.OCIUncompressedLayer, types.OCIUncompressedRestrictedLayer,
			types.OCILayerZStd:
			return openUncompressed(l)
		}
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(rc, compressedBufSize)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		rc.Close()
		return nil, err
	}
	if !bytes.Equal(magic, gzipMagic) {
		// Not gzip (zstd or uncompressed bytes under a gzip media type):
		// let the layer decode itself.
		rc.Close()
		return openUncompressed(l)
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return &layerStream{r: zr, closers: []io.Closer{zr, rc}, drain: br}, nil
}

func openUncompressed(l v1.Layer) (*layerStream, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	return &layerStream{r: rc, closers: []io.Closer{rc}}, nil
}

// readAhead decodes a stream in a goroutine, up to nbuf chunks of chunkSize
// bytes ahead of its reader, so that inflating overlaps with what the
// reader does with the bytes (tar parsing, writing to mksquashfs).
type readAhead struct {
	full  chan []byte // filled chunks, in order
	free  chan []byte // empty chunks
	done  chan struct{}
	stop  chan struct{}
	once  sync.Once
	err   error // set before full is closed
	cur   []byte
	chunk []byte
}

func newReadAhead(ctx context.Context, r io.Reader, nbuf, chunkSize int) *readAhead {
	return newReadAheadOpen(ctx, func() (io.Reader, error) { return r, nil }, nbuf, chunkSize)
}

// newReadAheadOpen is newReadAhead of the stream open returns, called in
// the goroutine (opening a layer that is still being downloaded may wait
// for its first bytes); its error is the reader's.
func newReadAheadOpen(ctx context.Context, open func() (io.Reader, error), nbuf, chunkSize int) *readAhead {
	ra := &readAhead{
		full: make(chan []byte, nbuf),
		free: make(chan []byte, nbuf),
		done: make(chan struct{}),
		stop: make(chan struct{}),
	}
	for i := 0; i < nbuf; i++ {
		ra.free <- make([]byte, chunkSize)
	}
	go func() {
		defer close(ra.done)
		defer close(ra.full)
		r, err := open()
		if err != nil {
			ra.err = err
			return
		}
		for {
			var buf []byte
			select {
			case buf = <-ra.free:
			case <-ra.stop:
				ra.err = errReadAheadClosed
				return
			case <-ctx.Done():
				ra.err = ctx.Err()
				return
			}
			n, err := io.ReadFull(r, buf[:cap(buf)])
			if n > 0 {
				ra.full <- buf[:n] // never blocks: nbuf chunks exist in all
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				ra.err = io.EOF
				return
			}
			if err != nil {
				ra.err = err
				return
			}
		}
	}()
	return ra
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.chunk != nil {
			ra.free <- ra.chunk[:cap(ra.chunk)]
			ra.chunk = nil
		}
		buf, ok := <-ra.full
		if !ok {
			return 0, ra.err
		}
		ra.chunk, ra.cur = buf, buf
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// WriteTo hands whole chunks to w (io.Copy uses it).
func (ra *readAhead) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(ra.cur) > 0 {
			n, err := w.Write(ra.cur)
			total += int64(n)
			ra.cur = ra.cur[n:]
			if err != nil {
				return total, err
			}
		}
		if _, err := ra.Read(nil); err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
	}
}

// Close stops the goroutine and waits for it; it does not close the
// underlying reader.
func (ra *readAhead) Close() error {
	ra.once.Do(func() { close(ra.stop) })
	// Unblock a producer waiting for a free chunk: it selects on stop.
	<-ra.done
	return nil
}
