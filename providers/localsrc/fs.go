package localsrc

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/cachectl/cachectl/providers/tarindex"
)

// fileSystem is read access to the files of a local source.
type fileSystem interface {
	// open opens a file by its slash-separated path relative to the source.
	open(name string) (io.ReadCloser, int64, error)
	// readSmall reads a small file (at most maxSmallBlob bytes).
	readSmall(name string) ([]byte, error)
	close() error
}

func readSmallFile(fsys fileSystem, name string) ([]byte, error) {
	rc, size, err := fsys.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxSmallBlob {
		return nil, fmt.Errorf("%s is %d bytes, too large", name, size)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxSmallBlob+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// cleanName checks a relative slash-separated path inside a source.
func cleanName(n string) (string, error) {
	c := path.Clean(strings.TrimPrefix(n, "./"))
	if c == "." || c == ".." || strings.HasPrefix(c, "../") || strings.HasPrefix(c, "/") {
		return "", fmt.Errorf("path %q leaves the source", n)
	}
	return c, nil
}

// dir reads an OCI layout directory; paths cannot leave it (os.Root).
type dir struct {
	path string
	root *os.Root
}

func openDir(p string) (*dir, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory (an OCI layout is a directory; use oci-archive: for a tar)", p)
	}
	r, err := os.OpenRoot(p)
	if err != nil {
		return nil, err
	}
	return &dir{path: p, root: r}, nil
}

func (d *dir) open(n string) (io.ReadCloser, int64, error) {
	c, err := cleanName(n)
	if err != nil {
		return nil, 0, err
	}
	f, err := d.root.Open(filepath.FromSlash(c))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, fmt.Errorf("%s has no %s: %w", d.path, c, os.ErrNotExist)
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s in %s is not a regular file", c, d.path)
	}
	return f, fi.Size(), nil
}

func (d *dir) readSmall(n string) ([]byte, error) { return readSmallFile(d, n) }
func (d *dir) close() error                       { return d.root.Close() }

// tarFile reads the files of an uncompressed tar archive in place, where
// one scan of the headers (tarindex) found their data.
type tarFile struct {
	path    string
	f       *os.File
	entries map[string]tarEntry
}

type tarEntry struct {
	off, size int64
	link      string // symlink or hard link target, archive-relative
}

func openTar(p string) (*tarFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	t := &tarFile{path: p, f: f, entries: map[string]tarEntry{}}
	if err := t.scan(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return t, nil
}

// scan indexes the archive's regular files and links. Later members
// replace earlier ones of the same name, as when a tar is extracted.
func (t *tarFile) scan() error {
	fi, err := t.f.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory, not a tar archive (use oci-layout: for a layout directory)")
	}
	var magic [2]byte
	if n, _ := t.f.ReadAt(magic[:], 0); n == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return errors.New("is gzip-compressed; decompress it first (gunzip), archives are read uncompressed")
	}
	end, err := tarindex.Scan(t.f, func(h *tar.Header, off int64) error {
		n, err := cleanName(h.Name)
		if err != nil {
			return nil // never addressable
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			t.entries[n] = tarEntry{off: off, size: h.Size}
		case tar.TypeSymlink:
			target := h.Linkname
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(n), target)
			}
			t.entries[n] = tarEntry{link: target}
		case tar.TypeLink:
			t.entries[n] = tarEntry{link: h.Linkname}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("not a valid tar archive (truncated?): %w", err)
	}
	if len(t.entries) == 0 {
		return errors.New("the archive is empty")
	}
	// An archive cut between two members ends without the zero block that
	// every tar writer puts after the last member.
	var zero [512]byte
	if n, _ := t.f.ReadAt(zero[:], end); n < len(zero) || !bytes.Equal(zero[:], make([]byte, 512)) {
		return errors.New("not a valid tar archive: no end-of-archive marker after the last file (truncated?)")
	}
	return nil
}

// lookup finds the regular file n names, following links.
func (t *tarFile) lookup(n string) (tarEntry, error) {
	c, err := cleanName(n)
	if err != nil {
		return tarEntry{}, err
	}
	for range 16 {
		e, ok := t.entries[c]
		if !ok {
			return tarEntry{}, fmt.Errorf("%s has no %s: %w", t.path, c, os.ErrNotExist)
		}
		if e.link == "" {
			return e, nil
		}
		if c, err = cleanName(e.link); err != nil {
			return tarEntry{}, err
		}
	}
	return tarEntry{}, fmt.Errorf("%s: too many links at %s", t.path, n)
}

func (t *tarFile) open(n string) (io.ReadCloser, int64, error) {
	e, err := t.lookup(n)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(io.NewSectionReader(t.f, e.off, e.size)), e.size, nil
}

func (t *tarFile) readSmall(n string) ([]byte, error) { return readSmallFile(t, n) }
func (t *tarFile) close() error                       { return t.f.Close() }
