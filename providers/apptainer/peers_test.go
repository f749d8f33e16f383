package apptainer

// Helpers of the conformance tests: the reference runtimes (Apptainer and
// SingularityCE from /opt/peers, see ../shared/peers/README.md) and a
// comparable dump of a SIF file.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apptainer/sif/v2/pkg/sif"

	"github.com/cachectl/cachectl/providers/squashfs"
)

// peersEnvFile puts the reference runtimes on PATH.
const peersEnvFile = "/opt/peers/env.sh"

// peer is one installed reference runtime.
type peer struct {
	rt  *Runtime
	bin string
	// env is the environment of its commands: PATH, HOME and the runtime's
	// own variables (cache and temporary directories in a test directory).
	env []string
}

// requirePeers returns the reference runtimes, one per Runtime, or skips
// the test when /opt/peers/env.sh is absent.
func requirePeers(t testing.TB) []*peer {
	t.Helper()
	if _, err := os.Stat(peersEnvFile); err != nil {
		t.Skipf("reference runtimes not installed (%s is absent): the live SIF conformance tests build and run with Apptainer 1.5.3 and SingularityCE 4.5.1; install them with ../shared/peers/install.sh", peersEnvFile)
	}
	out, err := exec.Command("bash", "-c", `. "$0" >/dev/null && env -0`, peersEnvFile).Output()
	if err != nil {
		t.Fatalf("sourcing %s: %v", peersEnvFile, err)
	}
	vars := map[string]string{}
	for _, kv := range strings.Split(string(out), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	tmp := t.TempDir()
	var peers []*peer
	for _, rt := range []*Runtime{Apptainer, SingularityCE} {
		prefix := strings.ToUpper(rt.Name) + "_"
		env := []string{"PATH=" + vars["PATH"], "HOME=" + vars["HOME"], "LANG=C"}
		for k, v := range vars {
			if strings.HasPrefix(k, prefix) {
				env = append(env, k+"="+v)
			}
		}
		for _, d := range []string{"CACHEDIR", "TMPDIR"} {
			p := filepath.Join(tmp, rt.Name, strings.ToLower(d))
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
			env = append(env, prefix+d+"="+p)
		}
		bin, err := lookPathIn(rt.Name, vars["PATH"])
		if err != nil {
			t.Fatalf("%s not found on the PATH of %s: %v", rt.Name, peersEnvFile, err)
		}
		p := &peer{rt: rt, bin: bin, env: env}
		if v, _, _ := p.run(t, "", "version"); strings.TrimSpace(v) != rt.Version {
			t.Fatalf("%s version is %q, these tests follow %s %s", bin, strings.TrimSpace(v), rt.Product, rt.Version)
		}
		peers = append(peers, p)
	}
	return peers
}

func lookPathIn(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not in %s", name, path)
}

// run runs the runtime with args in dir and returns stdout, stderr and the
// exit code.
func (p *peer) run(t testing.TB, dir string, args ...string) (string, string, int) {
	t.Helper()
	return p.runEnv(t, dir, nil, args...)
}

func (p *peer) runEnv(t testing.TB, dir string, extra []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string{}, p.env...), extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s %s: %v", p.bin, strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// build runs `<runtime> build --no-https out src` (src: "docker://…").
func (p *peer) build(t testing.TB, out, src string) {
	t.Helper()
	stdout, stderr, code := p.run(t, "", "build", "--no-https", out, src)
	if code != 0 {
		t.Fatalf("%s build %s: exit %d\n%s%s", p.rt.Name, src, code, stdout, stderr)
	}
}

// sifDump is what the conformance tests compare of a SIF file.
type sifDump struct {
	// Summary is the header, the descriptors (type, name, group, link,
	// offset, size, partition metadata) and the squashfs superblock without
	// creation times, the file's UUID and the sizes of the squashfs
	// partition (which depend on the mksquashfs release).
	Summary string
	// PartitionSize is the size of the squashfs partition.
	PartitionSize int64
	// Objects are the data objects before the partition, in order.
	Objects []sifObject
	// Tree lists every path of the root file system: type and mode,
	// owner, and the sha256 of regular files or the target of links.
	Tree string
	// Files holds the content of the runtime's metadata files (every
	// regular file under /.singularity.d).
	Files map[string][]byte
	// Labels is /.singularity.d/labels.json decoded.
	Labels map[string]string
}

type sifObject struct {
	Name string // the descriptor's name, or its data type
	Data []byte
}

// fileName is the object's golden file name.
func (o sifObject) fileName(i int) string {
	return fmt.Sprintf("object-%d-%s", i+1, strings.NewReplacer("/", "_", " ", "_").Replace(o.Name))
}

func dumpSIF(t testing.TB, path string) *sifDump {
	t.Helper()
	ctx := context.Background()
	f, err := sif.LoadContainerFromPath(path, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.UnloadContainer()
	d := &sifDump{Files: map[string][]byte{}}
	var sum strings.Builder
	fmt.Fprintf(&sum, "launch script: %q\nversion: %s\nprimary architecture: %s\ndescriptors: %d total at %d, data at %d\n",
		f.LaunchScript(), f.Version(), f.PrimaryArch(), f.DescriptorsTotal(), f.DescriptorsOffset(), f.DataOffset())
	var part sif.Descriptor
	var descs []sif.Descriptor
	f.WithDescriptors(func(de sif.Descriptor) bool { descs = append(descs, de); return false })
	for _, de := range descs {
		link, isGroup := de.LinkedID()
		fmt.Fprintf(&sum, "descriptor %d: %v group %d link %d (group %v) offset %d", de.ID(), de.DataType(), de.GroupID(), link, isGroup, de.Offset())
		if de.DataType() == sif.DataPartition {
			fs, pt, arch, err := de.PartitionMetadata()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&sum, " %v %v %s\n", fs, pt, arch)
			part = de
			d.PartitionSize = de.Size()
			continue
		}
		fmt.Fprintf(&sum, " size %d name %q\n", de.Size(), de.Name())
		data, err := de.GetData()
		if err != nil {
			t.Fatal(err)
		}
		name := de.Name()
		if name == "" {
			name = de.DataType().String()
		}
		d.Objects = append(d.Objects, sifObject{Name: name, Data: data})
	}
	if part.ID() == 0 {
		t.Fatalf("%s: no partition", path)
	}
	// The squashfs superblock without its creation time and sizes.
	var sb [96]byte
	if _, err := part.GetReader().Read(sb[:]); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	fmt.Fprintf(&sum, "squashfs %d.%d: %d inodes, block size %d, compression %d, flags %#x, %d ids\n",
		le.Uint16(sb[28:]), le.Uint16(sb[30:]), le.Uint32(sb[4:]), le.Uint32(sb[12:]), le.Uint16(sb[20:]), le.Uint16(sb[24:]), le.Uint16(sb[26:]))
	d.Summary = sum.String()
	es, err := squashfs.List(ctx, path, part.Offset())
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Path < es[j].Path })
	var tree strings.Builder
	for _, e := range es {
		fmt.Fprintf(&tree, "%s %s %d/%d", e.Path, e.Mode, e.Uid, e.Gid)
		switch e.Type() {
		case '-':
			b, err := squashfs.Cat(ctx, path, part.Offset(), e.Path)
			if err != nil {
				t.Fatal(err)
			}
			s := sha256.Sum256(b)
			fmt.Fprintf(&tree, " %d sha256:%s", len(b), hex.EncodeToString(s[:8]))
			if strings.HasPrefix(e.Path, "/.singularity.d/") {
				d.Files[e.Path] = b
			}
		case 'l':
			fmt.Fprintf(&tree, " -> %s", e.Linkname)
		case 'c', 'b':
			fmt.Fprintf(&tree, " %s", e.Device)
		}
		tree.WriteByte('\n')
	}
	d.Tree = tree.String()
	if b, ok := d.Files["/.singularity.d/labels.json"]; ok {
		if err := json.Unmarshal(b, &d.Labels); err != nil {
			t.Fatalf("labels.json: %v", err)
		}
	}
	return d
}

