package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNoRange is returned (wrapped) by BlobTail when the registry answers a
// Range request with the whole blob; the blob is not read.
var ErrNoRange = errors.New("the registry does not serve byte ranges")

// BlobTail returns the last n bytes of blob d (d.Size bytes long) of ref's
// repository, with one Range request to the mirror or upstream (as Pull
// would ask them), within the host's max_concurrency. Used for the gzip
// trailer of a layer, which says how many bytes it unpacks to.
func (c *Client) BlobTail(ctx context.Context, ref string, d v1.Descriptor, n int64) ([]byte, error) {
	if n <= 0 || d.Size < n {
		return nil, fmt.Errorf("blob %s: %d bytes, cannot read its last %d", d.Digest, d.Size, n)
	}
	r, err := c.parse(ref)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = c.eachTarget(ctx, r.Context(), func(t target) error {
		release, err := c.acquire(ctx, t.host)
		if err != nil {
			return err
		}
		defer release()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url("blobs/"+d.Digest.String()), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", d.Size-n, d.Size-1))
		resp, rt, err := c.do(ctx, t, req)
		if err != nil {
			return err
		}
		switch resp.StatusCode {
		case http.StatusPartialContent:
			defer resp.Body.Close()
			if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != d.Size-n {
				return fmt.Errorf("registry %s: blob %s: asked for bytes from %d, got range %q", t.repo.RegistryStr(), d.Digest, d.Size-n, resp.Header.Get("Content-Range"))
			}
			b, err := io.ReadAll(io.LimitReader(resp.Body, n+1))
			if err != nil {
				return fmt.Errorf("registry %s: blob %s: %w", t.repo.RegistryStr(), d.Digest, err)
			}
			if int64(len(b)) != n {
				return fmt.Errorf("registry %s: blob %s: asked for %d bytes, got %d", t.repo.RegistryStr(), d.Digest, n, len(b))
			}
			out = b
			return nil
		case http.StatusOK:
			resp.Body.Close()
			return fmt.Errorf("registry %s: blob %s: %w", t.repo.RegistryStr(), d.Digest, ErrNoRange)
		}
		return statusError(resp, t.repo.RegistryStr(), t.repo.RepositoryStr(), "blob "+d.Digest.String(), rt.hadCreds)
	})
	return out, err
}
