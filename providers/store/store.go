// Package store is cachectl's content-addressed blob store: one directory,
// shared by all caches and all runs, that holds every manifest, config and
// layer blob by digest (blobs/sha256/<hex>, the OCI image layout's scheme).
//
// Writers stream a blob to a uniquely named temporary file under tmp/,
// verify its size and digest, fsync it and rename it into place. Renames are
// atomic on POSIX file systems, so readers never see a partial blob, and two
// processes that fetch the same blob at once both succeed with one intact
// copy. A blob whose bytes do not match its digest is never stored.
package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// EnvStore names the environment variable that overrides DefaultDir.
const EnvStore = "CACHECTL_STORE"

// Store is an on-disk content-addressed blob store. Its methods are safe for
// concurrent use by many goroutines and processes.
type Store struct {
	dir string

	mu      sync.Mutex
	flights map[string]*flight // Puts in progress, by hex digest (Follow)
}

// ErrDigestMismatch is returned (wrapped) by Put when the bytes read do not
// hash to the expected digest.
var ErrDigestMismatch = errors.New("digest mismatch")

// ErrSizeMismatch is returned (wrapped) by Put when the number of bytes read
// differs from the expected size.
var ErrSizeMismatch = errors.New("size mismatch")

// DefaultDir returns the store directory used when none is configured:
// $CACHECTL_STORE when set; /var/cache/cachectl/store when running as root;
// otherwise $XDG_CACHE_HOME/cachectl/store, falling back to
// ~/.cache/cachectl/store, and without a home to a directory of the
// runner's uid under $TMPDIR (which Open refuses if another user made it).
func DefaultDir() string {
	if d := os.Getenv(EnvStore); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/cache/cachectl/store"
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "cachectl", "store")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".cache", "cachectl", "store")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("cachectl-store-%d", os.Geteuid()))
}

// Open opens the store at dir, creating dir (mode 0755) and its blobs/sha256
// and tmp subdirectories when missing.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	for i, d := range []string{abs, filepath.Join(abs, "blobs"), filepath.Join(abs, "blobs", "sha256"), filepath.Join(abs, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("store: creating %s: %w", d, err)
		}
		// The store directory itself may be a link the admin made (to a
		// bigger disk); the directories inside it may not.
		if err := checkTrusted(d, i == 0); err != nil {
			return nil, err
		}
	}
	return &Store{dir: abs}, nil
}

// ErrUntrusted is returned (wrapped) by Open when a directory of the store
// could let someone else replace blobs: a symbolic link, owned by a user
// other than the runner or root, or writable by group or others. Blobs are verified
// against their digests when they are written, not each time they are read,
// so whoever can write the store decides what the caches hold.
var ErrUntrusted = errors.New("store directory not safe")

// ErrUntrustedBlob is returned (wrapped) by Open for a blob file that
// someone other than root or the runner could have written: it counts as
// absent (Has), and Put replaces it.
var ErrUntrustedBlob = errors.New("blob file not safe")

