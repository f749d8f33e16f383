package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The files of an OCI image layout (OCI image spec v1.1, image-layout.md),
// as a directory or a tar of one (an OCI archive, a bundle).
const (
	// LayoutFile holds {"imageLayoutVersion": "1.0.0"}.
	LayoutFile = "oci-layout"
	// IndexFile is the layout's image index; RefNameAnnotation names its
	// entries.
	IndexFile = "index.json"
)

// LayoutBlobPath is where an OCI image layout holds blob h:
// blobs/ALGORITHM/HEX.
func LayoutBlobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// BlobMismatchError says that the bytes CopyBlob copied are not the blob
// its descriptor names.
type BlobMismatchError struct {
	// Want is the descriptor.
	Want v1.Descriptor
	// Size is how many bytes were read; at most Want.Size+1 (then there
	// were more than Want.Size).
	Size int64
	// Hex is what they hash to (sha256), when the size matched.
	Hex string
}

func (e *BlobMismatchError) Error() string {
	if e.Size != e.Want.Size {
		return fmt.Sprintf("blob %s is %d bytes, its descriptor says %d", e.Want.Digest, e.Size, e.Want.Size)
	}
	return fmt.Sprintf("blob %s hashes to sha256:%s", e.Want.Digest, e.Hex)
}

// CopyBlob copies the blob d (a sha256 digest) from r to w, as into an OCI
// layout, with a 1 MiB buffer, checking ctx between chunks. It reads at
// most d.Size+1 bytes and fails with a *BlobMismatchError when r holds
// another number of bytes than d.Size or, with verify, bytes that do not
// hash to d.Digest; what it read is written all the same (a tar writer
// refuses more bytes than its header announced). Errors of r, w and ctx
// are returned as they are.
func CopyBlob(ctx context.Context, w io.Writer, r io.Reader, d v1.Descriptor, verify bool) error {
	var h hash.Hash
	if verify {
		h = sha256.New()
		w = io.MultiWriter(w, h)
	}
	src := io.LimitReader(r, d.Size+1)
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if n != d.Size {
		return &BlobMismatchError{Want: d, Size: n}
	}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != d.Digest.Hex {
			return &BlobMismatchError{Want: d, Size: n, Hex: got}
		}
	}
	return nil
}
