package tarindex_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cachectl/cachectl/providers/tarindex"
)

func tarOf(t *testing.T, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < len(files); i += 2 {
		if err := tw.WriteHeader(&tar.Header{Name: files[i], Mode: 0o644, Size: int64(len(files[i+1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[i+1]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestScan(t *testing.T) {
	raw := tarOf(t, "a", "hello", "dir/b", strings.Repeat("x", 600), "c", "")
	got := map[string]string{}
	end, err := tarindex.Scan(bytes.NewReader(raw), func(h *tar.Header, off int64) error {
		got[h.Name] = string(raw[off : off+h.Size])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["a"] != "hello" || got["dir/b"] != strings.Repeat("x", 600) || got["c"] != "" {
		t.Errorf("members read at their offsets: %q", got)
	}
	// The end-of-archive marker (1024 zero bytes) follows end.
	if end != int64(len(raw))-1024 || !bytes.Equal(raw[end:], make([]byte, 1024)) {
		t.Errorf("end %d of %d bytes", end, len(raw))
	}

	stop := errors.New("stop")
	n := 0
	_, err = tarindex.Scan(bytes.NewReader(raw), func(*tar.Header, int64) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("fn's error: %v after %d calls", err, n)
	}
}

func TestScanBroken(t *testing.T) {
	raw := tarOf(t, "a", "hello", "b", strings.Repeat("x", 2000))
	none := func(*tar.Header, int64) error { return nil }
	for _, tc := range []struct {
		name string
		raw  []byte
		want error
		text string
	}{
		{"in member data", raw[:2000], tarindex.ErrTruncated, "member b needs 2000 bytes at offset 1536"},
		{"in a header", raw[:1100], tarindex.ErrTruncated, "the tar headers end early (after 1 members)"},
		{"not tar", bytes.Repeat([]byte("not a tar file "), 100), tarindex.ErrInvalid, "not a readable tar file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tarindex.Scan(bytes.NewReader(tc.raw), none)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("Scan: %v; want %v saying %q", err, tc.want, tc.text)
			}
		})
	}
}