// checkTrusted refuses dir when it is not a directory (a symbolic link
// unless follow), is owned by neither the runner nor root, or is writable
// by group or others (mode g+w or o+w).
func checkTrusted(dir string, follow bool) error {
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	fix := "use a directory of your own, mode 0755 or stricter (--store DIR or $" + EnvStore + ")"
	if !fi.IsDir() {
		return fmt.Errorf("store: %s: %w: not a directory (%s); %s", dir, ErrUntrusted, fi.Mode().Type(), fix)
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("store: %s: %w: writable by every user (mode %04o); %s", dir, ErrUntrusted, fi.Mode().Perm(), fix)
	}
	if fi.Mode().Perm()&0o020 != 0 {
		// A group member could plant a blob under the digest of a layer
		// not yet fetched, or move blobs/ aside for one of their own;
		// even with the sticky bit they can still create entries.
		return fmt.Errorf("store: %s: %w: writable by group (mode %04o), whose members could plant blobs that caches are then built from; chmod g-w %s (blob files not of root or the runner, or writable by others, are then fetched again)", dir, ErrUntrusted, fi.Mode().Perm(), dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("store: %s: %w: owned by uid %d, not by you or root; %s", dir, ErrUntrusted, st.Uid, fix)
	}
	return nil
}

// Dir returns the store's absolute root directory.
func (s *Store) Dir() string { return s.dir }

// Path returns where the blob h lives (whether or not it is present).
func (s *Store) Path(h v1.Hash) string {
	return filepath.Join(s.dir, "blobs", h.Algorithm, h.Hex)
}

// Has reports whether the blob h is in the store.
func (s *Store) Has(h v1.Hash) bool {
	if !validHash(h) {
		return false
	}
	fi, err := os.Lstat(s.Path(h))
	return err == nil && trustedBlob(fi)
}

// trustedBlob reports whether a blob file can only have been written by
// the runner or root: a regular file of theirs that nobody else may write.
// Anything else (left by an earlier, looser set-up of the store) counts as
// absent: it is fetched again and replaced.
func trustedBlob(fi fs.FileInfo) bool {
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o022 != 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	// One link: a blob is renamed into place, never linked; a second
	// name would be one someone else made.
	return !ok || (st.Uid == 0 || int(st.Uid) == os.Geteuid()) && st.Nlink == 1
}

// Size returns the size of the stored blob h.
func (s *Store) Size(h v1.Hash) (int64, error) {
	if !validHash(h) {
		return 0, fmt.Errorf("store: unsupported digest %q", h)
	}
	fi, err := os.Lstat(s.Path(h))
	if err != nil {
		return 0, fmt.Errorf("store: blob %s: %w", h, err)
	}
	if !trustedBlob(fi) {
		return 0, fmt.Errorf("store: blob %s: %w (%s)", h, ErrUntrustedBlob, s.Path(h))
	}
	return fi.Size(), nil
}

// Open opens the stored blob h for reading.
func (s *Store) Open(h v1.Hash) (io.ReadCloser, error) {
	if !validHash(h) {
		return nil, fmt.Errorf("store: unsupported digest %q", h)
	}
	f, err := os.OpenFile(s.Path(h), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("store: blob %s: %w", h, err)
	}
	if fi, err := f.Stat(); err != nil || !trustedBlob(fi) {
		f.Close()
		return nil, fmt.Errorf("store: blob %s: %w: %s is not a regular file of root or the runner, with one link, that only they can write (left from a looser set-up of the store?); run apply again, which fetches the blob and replaces the file, or remove it (rm %s)", h, ErrUntrustedBlob, s.Path(h), s.Path(h))
	}
	return f, nil
}

// ReadAll returns the content of the small stored blob h (manifests,
// configs). Do not use it for layers.
func (s *Store) ReadAll(h v1.Hash) ([]byte, error) {
	rc, err := s.Open(h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("store: reading blob %s: %w", h, err)
	}
	return b, nil
}

// Put streams r into the store as blob h. size is the expected size in bytes
// (-1 when unknown). The data goes to a temporary file, is verified against
// h and size, fsynced, and renamed into place; on any error (including a
// digest or size mismatch, wrapped ErrDigestMismatch / ErrSizeMismatch, and
// ctx cancellation) nothing is stored and the temporary file is removed.
// When the blob is already present Put returns (0, nil) without reading r.
// written is the number of bytes read from r. Readers in this process can
// follow the blob while it is written (Follow).
func (s *Store) Put(ctx context.Context, h v1.Hash, size int64, r io.Reader) (written int64, err error) {
	if !validHash(h) {
		return 0, fmt.Errorf("store: unsupported digest %q", h)
	}
	if s.Has(h) {
		return 0, nil
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), h.Hex+".*.partial")
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	tmp := f.Name()
	fl := s.startFlight(h, tmp)
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
		s.endFlight(h, fl, err)
	}()
	hasher := sha256.New()
	written, err = copyCtx(ctx, io.MultiWriter(flightWriter{f, fl}, hasher), r, size)
	if err != nil {
		return written, fmt.Errorf("store: writing blob %s: %w", h, err)
	}
	if err := verify(h, size, written, hasher); err != nil {
		return written, fmt.Errorf("store: blob %s: %w", h, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return written, fmt.Errorf("store: %w", err)
	}
	if err = f.Sync(); err != nil {
		return written, fmt.Errorf("store: syncing blob %s: %w", h, err)
	}
	if err = f.Close(); err != nil {
		return written, fmt.Errorf("store: closing blob %s: %w", h, err)
	}
	// Another writer may have finished first; renaming over its identical
	// file is atomic and harmless.
	if err = os.Rename(tmp, s.Path(h)); err != nil {
		return written, fmt.Errorf("store: placing blob %s: %w", h, err)
	}
	syncDir(filepath.Dir(s.Path(h)))
	return written, nil
}

