package image

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"math/rand"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestGzipUnpackedSize(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Repeat([]byte("cachectl "), 100000))
	zw.Close()
	b := buf.Bytes()
	if u, ok := GzipUnpackedSize(b[len(b)-8:], int64(len(b))); !ok || u != 900000 {
		t.Errorf("GzipUnpackedSize = %d, %v; want 900000", u, ok)
	}
	// Random data grows in gzip: its ISIZE is below the compressed size.
	random := make([]byte, 4<<20)
	rand.New(rand.NewSource(1)).Read(random)
	buf.Reset()
	zw = gzip.NewWriter(&buf)
	zw.Write(random)
	zw.Close()
	b = buf.Bytes()
	if u, ok := GzipUnpackedSize(b[len(b)-8:], int64(len(b))); !ok || u != 4<<20 || int64(len(b)) <= u {
		t.Errorf("incompressible: GzipUnpackedSize = %d, %v for %d compressed bytes; want %d", u, ok, len(b), 4<<20)
	}
	// ISIZE is the size modulo 2^32: a 3 GiB stream unpacking to 5 GiB.
	tr := make([]byte, 8)
	binary.LittleEndian.PutUint32(tr[4:], uint32((5<<30)-(1<<32)))
	if u, ok := GzipUnpackedSize(tr, 3<<30); !ok || u != 5<<30 {
		t.Errorf("wrapped ISIZE: %d, %v", u, ok)
	}
	// eStargz's last member is empty: unknown, not zero.
	if _, ok := GzipUnpackedSize(make([]byte, 8), 1<<20); ok {
		t.Error("ISIZE 0 of a 1 MiB stream taken as known")
	}
}

func TestLayerUnpackedSize(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Repeat([]byte("x"), 5000))
	zw.Close()
	b := buf.Bytes()
	tail := func() ([]byte, error) { return b[len(b)-TrailerSize:], nil }
	for _, tc := range []struct {
		mt   types.MediaType
		size int64
		tail func() ([]byte, error)
		want int64
		ok   bool
	}{
		{types.OCILayer, int64(len(b)), tail, 5000, true},
		{types.DockerLayer, int64(len(b)), tail, 5000, true},
		{types.OCIUncompressedLayer, 700, nil, 700, true},
		{types.DockerUncompressedLayer, 700, nil, 700, true},
		{types.OCILayerZStd, 700, tail, 0, false},
		{types.OCILayer, 17, tail, 0, false}, // shorter than any gzip stream
		{types.OCILayer, int64(len(b)), func() ([]byte, error) { return nil, errors.New("no range") }, 0, false},
	} {
		got, ok := LayerUnpackedSize(v1.Descriptor{MediaType: tc.mt, Size: tc.size}, tc.tail)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s of %d bytes: %d, %v; want %d, %v", tc.mt, tc.size, got, ok, tc.want, tc.ok)
		}
	}
}
