package source

import (
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/store"
)

// UnpackedSize is how a source over the blob store st implements
// UnpackedSizer: image.LayerUnpackedSize of layer d, reading the gzip
// trailer from st when st holds the layer, else with tail (from the
// source itself).
func UnpackedSize(st *store.Store, d v1.Descriptor, tail func() ([]byte, error)) (int64, bool) {
	return image.LayerUnpackedSize(d, func() ([]byte, error) {
		if b, ok := storeTail(st, d, image.TrailerSize); ok {
			return b, nil
		}
		return tail()
	})
}

// storeTail reads the last n bytes of a blob in the store.
func storeTail(st *store.Store, d v1.Descriptor, n int64) ([]byte, bool) {
	if st == nil || !st.Has(d.Digest) {
		return nil, false
	}
	f, err := st.Open(d.Digest)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, err := ReadTail(f, d.Size, n)
	return b, err == nil
}

// ReadTail reads the last n bytes of r, which is size bytes long, when r
// can read at an offset (io.ReaderAt) or seek (io.ReadSeeker); else it
// fails with io.ErrNoProgress.
func ReadTail(r any, size, n int64) ([]byte, error) {
	b := make([]byte, n)
	switch r := r.(type) {
	case io.ReaderAt:
		_, err := r.ReadAt(b, size-n)
		return b, err
	case io.ReadSeeker:
		if _, err := r.Seek(size-n, io.SeekStart); err != nil {
			return nil, err
		}
		_, err := io.ReadFull(r, b)
		return b, err
	}
	return nil, io.ErrNoProgress
}
