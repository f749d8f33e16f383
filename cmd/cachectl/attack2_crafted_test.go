package main

// Crafted input, second round (the critic's review of issue 9): files
// whose headers lie about their sizes. cachectl must answer a bad file with
// an error (exit 1), never a panic and a stack trace (exit 2, which
// monitoring reads as "drift"), whoever made the file: a user handing the
// admin a SIF to import (manage-singularity-cache -i FILE), or a member of
// the cache group who leaves one in a root the admin then adopts.
//
// These tests fail on the code they were written against, by design: they
// show the holes.

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apptainer/sif/v2/pkg/sif"

	"github.com/cachectl/cachectl/providers/registry/registrytest"
)

// SIF layout (github.com/apptainer/sif/v2 pkg/sif, format version 01): the
// global header's DescriptorsTotal is the int64 at offset 88; each
// descriptor (DescriptorsOffset on, 585 bytes each) starts with DataType
// (int32), Used (1 byte), ID, GroupID, LinkedID (uint32 each), Offset and
// Size (int64).
const (
	sifHdrDescrTotal  = 88
	sifHdrDescrOffset = 96
	sifDescrLen       = 585
	sifDescrType      = 0
	sifDescrSize      = 25
)

// craftedSIF writes a valid SIF at p (a squashfs primary system partition
// made by mksquashfs, and a definition file), then lets edit change its
// bytes.
func craftedSIF(t *testing.T, p string, edit func(b []byte)) {
	t.Helper()
	registrytest.RequireTool(t, "mksquashfs")
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "rootfs", "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "rootfs", "etc", "hostname"), []byte("crafted\n"), 0o644))
	sq := filepath.Join(dir, "part.sqsh")
	if out, err := exec.Command("mksquashfs", filepath.Join(dir, "rootfs"), sq, "-all-root", "-noappend", "-quiet").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	part, err := os.ReadFile(sq)
	must(t, err)
	def, err := sif.NewDescriptorInput(sif.DataDeffile, bytes.NewReader([]byte("bootstrap: docker\nfrom: crafted/app:1\n\n")))
	must(t, err)
	pi, err := sif.NewDescriptorInput(sif.DataPartition, bytes.NewReader(part),
		sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, "amd64"))
	must(t, err)
	f, err := sif.CreateContainerAtPath(p, sif.OptCreateWithDescriptors(def, pi))
	must(t, err)
	must(t, f.UnloadContainer())
	b, err := os.ReadFile(p)
	must(t, err)
	edit(b)
	must(t, os.WriteFile(p, b, 0o644))
}

// sifDescriptor returns the offset in b of the first descriptor of the
// data type.
func sifDescriptor(t *testing.T, b []byte, typ sif.DataType) int {
	t.Helper()
	total := int(binary.LittleEndian.Uint64(b[sifHdrDescrTotal:]))
	off := int(binary.LittleEndian.Uint64(b[sifHdrDescrOffset:]))
	for i := 0; i < total; i++ {
		d := off + i*sifDescrLen
		if sif.DataType(binary.LittleEndian.Uint32(b[d+sifDescrType:])) == typ && b[d+4] == 1 {
			return d
		}
	}
	t.Fatalf("no descriptor of type %v in the SIF", typ)
	return 0
}

func craftedSpec(root string) string {
	return `
cache "sif" {
  runtime   = "apptainer"
  root      = "` + root + `"
  images    = []
  file_mode = "0644"
  dir_mode  = "0755"
}
`
}

// TestCraftedSIFImport: a file whose SIF header claims 2^60 descriptors.
// "cachectl import" (and manage-singularity-cache -i, which checks the
// file the same way first) must refuse it as not a SIF file. On the code
// this was written against, both panic in the SIF library's loader
// (makeslice: len out of range): the header's counts are used before
// anything bounds them by the file's size.
func TestCraftedSIFImport(t *testing.T) {
	e := newPlainEnv(t)
	root := e.path("cache", "sif")
	e.writeSpec(craftedSpec(root))
	bad := e.path("handed-over.sif")
	craftedSIF(t, bad, func(b []byte) { binary.LittleEndian.PutUint64(b[sifHdrDescrTotal:], 1<<60) })

	r := e.cachectl("import", "sif", bad, "crafted/app:1")
	checkClean(t, r, 1)

	checkClean(t, e.compat("manage-singularity-cache", "-i", bad, "crafted/app:1"), 1)
}

// TestCraftedSIFAdopt: a member of the cache group leaves a SIF in the
// root (it passes the builder's check: a real squashfs primary partition)
// whose definition-file descriptor claims 2^62 bytes. "cachectl adopt"
// reads every file of the root and must list this one as unrecognised (or
// fail with exit 1). On the code this was written against it panics in
// planner/adopt.readSIF, which calls the descriptor's GetData (make of the
// claimed size) before it checks the size against its 1 MiB bound.
func TestCraftedSIFAdopt(t *testing.T) {
	e := newPlainEnv(t)
	root := e.path("cache", "sif")
	must(t, os.MkdirAll(filepath.Join(root, "team"), 0o755))
	craftedSIF(t, filepath.Join(root, "team", "tool:1"), func(b []byte) {
		d := sifDescriptor(t, b, sif.DataDeffile)
		binary.LittleEndian.PutUint64(b[d+sifDescrSize:], 1<<62)
	})
	r := e.cachectl("adopt", "legacy", root, "--runtime", "apptainer", "--dry-run", "--offline")
	checkClean(t, r, 0, 1)
}

// TestCraftedFileNameInOutput: a member of the cache group names a file in
// the root with terminal control sequences (and a newline). plan and list
// print unmanaged files' names as they are, so the admin's terminal runs
// the sequences: here, cursor up and erase line, which wipe the lines of
// the plan printed before the name (the changes the admin is about to
// approve), then a forged line. With NO_COLOR set cachectl itself prints
// no escape sequence; none may come from a file name (quote it, as ls and
// Go's %q do).
func TestCraftedFileNameInOutput(t *testing.T) {
	e := newPlainEnv(t)
	root := e.path("cache", "sif")
	must(t, os.MkdirAll(root, 0o755))
	evil := "x\x1b[1A\x1b[2K\x1b[1A\x1b[2K\rNo changes. The cache matches the spec.\n\x1b]0;title\x07"
	must(t, os.WriteFile(filepath.Join(root, evil), []byte("member's file\n"), 0o644))
	e.writeSpec(craftedSpec(root))
	for _, args := range [][]string{{"plan"}, {"list"}} {
		r := e.cachectl(args...)
		checkClean(t, r, 0, 1)
		if strings.ContainsAny(r.out, "\x1b\x07") {
			t.Errorf("cachectl %s printed a file name's control characters raw (the admin's terminal runs them): %q", args[0], r.out)
		}
	}
}
