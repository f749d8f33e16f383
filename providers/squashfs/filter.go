package squashfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// Filter rewrites a tar stream on its way to mksquashfs: it can change or
// drop headers, and it can add directories and symlinks that the stream
// lacks ("create if missing", like `mkdir -p` and Apptainer's "symlink unless
// it exists"), which a builder cannot express as replacements.
//
// Missing entries are appended after the last entry of the stream, with
// their missing parent directories (0755, root). An entry is not added when
// its path, or one of its parents, appeared in the stream as a non-directory
// (mkdir -p would follow a symlink there; the filter never does).
type Filter struct {
	// Edit, when set, is called for every header; returning false drops the entry.
	Edit func(h *tar.Header) bool
	// IfMissing are TypeDir or TypeSymlink headers (relative, clean names)
	// added only when their path is absent from the stream.
	IfMissing []*tar.Header
	// ModTime is the mtime of added parents. Default: the Unix epoch.
	ModTime time.Time
}

// Copy reads a tar stream from r and writes the filtered stream to w.
func (f *Filter) Copy(ctx context.Context, w io.Writer, r io.Reader) error {
	// Paths to watch: every IfMissing path and its parents.
	watch := map[string]byte{} // path -> 0 (unseen), typeflag when seen
	for _, h := range f.IfMissing {
		if h.Typeflag != tar.TypeDir && h.Typeflag != tar.TypeSymlink {
			return fmt.Errorf("squashfs: filter: %q: only directories and symlinks can be added if missing", h.Name)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if name == "" || name != path.Clean(name) || path.IsAbs(name) || strings.HasPrefix(name, "../") || name == ".." {
			return fmt.Errorf("squashfs: filter: bad path %q", h.Name)
		}
		for p := name; p != "."; p = path.Dir(p) {
			watch[p] = 0
		}
	}
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("squashfs: filter: reading tar stream: %w", err)
		}
		if f.Edit != nil && !f.Edit(h) {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if _, ok := watch[name]; ok {
			watch[name] = h.Typeflag
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("squashfs: filter: %q: %w", h.Name, err)
		}
		if h.Size > 0 && (h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA) {
			if _, err := io.Copy(tw, tr); err != nil {
				return fmt.Errorf("squashfs: filter: %q: %w", h.Name, err)
			}
		}
	}
	mtime := f.ModTime
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	var add func(h *tar.Header) error
	add = func(h *tar.Header) error {
		name := strings.TrimSuffix(h.Name, "/")
		if seen := watch[name]; seen != 0 {
			return nil // exists (as whatever it is)
		}
		if dir := path.Dir(name); dir != "." {
			switch watch[dir] {
			case 0:
				if err := add(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}); err != nil {
					return err
				}
				if watch[dir] != tar.TypeDir {
					return nil
				}
			case tar.TypeDir:
			default:
				return nil // parent is not a directory: leave it alone
			}
		}
		hh := *h
		hh.Name = name
		if hh.Typeflag == tar.TypeDir {
			hh.Name += "/"
		}
		if err := tw.WriteHeader(&hh); err != nil {
			return fmt.Errorf("squashfs: filter: %q: %w", hh.Name, err)
		}
		watch[name] = hh.Typeflag
		return nil
	}
	for _, h := range f.IfMissing {
		if err := add(h); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("squashfs: filter: %w", err)
	}
	return nil
}

// Pipe returns a TarWriter that runs produce into a pipe and copies its
// stream through f. A nil f passes the stream through unchanged.
func Pipe(f *Filter, produce TarWriter) TarWriter {
	if f == nil {
		return produce
	}
	return func(ctx context.Context, w io.Writer) error {
		pr, pw := io.Pipe()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			err := produce(ctx, pw)
			pw.CloseWithError(err)
			done <- err
		}()
		err := f.Copy(ctx, w, pr)
		if err != nil {
			cancel()
			pr.CloseWithError(err)
		}
		perr := <-done
		if perr != nil && (err == nil || errors.Is(err, perr)) {
			return perr
		}
		return err
	}
}
