package image

import (
	"bytes"
	"context"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestCopyBlob(t *testing.T) {
	blob := bytes.Repeat([]byte("blob"), 300000) // more than one 1 MiB chunk
	h, _, _ := v1.SHA256(bytes.NewReader(blob))
	d := v1.Descriptor{Digest: h, Size: int64(len(blob))}
	if p := LayoutBlobPath(h); p != "blobs/sha256/"+h.Hex {
		t.Errorf("LayoutBlobPath = %s", p)
	}
	ctx := context.Background()
	var out bytes.Buffer
	if err := CopyBlob(ctx, &out, bytes.NewReader(blob), d, true); err != nil || !bytes.Equal(out.Bytes(), blob) {
		t.Fatalf("CopyBlob: %v (%d bytes)", err, out.Len())
	}
	var bad *BlobMismatchError
	// Shorter and longer: the size is named; at most one byte more is read.
	err := CopyBlob(ctx, &out, bytes.NewReader(blob[1:]), d, true)
	if !errors.As(err, &bad) || bad.Size != d.Size-1 || bad.Hex != "" {
		t.Errorf("short blob: %v", err)
	}
	err = CopyBlob(ctx, &out, bytes.NewReader(append(blob, "more"...)), d, true)
	if !errors.As(err, &bad) || bad.Size != d.Size+1 {
		t.Errorf("long blob: %v", err)
	}
	// Same size, other content: the digest is checked when asked.
	other := bytes.Clone(blob)
	other[len(other)/2] ^= 1
	err = CopyBlob(ctx, &out, bytes.NewReader(other), d, true)
	if !errors.As(err, &bad) || bad.Size != d.Size || bad.Hex == "" || bad.Hex == h.Hex {
		t.Errorf("other content: %v", err)
	}
	if err := CopyBlob(ctx, &out, bytes.NewReader(other), d, false); err != nil {
		t.Errorf("other content without verify: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := CopyBlob(cancelled, &out, bytes.NewReader(blob), d, true); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
