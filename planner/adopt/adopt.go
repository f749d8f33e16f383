// Package adopt takes over the files of a cache root that another tool
// made — Apptainer/SingularityCE SIF files (laid out <root>/<reference> by
// Determined's launcher, or *.sif as "singularity pull" names them),
// "enroot import" .sqsh files named with "+", Podman OCI archives — so that
// cachectl manages them from then on without rebuilding them.
//
// Scan looks at every file the root's index does not hold (read-only,
// through cacheroot's handles): it checks the format with the builder's
// Verify (as import does), reads what the file tells about itself and
// infers the image reference. Resolve settles names that read several ways
// against a registry. Fragment writes the spec for the result (hclwrite),
// and Take records the files in the root's index, in place, changing
// nothing of them.
package adopt

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/spec"
)

// Status says what adopt does with a file.
type Status string

// File statuses.
const (
	// StatusAdopt: the reference is known; the file is adopted.
	StatusAdopt Status = "adopt"
	// StatusAmbiguous: the name reads as several references and nothing
	// settled which; the file stays unmanaged.
	StatusAmbiguous Status = "ambiguous"
	// StatusUnresolved: no reference could be inferred; unmanaged.
	StatusUnresolved Status = "unresolved"
	// StatusUnrecognised: not an artifact of the cache's format; never
	// touched.
	StatusUnrecognised Status = "unrecognised"
	// StatusSkipped: an artifact, but not adoptable (hard links, a
	// conflict with the spec); never touched.
	StatusSkipped Status = "skipped"
)

// File is one file of the root that the index does not hold.
type File struct {
	// Name is the path relative to the root, slash separated.
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Reason says why a file is not adopted, or notes how it is.
	Reason string `json:"reason,omitempty"`
	// Format is what the file is ("sif", "sqsh", "oci-archive"; "" unknown).
	Format string `json:"format,omitempty"`
	// Ref is the image reference (StatusAdopt).
	Ref string `json:"ref,omitempty"`
	// Readings are the references an ambiguous name reads as.
	Readings []string `json:"readings,omitempty"`
	// CustomName is set when Name is not where the reference lands by
	// default (spec.FileName): the spec then names the file itself.
	CustomName bool `json:"custom_name,omitempty"`
	// Platform is os/arch as the file tells it ("" when it does not).
	Platform string `json:"platform,omitempty"`
	// Digest is the image digest the file says it was built from, or (with
	// tracking) the tag's digest from the registry.
	Digest string `json:"digest,omitempty"`
	// Info is what goes into the index entry's adoption record.
	Info cacheroot.Adoption `json:"info"`

	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	Mode    spec.Mode `json:"-"`
	UID     int       `json:"uid"`
	GID     int       `json:"gid"`
	Inode   uint64    `json:"inode"`

	fileRef string // the reference the file itself names (SIF, archive)
	track   bool   // Digest is tracked: a moved tag replaces the file
}

// Result is a scanned root.
type Result struct {
	Root    string       `json:"root"`
	Runtime spec.Runtime `json:"runtime"`
	// DirMode, UID and GID of the root directory.
	DirMode spec.Mode `json:"-"`
	UID     int       `json:"uid"`
	GID     int       `json:"gid"`
	// Files sorted by name.
	Files []*File `json:"files"`
}

// Options tune Scan.
type Options struct {
	// Runtime of the cache; "" infers it from the files (the format most
	// of them have; an error when formats tie).
	Runtime spec.Runtime
	// Builder returns the builder (for Verify) of a runtime.
	Builder func(spec.Runtime) (providers.Builder, error)
	// Map gives the reference of file names (relative to the root), from
	// --map or a mapping file: it overrides inference.
	Map map[string]string
	// Wanted maps the names the spec already wants in the root to their
	// references: a file there is adopted as that reference.
	Wanted map[string]string
}

// Scan looks at every file of the root that its index does not hold and
// says, for each, whether and as which reference it can be adopted. It
// only reads.
func Scan(ctx context.Context, root string, opts Options) (*Result, error) {
	rt := opts.Runtime
	idxRT := rt
	if idxRT == "" {
		idxRT = spec.RuntimeApptainer // names are checked by the loosest rule
	}
	st, err := cacheroot.Scan(root, cacheroot.ScanOptions{Runtime: idxRT})
	if err != nil {
		return nil, err
	}
	if !st.Exists {
		return nil, fmt.Errorf("%s does not exist: adopt takes over what a root holds", root)
	}
	r, err := cacheroot.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	res := &Result{Root: root, Runtime: rt, DirMode: spec.DefaultDirMode, UID: -1, GID: -1}
	if d, err := r.OpenDir("."); err == nil {
		if fi, err := d.Stat(); err == nil {
			res.DirMode = spec.ModeOf(fi.Mode())
			if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
				res.UID, res.GID = int(sys.Uid), int(sys.Gid)
			}
		}
		d.Close()
	}
	for _, u := range st.Unmanaged {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res.Files = append(res.Files, look(ctx, r, u.Name, opts))
	}
	if rt == "" {
		if rt, err = inferRuntime(res.Files); err != nil {
			return nil, err
		}
		res.Runtime = rt
	}
	for _, f := range res.Files {
		finish(f, rt, opts)
	}
	sort.Slice(res.Files, func(i, j int) bool { return res.Files[i].Name < res.Files[j].Name })
	res.dedupe(opts.Wanted)
	return res, nil
}