// buildDateLabel is the label that records the build time.
const buildDateLabel = "org.label-schema.build-date"

var buildDateRE = regexp.MustCompile(`^([A-Za-z]+)_(\d+)_([A-Za-z]+)_(\d+)_(\d+):(\d+):(\d+)_(.+)$`)

// parseBuildDate reads a build-date label ("Sunday_29_November_2026_20:55:33_UTC")
// in a zone of the given name and offset (seconds east of UTC).
func parseBuildDate(s string, offset int) (time.Time, error) {
	m := buildDateRE.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, fmt.Errorf("build date %q: unexpected format", s)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	var month time.Month
	for mo := time.January; mo <= time.December; mo++ {
		if mo.String() == m[3] {
			month = mo
		}
	}
	if month == 0 {
		return time.Time{}, fmt.Errorf("build date %q: month %q", s, m[3])
	}
	tm := time.Date(n(4), month, n(2), n(5), n(6), n(7), 0, time.FixedZone(m[8], offset))
	if tm.Weekday().String() != m[1] || buildDate(tm) != s {
		return time.Time{}, fmt.Errorf("build date %q does not round-trip (%s)", s, buildDate(tm))
	}
	return tm, nil
}

// diffLines returns a short line diff of want and got ("" when equal).
func diffLines(want, got string) string {
	if want == got {
		return ""
	}
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	ws, gs := map[string]bool{}, map[string]bool{}
	for _, l := range w {
		ws[l] = true
	}
	for _, l := range g {
		gs[l] = true
	}
	var b strings.Builder
	for _, l := range w {
		if !gs[l] {
			fmt.Fprintf(&b, "- %q\n", l)
		}
	}
	for _, l := range g {
		if !ws[l] {
			fmt.Fprintf(&b, "+ %q\n", l)
		}
	}
	if b.Len() == 0 {
		b.WriteString("(same lines, different order or count)\n")
	}
	return b.String()
}

// compareDumps reports every difference between want (the runtime's SIF)
// and got (the Builder's).
func compareDumps(t testing.TB, want, got *sifDump) {
	t.Helper()
	if d := diffLines(want.Summary, got.Summary); d != "" {
		t.Errorf("SIF header/descriptors differ (- runtime, + cachectl):\n%s", d)
	}
	if len(want.Objects) != len(got.Objects) {
		t.Errorf("%d data objects, want %d", len(got.Objects), len(want.Objects))
	}
	for i := 0; i < len(want.Objects) && i < len(got.Objects); i++ {
		if w, g := want.Objects[i], got.Objects[i]; w.Name != g.Name || !bytes.Equal(w.Data, g.Data) {
			t.Errorf("data object %d: %s\n--- runtime ---\n%s\n--- cachectl ---\n%s", i+1, g.Name, w.Data, g.Data)
		}
	}
	if d := diffLines(want.Tree, got.Tree); d != "" {
		t.Errorf("root file systems differ (- runtime, + cachectl):\n%s", d)
	}
	for p, w := range want.Files {
		if g, ok := got.Files[p]; ok && !bytes.Equal(w, g) {
			t.Errorf("%s differs:\n--- runtime ---\n%s\n--- cachectl ---\n%s", p, w, g)
		}
	}
}
