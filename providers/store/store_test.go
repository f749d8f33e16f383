package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
	"github.com/cachectl/cachectl/providers/store"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func blob(size int, seed int64) ([]byte, v1.Hash) {
	b := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(b)
	sum := sha256.Sum256(b)
	return b, v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func open(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertClean checks that tmp/ is empty and every stored blob hashes to its
// name.
func assertClean(t *testing.T, s *store.Store) {
	t.Helper()
	tmp, err := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tmp) != 0 {
		t.Errorf("tmp/ holds %d leftover files (first %s)", len(tmp), tmp[0].Name())
	}
	blobs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		f, err := os.Open(s.Path(b.Digest))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != b.Digest.Hex {
			t.Errorf("blob %s holds content hashing to %s", b.Digest, got)
		}
	}
}

func TestOpenCreatesLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"blobs/sha256", "tmp"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil || !fi.IsDir() {
			t.Fatalf("%s not created: %v", d, err)
		}
	}
	if s.Dir() != dir {
		t.Errorf("Dir() = %s, want %s", s.Dir(), dir)
	}
}

func TestPutOpenHas(t *testing.T) {
	s := open(t)
	b, h := blob(3<<20+17, 1)
	if s.Has(h) {
		t.Fatal("empty store has blob")
	}
	n, err := s.Put(context.Background(), h, int64(len(b)), bytes.NewReader(b))
	if err != nil || n != int64(len(b)) {
		t.Fatalf("Put = %d, %v", n, err)
	}
	if !s.Has(h) {
		t.Fatal("Has = false after Put")
	}
	if s.Path(h) != filepath.Join(s.Dir(), "blobs", "sha256", h.Hex) {
		t.Errorf("Path = %s", s.Path(h))
	}
	rc, err := s.Open(h)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, b) {
		t.Fatal("content differs")
	}
	// Present: no read at all.
	n, err = s.Put(context.Background(), h, int64(len(b)), iotest{t})
	if err != nil || n != 0 {
		t.Fatalf("second Put = %d, %v", n, err)
	}
	// Unknown size is allowed.
	b2, h2 := blob(1000, 2)
	if _, err := s.Put(context.Background(), h2, -1, bytes.NewReader(b2)); err != nil {
		t.Fatal(err)
	}
	assertClean(t, s)
}

type iotest struct{ t *testing.T }

func (r iotest) Read([]byte) (int, error) {
	r.t.Error("reader used for a present blob")
	return 0, io.EOF
}

