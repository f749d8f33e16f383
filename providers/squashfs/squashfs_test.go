package squashfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"github.com/cachectl/cachectl/providers/buildtest"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireTools skips (or fails when CACHECTL_REQUIRE_TOOLS is set) unless
// every named program is on PATH.
var mtime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func sampleTar(ctx context.Context, w io.Writer) error {
	tw := tar.NewWriter(w)
	hdrs := []struct {
		h    tar.Header
		body string
	}{
		{tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, ""},
		{tar.Header{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 0, Gid: 0}, "#!/bin/sh\n"},
		{tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, ""},
		{tar.Header{Name: "home/", Typeflag: tar.TypeDir, Mode: 0o755}, ""},
		{tar.Header{Name: "home/user/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 1000, Gid: 1000}, ""},
		{tar.Header{Name: "home/user/a file", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 1000, Gid: 100}, "hello world\n"},
		{tar.Header{Name: "home/user/hard", Typeflag: tar.TypeLink, Linkname: "home/user/a file"}, ""},
		{tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}, ""},
		{tar.Header{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755}, ""},
		{tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}, ""},
	}
	for _, e := range hdrs {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := e.h
		h.ModTime = mtime
		h.Size = int64(len(e.body))
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			return err
		}
	}
	return tw.Close()
}

func byPath(es []Entry) map[string]Entry {
	m := map[string]Entry{}
	for _, e := range es {
		m[e.Path] = e
	}
	return m
}

func TestCreateKeepsMetadata(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs", "unsquashfs")
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "x.sqsh")
	var st ProcessStats
	if err := Create(ctx, out, Options{Processors: 1, Stats: &st}, sampleTar); err != nil {
		t.Fatal(err)
	}
	sb, err := VerifyFile(out, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sb.CompressionName() != "gzip" {
		t.Errorf("compression = %s", sb.CompressionName())
	}
	if st.MaxRSSKiB <= 0 {
		t.Errorf("no rusage recorded: %+v", st)
	}
	es, err := List(ctx, out, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := byPath(es)
	check := func(p, mode string, uid, gid int) {
		t.Helper()
		e, ok := m[p]
		if !ok {
			t.Errorf("%s missing; have %v", p, es)
			return
		}
		if e.Mode != mode || e.Uid != uid || e.Gid != gid {
			t.Errorf("%s = %s %d/%d, want %s %d/%d", p, e.Mode, e.Uid, e.Gid, mode, uid, gid)
		}
	}
	check("/", "drwxr-xr-x", 0, 0)
	check("/bin/su", "-rwsr-xr-x", 0, 0)
	check("/home/user", "drwx------", 1000, 1000)
	check("/home/user/a file", "-rw-r-----", 1000, 100)
	check("/home/user/hard", "-rw-r-----", 1000, 100)
	check("/tmp", "drwxrwxrwt", 0, 0)
	check("/dev/null", "crw-rw-rw-", 0, 0)
	if m["/bin/sh"].Linkname != "busybox" {
		t.Errorf("symlink = %+v", m["/bin/sh"])
	}
	if m["/dev/null"].Device != "1,3" {
		t.Errorf("device = %q", m["/dev/null"].Device)
	}
	if p := m["/bin/su"].Perm(); p != 0o4755 {
		t.Errorf("perm = %o", p)
	}
	if p := m["/tmp"].Perm(); p != 0o1777 {
		t.Errorf("perm = %o", p)
	}
	b, err := Cat(ctx, out, 0, "/home/user/a file")
	if err != nil || string(b) != "hello world\n" {
		t.Errorf("cat = %q, %v", b, err)
	}
}

func TestCreateAllRootAndCompression(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs", "unsquashfs")
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "x.sqsh")
	if err := Create(ctx, out, Options{AllRoot: true, Compression: "lzo", NoDataCompression: true}, sampleTar); err != nil {
		t.Fatal(err)
	}
	sb, err := VerifyFile(out, 0)
	if err != nil || sb.CompressionName() != "lzo" {
		t.Fatalf("superblock %+v, %v", sb, err)
	}
	es, err := List(ctx, out, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Uid != 0 || e.Gid != 0 {
			t.Errorf("%s owned by %d/%d", e.Path, e.Uid, e.Gid)
		}
	}
}

func TestCreateWriterErrorLeavesNothing(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs")
	out := filepath.Join(t.TempDir(), "x.sqsh")
	boom := errors.New("layer truncated")
	err := Create(context.Background(), out, Options{}, func(ctx context.Context, w io.Writer) error {
		tw := tar.NewWriter(w)
		tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 20})
		tw.Write(bytes.Repeat([]byte("x"), 1000))
		return boom // the stream ends mid-file
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("output left behind: %v", err)
	}
}

func TestCreateMksquashfsErrorIncludesStderr(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs")
	out := filepath.Join(t.TempDir(), "x.sqsh")
	err := Create(context.Background(), out, Options{Compression: "nosuchcomp"}, sampleTar)
	if err == nil || !strings.Contains(err.Error(), "nosuchcomp") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("output left behind: %v", err)
	}
}

func TestCreateCancel(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs")
	out := filepath.Join(t.TempDir(), "x.sqsh")
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() { <-started; time.Sleep(50 * time.Millisecond); cancel() }()
	err := Create(ctx, out, Options{}, func(ctx context.Context, w io.Writer) error {
		close(started)
		tw := tar.NewWriter(w)
		tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40})
		buf := make([]byte, 1<<16)
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			if _, err := tw.Write(buf); err != nil {
				return err
			}
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("output left behind: %v", err)
	}
}

func TestCreateAtOffset(t *testing.T) {
	buildtest.RequireTools(t, "mksquashfs", "unsquashfs")
	out := filepath.Join(t.TempDir(), "x.img")
	if err := os.WriteFile(out, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Create(context.Background(), out, Options{Offset: 8192}, sampleTar); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyFile(out, 8192); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyFile(out, 0); !errors.Is(err, ErrNotSquashfs) {
		t.Errorf("offset 0: %v", err)
	}
	es, err := List(context.Background(), out, 8192)
	if err != nil || len(es) < 5 {
		t.Fatalf("list: %v %v", es, err)
	}
}

func TestReadSuperblockRejects(t *testing.T) {
	good := make([]byte, 4096)
	copy(good, "hsqs")
	good[12], good[13] = 0, 0 // block size 128K = 0x20000
	good[14] = 2
	good[28] = 4
	good[40] = 100
	if _, err := ReadSuperblock(bytes.NewReader(good), 0, int64(len(good))); err != nil {
		t.Fatalf("good: %v", err)
	}
	bad := append([]byte(nil), good...)
	bad[28] = 3
	if _, err := ReadSuperblock(bytes.NewReader(bad), 0, int64(len(bad))); err == nil {
		t.Error("version 3 accepted")
	}
	if _, err := ReadSuperblock(bytes.NewReader(good), 0, 50); err == nil {
		t.Error("truncated accepted")
	}
	if _, err := ReadSuperblock(bytes.NewReader(make([]byte, 200)), 0, 200); !errors.Is(err, ErrNotSquashfs) {
		t.Errorf("zeros: %v", err)
	}
}
