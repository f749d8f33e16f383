package squashfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFilter(t *testing.T) {
	var in bytes.Buffer
	if err := sampleTar(context.Background(), &in); err != nil {
		t.Fatal(err)
	}
	f := &Filter{
		Edit: func(h *tar.Header) bool {
			h.Mode |= 0o400
			return !strings.HasPrefix(h.Name, "dev/")
		},
		IfMissing: []*tar.Header{
			{Name: "tmp", Typeflag: tar.TypeDir, Mode: 0o755},      // exists (1777): kept
			{Name: "var/tmp", Typeflag: tar.TypeDir, Mode: 0o755},  // parent created
			{Name: "bin/sh/x", Typeflag: tar.TypeDir, Mode: 0o755}, // below a symlink: skipped
			{Name: "singularity", Typeflag: tar.TypeSymlink, Linkname: ".singularity.d/runscript"},
			{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "other"}, // exists: kept
		},
	}
	var out bytes.Buffer
	if err := f.Copy(context.Background(), &out, &in); err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	var order []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
		order = append(order, h.Name)
		if h.Name == "home/user/a file" {
			if b, _ := io.ReadAll(tr); string(b) != "hello world\n" {
				t.Errorf("content %q", b)
			}
		}
	}
	if _, ok := got["dev/null"]; ok {
		t.Error("dropped entry kept")
	}
	if h := got["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp: %+v", h)
	}
	if got["var/"] == nil || got["var/tmp/"] == nil {
		t.Errorf("var/tmp not created: %v", order)
	}
	if got["bin/sh/x/"] != nil {
		t.Error("created a directory below a symlink")
	}
	if h := got["bin/sh"]; h.Linkname != "busybox" {
		t.Errorf("existing symlink replaced: %+v", h)
	}
	if h := got["singularity"]; h == nil || h.Linkname != ".singularity.d/runscript" {
		t.Errorf("symlink not added: %v", order)
	}
	if h := got["home/user/"]; h.Mode != 0o700 {
		t.Errorf("edit: %o", h.Mode)
	}
}

func TestPipeReportsProducerError(t *testing.T) {
	boom := errors.New("boom")
	w := Pipe(&Filter{}, func(ctx context.Context, w io.Writer) error {
		io.WriteString(w, strings.Repeat("x", 100))
		return boom
	})
	if err := w(context.Background(), io.Discard); !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
}
