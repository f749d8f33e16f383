package planner

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

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