func TestPutRejectsMismatch(t *testing.T) {
	s := open(t)
	b, h := blob(1<<20, 3)
	bad := append([]byte(nil), b...)
	bad[len(bad)/2] ^= 1
	ctx := context.Background()
	if _, err := s.Put(ctx, h, int64(len(b)), bytes.NewReader(bad)); !errors.Is(err, store.ErrDigestMismatch) {
		t.Errorf("corrupt content: err = %v, want ErrDigestMismatch", err)
	}
	if _, err := s.Put(ctx, h, int64(len(b)), bytes.NewReader(b[:len(b)-1])); !errors.Is(err, store.ErrSizeMismatch) {
		t.Errorf("short content: err = %v, want ErrSizeMismatch", err)
	}
	if _, err := s.Put(ctx, h, int64(len(b)), io.MultiReader(bytes.NewReader(b), bytes.NewReader([]byte("x")))); !errors.Is(err, store.ErrSizeMismatch) {
		t.Errorf("long content: err = %v, want ErrSizeMismatch", err)
	}
	if _, err := s.Put(ctx, h, -1, bytes.NewReader(bad)); !errors.Is(err, store.ErrDigestMismatch) {
		t.Errorf("corrupt content, unknown size: err = %v, want ErrDigestMismatch", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(cctx, h, int64(len(b)), bytes.NewReader(b)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if _, err := s.Put(ctx, v1.Hash{Algorithm: "sha256", Hex: "../../etc"}, 1, bytes.NewReader(b)); err == nil {
		t.Error("malformed digest accepted")
	}
	if s.Has(h) {
		t.Error("rejected blob was stored")
	}
	assertClean(t, s)
}

// slowReader yields its data in small pieces with pauses so that
// concurrent writers overlap.
type slowReader struct {
	r io.Reader
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return s.r.Read(p[:min(len(p), 64<<10)])
}

func TestConcurrentPutGoroutines(t *testing.T) {
	s := open(t)
	b, h := blob(2<<20, 4)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Put(context.Background(), h, int64(len(b)), &slowReader{bytes.NewReader(b)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if !s.Has(h) {
		t.Fatal("blob missing")
	}
	assertClean(t, s)
}

// TestHelperProcess is the child side of TestConcurrentPutProcesses.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("CACHECTL_STORE_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the parent's start signal so both processes race.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no start signal")
		}
		time.Sleep(2 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for seed := int64(0); seed < 8; seed++ {
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, h := blob(1<<20, 100+seed)
				if _, err := s.Put(context.Background(), h, int64(len(b)), &slowReader{bytes.NewReader(b)}); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
}

func TestConcurrentPutProcesses(t *testing.T) {
	s := open(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := 0; i < 2; i++ {
		cmd := exec.Command(exe, "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CACHECTL_STORE_HELPER_DIR="+s.Dir(), "CACHECTL_HELPER_ID="+strconv.Itoa(i))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	time.Sleep(200 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(s.Dir(), "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	blobs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 8 {
		t.Errorf("store holds %d blobs, want 8", len(blobs))
	}
	assertClean(t, s)
}

// putImage copies img's blobs into s.
func putImage(t *testing.T, s *store.Store, img v1.Image) v1.Hash {
	t.Helper()
	ctx := context.Background()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if err := s.PutBytes(ctx, d, raw); err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.RawConfigFile()
	cn, _ := img.ConfigName()
	if err := s.PutBytes(ctx, cn, cfg); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		ld, _ := l.Digest()
		sz, _ := l.Size()
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, ld, sz, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	return d
}

func TestImage(t *testing.T) {
	for _, oci := range []bool{false, true} {
		t.Run(fmt.Sprintf("oci=%v", oci), func(t *testing.T) {
			s := open(t)
			img := registrytest.Image(t, 3, 64<<10, 7)
			if oci {
				img = registrytest.OCI(t, img)
			}
			d := putImage(t, s, img)
			got, err := s.Image(d)
			if err != nil {
				t.Fatal(err)
			}
			if gd, _ := got.Digest(); gd != d {
				t.Errorf("digest %s, want %s", gd, d)
			}
			mt, _ := got.MediaType()
			wmt, _ := img.MediaType()
			if mt != wmt {
				t.Errorf("media type %s, want %s", mt, wmt)
			}
			// validate reads every layer compressed and uncompressed and
			// checks digests, diff IDs and sizes against manifest and config.
			if err := validate.Image(got); err != nil {
				t.Fatal(err)
			}
			cf, err := got.ConfigFile()
			if err != nil || cf.Architecture != "amd64" {
				t.Fatalf("config: %v %v", cf, err)
			}
		})
	}
}

func TestImageIncomplete(t *testing.T) {
	s := open(t)
	img := registrytest.Image(t, 2, 1024, 8)
	d := putImage(t, s, img)
	layers, _ := img.Layers()
	ld, _ := layers[1].Digest()
	if err := os.Remove(s.Path(ld)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(d); err == nil {
		t.Fatal("Image of an incomplete image succeeded")
	}
}

func TestGC(t *testing.T) {
	s := open(t)
	keepImg := registrytest.Image(t, 2, 4096, 9)
	dropImg := registrytest.Image(t, 2, 4096, 10)
	keep := putImage(t, s, keepImg)
	putImage(t, s, dropImg)
	before, _ := s.List()
	if len(before) != 8 {
		t.Fatalf("store holds %d blobs, want 8", len(before))
	}
	set, err := s.Referenced(keep)
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 4 {
		t.Fatalf("Referenced = %d blobs, want 4", len(set))
	}
	var wantBytes int64
	for _, b := range before {
		if !set[b.Digest] {
			wantBytes += b.Size
		}
	}
	// A stale temporary file from a crashed writer, and a fresh one.
	stale := filepath.Join(s.Dir(), "tmp", "dead.1.partial")
	fresh := filepath.Join(s.Dir(), "tmp", "live.2.partial")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * store.StaleTemp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	rep, err := s.GC(store.KeepSet(set), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 4 || rep.Bytes != wantBytes || rep.Kept != 4 {
		t.Fatalf("dry run = %+v, want 4 removed, %d bytes", rep, wantBytes)
	}
	if after, _ := s.List(); len(after) != 8 {
		t.Fatalf("dry run removed blobs")
	}
	rep, err = s.GC(store.KeepSet(set), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 4 || rep.Bytes != wantBytes || rep.TempRemoved != 1 {
		t.Fatalf("GC = %+v", rep)
	}
	if _, err := s.Image(keep); err != nil {
		t.Fatalf("kept image broken: %v", err)
	}
	if dd, _ := dropImg.Digest(); s.Has(dd) {
		t.Error("dropped manifest still there")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("GC removed a fresh temporary file")
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("GC kept a stale temporary file")
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv(store.EnvStore, "/x/y")
	if d := store.DefaultDir(); d != "/x/y" {
		t.Errorf("DefaultDir = %s", d)
	}
	t.Setenv(store.EnvStore, "")
	d := store.DefaultDir()
	if os.Geteuid() == 0 && d != "/var/cache/cachectl/store" {
		t.Errorf("DefaultDir as root = %s", d)
	}
	if !filepath.IsAbs(d) {
		t.Errorf("DefaultDir = %s, not absolute", d)
	}
}

// TestOpenRefusesUntrusted: a store someone else can write is refused, with
// the directory and the fix named; the admin's own link to the store is
// followed, a link inside it is not.
func TestOpenRefusesUntrusted(t *testing.T) {
	base := t.TempDir()

	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(open); !errors.Is(err, store.ErrUntrusted) || !strings.Contains(err.Error(), "writable by every user") || !strings.Contains(err.Error(), "--store DIR") {
		t.Errorf("world-writable store: got %v", err)
	}

	group := filepath.Join(base, "group")
	if err := os.Mkdir(group, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(group, 0o2775); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(group); !errors.Is(err, store.ErrUntrusted) || !strings.Contains(err.Error(), "writable by group") || !strings.Contains(err.Error(), "chmod g-w "+group) {
		t.Errorf("group-writable store: got %v", err)
	}

	inner := filepath.Join(base, "inner")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(inner, "tmp")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(inner); !errors.Is(err, store.ErrUntrusted) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("store with a linked tmp/: got %v", err)
	}

	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(link); err != nil {
		t.Errorf("store through the admin's link: %v", err)
	}

	if os.Geteuid() != 0 {
		t.Log("not root: the foreign-owner case needs chown")
		return
	}
	foreign := filepath.Join(base, "foreign")
	if err := os.Mkdir(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(foreign, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(foreign); !errors.Is(err, store.ErrUntrusted) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("store owned by nobody: got %v", err)
	}
}

// TestPlantedBlobIsFetchedAgain: a blob file that someone other than root
// or the runner could have written (left from a looser set-up of the
// store) counts as absent: Has says no, Open refuses it, and Put replaces
// it with verified bytes.
func TestPlantedBlobIsFetchedAgain(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("the real blob")
	h, _, err := v1.SHA256(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	planted := []byte("a member's blob")
	if err := os.WriteFile(s.Path(h), planted, 0o664); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.Path(h), 0o664); err != nil {
		t.Fatal(err)
	}
	if s.Has(h) {
		t.Error("Has: a group-writable blob file counts as present")
	}
	if rc, err := s.Open(h); err == nil || !errors.Is(err, store.ErrUntrustedBlob) || !strings.Contains(err.Error(), "run apply again") {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Open of a group-writable blob file: got %v, want ErrUntrustedBlob and the fix", err)
	}
	if err := os.Link(s.Path(h), s.Path(h)+".second-name"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.Path(h), 0o644); err != nil {
		t.Fatal(err)
	}
	if s.Has(h) {
		t.Error("Has: a blob file with a second link counts as present")
	}
	os.Remove(s.Path(h) + ".second-name")
	if os.Geteuid() == 0 {
		if err := os.Chmod(s.Path(h), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(s.Path(h), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if s.Has(h) {
			t.Error("Has: a blob file owned by uid 65534 counts as present")
		}
	}
	if _, err := s.Put(context.Background(), h, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadAll(h)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("after Put: %q, %v; want the verified bytes", got, err)
	}
}
