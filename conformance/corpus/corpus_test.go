package corpus

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSparseMember checks the hand-made PAX 1.0 sparse member against
// archive/tar's reader and GNU tar's extraction.
func TestSparseMember(t *testing.T) {
	body := "head" + strings.Repeat("\x00", 9000) + "middle" + strings.Repeat("\x00", 5000) + "tail"
	regions := []SparseRegion{{0, 512}, {8704, 512}, {13824, int64(len(body)) - 13824}}
	ms := []Member{
		Reg("before", 0o644, "b"),
		{Name: "d/sparse", Mode: 0o640, UID: 7, Body: body, Sparse: regions},
		Reg("after", 0o644, "a"),
	}
	raw, err := tarBytes(ms)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "d/sparse" && (string(b) != body || h.Uid != 7 || h.Mode != 0o640) {
			t.Errorf("archive/tar reads d/sparse as %d bytes uid %d mode %o", len(b), h.Uid, h.Mode)
		}
	}
	if strings.Join(names, " ") != "before d/sparse after" {
		t.Errorf("archive/tar reads members %q", names)
	}
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("GNU tar not installed")
	}
	dir := t.TempDir()
	cmd := exec.Command("tar", "-x", "-C", dir)
	cmd.Stdin = bytes.NewReader(raw)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "d/sparse"))
	if err != nil || string(got) != body {
		t.Errorf("GNU tar extracts d/sparse as %d bytes (%v): %s", len(got), err, nonZero(got))
	}
	if _, err := sparseMember(&tar.Header{Typeflag: tar.TypeReg, Name: "x"}, "ab", []SparseRegion{{0, 1}}); err == nil {
		t.Error("data outside the regions was accepted")
	}
	if _, err := sparseMember(&tar.Header{Typeflag: tar.TypeReg, Name: "x"}, body, []SparseRegion{{0, 4}, {8704, 512}}); err == nil {
		t.Error("a region ending off a block before the last was accepted")
	}
}

// TestEncodings checks each encoding's blob decodes to the same tar.
func TestEncodings(t *testing.T) {
	ms := []Member{Reg("f", 0o644, "x")}
	for _, oci := range []bool{false, true} {
		for _, enc := range []Encoding{Gzip, Uncompressed, Zstd} {
			l, err := layer(ms, enc, oci)
			if enc == Zstd && !oci {
				if err == nil {
					t.Error("zstd in a Docker manifest was accepted")
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			d, _ := l.Digest()
			id, _ := l.DiffID()
			if (enc == Uncompressed) != (d == id) {
				t.Errorf("oci=%v enc=%d: digest %s diff ID %s", oci, enc, d, id)
			}
		}
	}
}

// nonZero lists the non-zero runs of b as "OFFSET:TEXT".
func nonZero(b []byte) string {
	var out []string
	for i := 0; i < len(b); i++ {
		if b[i] == 0 {
			continue
		}
		j := i
		for j < len(b) && b[j] != 0 {
			j++
		}
		out = append(out, fmt.Sprintf("%d:%q", i, b[i:j]))
		i = j
	}
	return strings.Join(out, " ")
}