// PutBytes stores b as blob h (for manifests and configs).
func (s *Store) PutBytes(ctx context.Context, h v1.Hash, b []byte) error {
	_, err := s.Put(ctx, h, int64(len(b)), bytes.NewReader(b))
	return err
}

func verify(h v1.Hash, want, got int64, hasher hash.Hash) error {
	if want >= 0 && got != want {
		return fmt.Errorf("%w: got %d bytes, want %d", ErrSizeMismatch, got, want)
	}
	if sum := hex.EncodeToString(hasher.Sum(nil)); sum != h.Hex {
		return fmt.Errorf("%w: content hashes to sha256:%s", ErrDigestMismatch, sum)
	}
	return nil
}

// copyCtx copies src to dst with a 1 MiB buffer, checking ctx between
// chunks and stopping early when more than limit bytes arrive (limit >= 0).
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader, limit int64) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			if limit >= 0 && n+int64(m) > limit {
				return n + int64(m), fmt.Errorf("%w: more than %d bytes", ErrSizeMismatch, limit)
			}
			if _, werr := dst.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func validHash(h v1.Hash) bool {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return false
	}
	for _, c := range h.Hex {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Blob describes one stored blob.
type Blob struct {
	Digest  v1.Hash
	Size    int64
	ModTime time.Time
}

// List returns every blob in the store, in digest order.
func (s *Store) List() ([]Blob, error) {
	dir := filepath.Join(s.dir, "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("store: listing blobs: %w", err)
	}
	var out []Blob
	for _, e := range entries {
		h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		if !validHash(h) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, Blob{Digest: h, Size: fi.Size(), ModTime: fi.ModTime()})
	}
	return out, nil
}

// GCReport says what GC removed (or would remove, on a dry run).
type GCReport struct {
	// Removed lists the blobs removed (or to remove), in digest order.
	Removed []v1.Hash
	// Bytes is their total size.
	Bytes int64
	// Kept counts the blobs that stay.
	Kept int
	// TempRemoved counts stale temporary files removed (never on a dry run).
	TempRemoved int
}

// StaleTemp is the age after which GC considers a temporary file abandoned
// by a crashed writer.
const StaleTemp = 24 * time.Hour

// GC removes every blob for which keep returns false; with dryRun it only
// reports them. It also removes temporary files older than StaleTemp
// (writers still running are younger). Use Referenced to compute keep from
// the manifests that cache indexes name.
func (s *Store) GC(keep func(v1.Hash) bool, dryRun bool) (GCReport, error) {
	var rep GCReport
	blobs, err := s.List()
	if err != nil {
		return rep, err
	}
	for _, b := range blobs {
		if keep != nil && keep(b.Digest) {
			rep.Kept++
			continue
		}
		if !dryRun {
			if err := os.Remove(s.Path(b.Digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return rep, fmt.Errorf("store: removing blob %s: %w", b.Digest, err)
			}
		}
		rep.Removed = append(rep.Removed, b.Digest)
		rep.Bytes += b.Size
	}
	if dryRun {
		return rep, nil
	}
	tmpDir := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(tmpDir)
	if err != nil {
		return rep, fmt.Errorf("store: listing temporary files: %w", err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < StaleTemp || !strings.HasSuffix(e.Name(), ".partial") {
			continue
		}
		if os.Remove(filepath.Join(tmpDir, e.Name())) == nil {
			rep.TempRemoved++
		}
	}
	return rep, nil
}

// KeepSet returns a keep function for GC that keeps exactly the blobs in set.
func KeepSet(set map[v1.Hash]bool) func(v1.Hash) bool {
	return func(h v1.Hash) bool { return set[h] }
}