// look opens one file through the root's handles, checks its format and
// reads what it tells (the reference is inferred later, by finish, once the
// runtime is known).
func look(ctx context.Context, r *cacheroot.Root, name string, opts Options) *File {
	f := &File{Name: name, UID: -1, GID: -1}
	fh, err := r.OpenFile(name)
	if err != nil {
		f.Status, f.Reason = StatusUnrecognised, "not a regular file: "+err.Error()
		return f
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		f.Status, f.Reason = StatusUnrecognised, err.Error()
		return f
	}
	sys, _ := fi.Sys().(*syscall.Stat_t)
	f.Size, f.ModTime, f.Mode = fi.Size(), fi.ModTime(), spec.ModeOf(fi.Mode())
	if sys != nil {
		f.UID, f.GID, f.Inode = int(sys.Uid), int(sys.Gid), sys.Ino
	}
	f.Info.Mode, f.Info.UID, f.Info.GID = f.Mode.String(), f.UID, f.GID
	f.Format = sniff(fh)
	rt := RuntimeOf(f.Format)
	if rt == "" {
		f.Status, f.Reason = StatusUnrecognised, formatName("")
		return f
	}
	if sys != nil && sys.Nlink > 1 {
		f.Status, f.Reason = StatusSkipped, fmt.Sprintf("it has %d hard links: another name shares the file, and managing it (mode, owner, replacement) would change that one too; copy it to a file of its own first", sys.Nlink)
		return f
	}
	b, err := opts.Builder(rt)
	if err != nil {
		f.Status, f.Reason = StatusUnrecognised, err.Error()
		return f
	}
	if err := b.Verify(ctx, fdPath(fh)); err != nil {
		f.Status, f.Reason = StatusUnrecognised, fmt.Sprintf("looks like %s but is not a valid one: %v", formatName(f.Format), err)
		return f
	}
	switch f.Format {
	case FormatSIF:
		si, err := readSIF(fdPath(fh))
		if err != nil {
			f.Status, f.Reason = StatusUnrecognised, err.Error()
			return f
		}
		f.Info.Definition, f.Info.Labels, f.Info.Tool = si.definition, si.labels, si.tool()
		f.fileRef = si.ref()
		if f.Digest = si.labels[labelBaseDigest]; f.Digest != "" {
			f.Info.DigestFrom = "file"
		}
		if si.arch != "" {
			f.Platform = "linux/" + si.arch
		}
	case FormatOCIArchive:
		ai, err := readArchive(fh)
		if err != nil {
			f.Status, f.Reason = StatusUnrecognised, err.Error()
			return f
		}
		f.Info.RefName, f.Info.ArchiveManifest, f.Platform = ai.refName, ai.manifest, ai.platform
		f.fileRef = ai.refName
	}
	f.Status = StatusAdopt // reference to be inferred
	return f
}

// inferRuntime picks the runtime of the format most files have.
func inferRuntime(files []*File) (spec.Runtime, error) {
	count := map[string]int{}
	for _, f := range files {
		if f.Format != "" && f.Status == StatusAdopt {
			count[f.Format]++
		}
	}
	best, n, tie := "", 0, false
	for _, fm := range []string{FormatSIF, FormatSquashfs, FormatOCIArchive} {
		switch {
		case count[fm] > n:
			best, n, tie = fm, count[fm], false
		case count[fm] == n && n > 0:
			tie = true
		}
	}
	switch {
	case n == 0:
		return "", fmt.Errorf("found no SIF, .sqsh or OCI archive files to adopt; give the runtime with --runtime")
	case tie:
		return "", fmt.Errorf("the root holds as many files of one format as of another (%d SIF, %d squashfs, %d OCI archives); give the runtime with --runtime", count[FormatSIF], count[FormatSquashfs], count[FormatOCIArchive])
	}
	return RuntimeOf(best), nil
}

