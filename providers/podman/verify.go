package podman

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxJSONBlob bounds the blobs Verify keeps in memory to parse (manifests,
// indexes, configs).
const maxJSONBlob = 8 << 20

// Verify checks that the file at p is an OCI archive: a tar holding
// oci-layout (version 1.0.0) and index.json with at least one manifest, every
// blob's content matching its sha256 name, and every manifest's config and
// layers present with the sizes it records.
func (b *Builder) Verify(ctx context.Context, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("podman: %w", err)
	}
	defer f.Close()
	if err := VerifyArchive(ctx, f); err != nil {
		return fmt.Errorf("podman: %s: %w", p, err)
	}
	return nil
}

// VerifyArchive checks an OCI archive read from r (see Builder.Verify).
func VerifyArchive(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	sizes := map[string]int64{} // hex -> size
	small := map[string][]byte{}
	var index, layout []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if h.Typeflag != tar.TypeReg {
			continue
		}
		switch {
		case name == "index.json":
			if index, err = readSmall(tr, h.Size); err != nil {
				return fmt.Errorf("index.json: %w", err)
			}
		case name == "oci-layout":
			if layout, err = readSmall(tr, h.Size); err != nil {
				return fmt.Errorf("oci-layout: %w", err)
			}
		case strings.HasPrefix(name, "blobs/sha256/"):
			hexd := strings.TrimPrefix(name, "blobs/sha256/")
			hh := sha256.New()
			var keep []byte
			var dst io.Writer = hh
			var buf *limitedBuffer
			if h.Size <= maxJSONBlob {
				buf = &limitedBuffer{}
				dst = io.MultiWriter(hh, buf)
			}
			n, err := io.Copy(dst, tr)
			if err != nil {
				return fmt.Errorf("blob %s: %w", hexd, err)
			}
			if got := hex.EncodeToString(hh.Sum(nil)); got != hexd {
				return fmt.Errorf("blob %s has digest sha256:%s", hexd, got)
			}
			if buf != nil {
				keep = buf.b
				small[hexd] = keep
			}
			sizes[hexd] = n
		}
	}
	if layout == nil {
		return errors.New("no oci-layout file")
	}
	var lay struct {
		ImageLayoutVersion string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(layout, &lay); err != nil || lay.ImageLayoutVersion != "1.0.0" {
		return fmt.Errorf("bad oci-layout %q", layout)
	}
	if index == nil {
		return errors.New("no index.json")
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(index, &idx); err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	if len(idx.Manifests) == 0 {
		return errors.New("index.json lists no manifest")
	}
	need := func(d v1.Descriptor, what string) error {
		if d.Digest.Algorithm != "sha256" {
			return fmt.Errorf("%s %s: unsupported digest", what, d.Digest)
		}
		n, ok := sizes[d.Digest.Hex]
		if !ok {
			return fmt.Errorf("%s %s: blob missing", what, d.Digest)
		}
		if n != d.Size {
			return fmt.Errorf("%s %s: blob is %d bytes, descriptor says %d", what, d.Digest, n, d.Size)
		}
		return nil
	}
	for _, md := range idx.Manifests {
		if err := need(md, "manifest"); err != nil {
			return err
		}
		if md.MediaType.IsIndex() {
			continue // nested index: presence and digest checked
		}
		var m v1.Manifest
		if err := json.Unmarshal(small[md.Digest.Hex], &m); err != nil {
			return fmt.Errorf("manifest %s: %w", md.Digest, err)
		}
		if err := need(m.Config, "config"); err != nil {
			return err
		}
		for _, l := range m.Layers {
			if err := need(l, "layer"); err != nil {
				return err
			}
		}
	}
	return nil
}

func readSmall(r io.Reader, size int64) ([]byte, error) {
	if size > maxJSONBlob {
		return nil, fmt.Errorf("too large (%d bytes)", size)
	}
	return io.ReadAll(r)
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	return len(p), nil
}
