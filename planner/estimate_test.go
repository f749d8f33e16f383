package planner

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"math/rand"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestGzipUnpacked(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Repeat([]byte("cachectl "), 100000))
	zw.Close()
	b := buf.Bytes()
	if u, ok := gzipUnpacked(b[len(b)-8:], int64(len(b))); !ok || u != 900000 {
		t.Errorf("gzipUnpacked = %d, %v; want 900000", u, ok)
	}
	// Random data grows in gzip: its ISIZE is below the compressed size.
	random := make([]byte, 4<<20)
	rand.New(rand.NewSource(1)).Read(random)
	buf.Reset()
	zw = gzip.NewWriter(&buf)
	zw.Write(random)
	zw.Close()
	b = buf.Bytes()
	if u, ok := gzipUnpacked(b[len(b)-8:], int64(len(b))); !ok || u != 4<<20 || int64(len(b)) <= u {
		t.Errorf("incompressible: gzipUnpacked = %d, %v for %d compressed bytes; want %d", u, ok, len(b), 4<<20)
	}
	// ISIZE is the size modulo 2^32: a 3 GiB stream unpacking to 5 GiB.
	tr := make([]byte, 8)
	binary.LittleEndian.PutUint32(tr[4:], uint32((5<<30)-(1<<32)))
	if u, ok := gzipUnpacked(tr, 3<<30); !ok || u != 5<<30 {
		t.Errorf("wrapped ISIZE: %d, %v", u, ok)
	}
	// eStargz's last member is empty: unknown, not zero.
	if _, ok := gzipUnpacked(make([]byte, 8), 1<<20); ok {
		t.Error("ISIZE 0 of a 1 MiB stream taken as known")
	}
}

func TestWriteBound(t *testing.T) {
	cfg := v1.Descriptor{Size: 2000}
	gz := v1.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: 1000}
	zst := v1.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+zstd", Size: 1000}
	// A 1 KiB image is no longer "about 1 KiB" as a SIF: the SIF header,
	// descriptors and squashfs tables come on top.
	if n := WriteBound("sif", cfg, []v1.Descriptor{gz}, []int64{10000}); n < 40<<10 || n%4096 != 0 {
		t.Errorf("sif bound %d", n)
	}
	sqsh := WriteBound("sqsh", cfg, []v1.Descriptor{gz, gz}, []int64{1 << 30, 2 << 30})
	if sqsh < 3<<30 || sqsh > 3<<30+(3<<30)/512 {
		t.Errorf("sqsh bound %d for 3 GiB unpacked", sqsh)
	}
	// Unknown unpacked size (zstd): assumedRatio times the compressed size.
	if a, b := WriteBound("sqsh", cfg, []v1.Descriptor{zst}, []int64{-1}), WriteBound("sqsh", cfg, []v1.Descriptor{gz}, []int64{4000}); a != b {
		t.Errorf("unknown: %d, want %d", a, b)
	}
	// An OCI archive holds the blobs as they are.
	if n := WriteBound("oci-archive", cfg, []v1.Descriptor{{Size: 1 << 20}}, nil); n < 1<<20+2000 || n > 1<<20+64<<10 {
		t.Errorf("oci-archive bound %d", n)
	}
}