// finish checks a looked-at file against the cache's runtime and infers
// its reference.
func finish(f *File, rt spec.Runtime, opts Options) {
	if f.Status != StatusAdopt {
		return
	}
	if f.Format != rt.Format() {
		f.Status, f.Reason = StatusUnrecognised, fmt.Sprintf("%s, not a %s artifact", formatName(f.Format), rt)
		return
	}
	if err := spec.CheckName(rt, f.Name); err != nil {
		f.Status, f.Reason = StatusSkipped, "its name cannot be a cache file name: "+err.Error()
		return
	}
	if ref, ok := opts.Map[f.Name]; ok {
		set(f, rt, ref, "map")
		return
	}
	if ref, ok := opts.Wanted[f.Name]; ok {
		if f.fileRef != "" && !SameImageAnyHost(ref, f.fileRef) {
			f.Status, f.Reason = StatusSkipped, fmt.Sprintf("the spec wants %s here, but the file says it holds %s; move it away, or give --map '%s=REF'", ref, f.fileRef, f.Name)
			return
		}
		set(f, rt, ref, "spec")
		return
	}
	switch rt {
	case spec.RuntimeApptainer, spec.RuntimeSingularity:
		inferSIF(f, rt)
	default:
		inferPlus(f, rt)
	}
}

// set adopts f as ref.
func set(f *File, rt spec.Runtime, ref, from string) {
	f.Status, f.Ref, f.Info.RefFrom = StatusAdopt, ref, from
	n, err := spec.FileName(rt, ref)
	f.CustomName = err != nil || n != f.Name
}

// inferSIF: an Apptainer root is laid out <root>/<reference as written>,
// so the path is the reference — unless the SIF names another image it was
// built from (a file pulled to a name of its own, or a *.sif as
// "singularity pull" names it): the file keeps its name, as that
// reference.
func inferSIF(f *File, rt spec.Runtime) {
	pathRef := ""
	if !strings.HasSuffix(f.Name, ".sif") {
		if _, err := spec.ParseRef(f.Name); err == nil {
			pathRef = f.Name
		}
	}
	fileRef := ""
	if f.fileRef != "" {
		if _, err := spec.ParseRef(f.fileRef); err == nil {
			fileRef = f.fileRef
		}
	}
	switch {
	case pathRef != "" && (fileRef == "" || SameImageAnyHost(pathRef, fileRef)):
		set(f, rt, pathRef, "path")
	case fileRef != "":
		set(f, rt, fileRef, "definition")
		if pathRef != "" {
			f.Reason = fmt.Sprintf("its path reads as %s, but the file was built from %s: adopted as %s under its own name", pathRef, fileRef, fileRef)
		}
	default:
		f.Status = StatusUnresolved
		f.Reason = fmt.Sprintf("neither its path nor the file names a registry reference (bootstrap %q); give --map '%s=REF'", bootstrapOf(f), f.Name)
	}
}

func bootstrapOf(f *File) string {
	for _, line := range strings.Split(f.Info.Definition, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "bootstrap") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// inferPlus: Enroot and Podman files are named with "+" for "/" and ":"
// (Determined's launcher); an OCI archive also names its image
// (org.opencontainers.image.ref.name, as podman save writes it).
func inferPlus(f *File, rt spec.Runtime) {
	base := path.Base(f.Name)
	if rt == spec.RuntimeEnroot {
		base = strings.TrimSuffix(base, ".sqsh")
	}
	readings := Readings(base)
	if f.fileRef != "" {
		for _, r := range readings {
			if SameImageAnyHost(r, f.fileRef) {
				set(f, rt, r, "ref.name")
				return
			}
		}
		if _, err := spec.ParseRef(f.fileRef); err == nil {
			set(f, rt, f.fileRef, "ref.name")
			return
		}
	}
	switch len(readings) {
	case 0:
		f.Status = StatusUnresolved
		f.Reason = fmt.Sprintf("%q does not read as an image reference; give --map '%s=REF'", base, f.Name)
	case 1:
		set(f, rt, readings[0], "name")
	default:
		f.Status, f.Readings = StatusAmbiguous, readings
		f.Reason = fmt.Sprintf("the name reads as %s; the registry settles it when reachable, else give --map '%s=REF'", strings.Join(readings, " or "), f.Name)
	}
}

// Adoptable returns the files that will be adopted.
func (r *Result) Adoptable() []*File {
	var out []*File
	for _, f := range r.Files {
		if f.Status == StatusAdopt {
			out = append(out, f)
		}
	}
	return out
}

// dedupe keeps one file per reference: a cache holds an image once. The
// spec's own (Wanted) and files at the reference's default name win; the
// others are skipped.
func (r *Result) dedupe(wanted map[string]string) {
	byRef := map[string]string{}
	for n, ref := range wanted {
		byRef[ref] = n
	}
	files := r.Adoptable()
	sort.SliceStable(files, func(i, j int) bool {
		return !files[i].CustomName && files[j].CustomName
	})
	for _, f := range files {
		if other, ok := byRef[f.Ref]; ok && other != f.Name {
			f.Status, f.Reason = StatusSkipped, fmt.Sprintf("holds %s too, which %s is (a cache holds an image once); remove one", f.Ref, other)
			continue
		}
		byRef[f.Ref] = f.Name
	}
}
