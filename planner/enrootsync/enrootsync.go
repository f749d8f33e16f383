// Package enrootsync keeps the calling user's Enroot containers in step
// with the .sqsh files of a shared cache root: one container per image
// ("enroot create --name NAME FILE", NAME the file name without .sqsh, the
// name Determined's launcher runs), created when missing, recreated only
// when the shared file changed since (a marker per container records the
// file's sha256), removed with Prune when the image left the cache.
//
// It runs as the user whose containers it makes and reads only what that
// user may read: the root's .sqsh files themselves (through cacheroot's
// handles, no symlink followed), never the root's index (root-owned 0700
// on caches root manages). Markers live in DATA/.cachectl-sync (hidden
// from "enroot list", which lists with ls). Containers without a marker
// were not made here and are never changed (Force recreates them).
package enrootsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cachectl/cachectl/planner/cacheroot"
)

// MarkerDir is the directory of markers inside the Enroot data path.
const MarkerDir = ".cachectl-sync"

// Action is what Sync does for one container.
type Action string

// Actions.
const (
	Create   Action = "create"   // no container yet
	Recreate Action = "recreate" // the shared file changed since it was made
	Keep     Action = "keep"     // up to date
	Remove   Action = "remove"   // its image left the cache (Prune)
	Skip     Action = "skip"     // a container not made here is in the way
	// Unreadable marks an image the user may not read (the cache's
	// file_mode): its container cannot be made; Run leaves it out, and
	// Reason says what to change (ReadError).
	Unreadable Action = "unreadable"
)

// ReadError is an image of the cache that the user running the sync may
// not read: the cache's file_mode lets only its owner (or group) read it.
type ReadError struct {
	Path string // absolute
	Err  error  // the permission error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("cannot read %s: the cache's file_mode must let users read it (e.g. 0644)", e.Path)
}

func (e *ReadError) Unwrap() error { return e.Err }

// readError is err as a ReadError of the image at path when it is a
// permission error, else err.
func readError(path string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return &ReadError{Path: path, Err: err}
	}
	return err
}

// checkReadable opens an image as Run will, to find out early (and in a
// dry run) that the user may not read it.
func checkReadable(r *cacheroot.Root, img string) error {
	f, err := r.OpenFile(img)
	if err != nil {
		return readError(r.Abs(img), err)
	}
	return f.Close()
}

// Step is one container's action.
type Step struct {
	Container string `json:"container"`
	// Image is the .sqsh file's name relative to the root ("" for Remove).
	Image  string `json:"image,omitempty"`
	Action Action `json:"action"`
	Reason string `json:"reason,omitempty"`

	sum string // sha256 of the image (when hashed)
	// seen is the image's state when Plan looked at it: Run rehashes a
	// file that is no longer that one.
	seen cacheroot.FileState
}

// Options tune Plan and Run.
type Options struct {
	// Root is the cache root holding the .sqsh files.
	Root string
	// Images limits the sync to these file names (relative to Root);
	// empty: every *.sqsh directly in Root.
	Images []string
	// DataPath is the user's Enroot data directory (ENROOT_DATA_PATH).
	DataPath string
	// Prune removes containers made here whose image left the root.
	Prune bool
	// Force recreates containers not made here (no marker).
	Force bool
	// Verify hashes every image, even when its stat matches the marker.
	Verify bool
	// Enroot is the enroot program (default "enroot" on PATH).
	Enroot string
	// Env is the environment enroot runs with (nil: this process's).
	Env []string
	// Output receives enroot's output (nil: discarded).
	Output io.Writer
}

// marker is what a container made here records.
type marker struct {
	Container string    `json:"container"`
	Root      string    `json:"root"`
	Image     string    `json:"image"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	MTimeNs   int64     `json:"mtime_ns"`
	Dev       uint64    `json:"dev"`
	Inode     uint64    `json:"inode"`
	Created   time.Time `json:"created"`
}

// DefaultDataPath is Enroot's data directory for the environment getenv
// reads: ENROOT_DATA_PATH, else ${XDG_DATA_HOME:-$HOME/.local/share}/enroot
// (enroot 4's default, /etc/enroot/enroot.conf as shipped).
func DefaultDataPath(getenv func(string) string) string {
	if p := getenv("ENROOT_DATA_PATH"); p != "" {
		return p
	}
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "enroot")
	}
	return filepath.Join(getenv("HOME"), ".local", "share", "enroot")
}

// untrusted says why a .sqsh file of the root must not become a container
// ("" when it may): its container name must be one Enroot keeps under the
// data path (not "", ".", "..", nor starting with "." or "-": Enroot's
// create --force removes DATA/NAME before unpacking), and the file must
// belong to root or the owner of the cache root and be writable by nobody
// else — a file a group member put in a group-writable root is not the
// cache's.
func untrusted(name string, fs cacheroot.FileState, rootOwner int) string {
	switch {
	case name == "" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "-") || strings.ContainsAny(name, "/\x00"):
		return fmt.Sprintf("%q is not a container name Enroot can hold under the data path (empty, or starting with \".\" or \"-\"); skipped", name)
	case fs.UID != 0 && fs.UID != rootOwner:
		return fmt.Sprintf("owned by uid %d, not by root or the cache root's owner (uid %d): not the cache's image; skipped", fs.UID, rootOwner)
	case fs.Mode&0o022 != 0:
		return fmt.Sprintf("writable by group or others (mode %s): anyone there could change it; skipped", fs.Mode)
	}
	return ""
}

// TrustedImage reports whether the file name directly in the cache root at
// rootPath may be used as the cache's image (see untrusted), and why not.
func TrustedImage(rootPath, name string) (bool, string, error) {
	r, err := cacheroot.OpenRoot(rootPath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, "not there", nil
	}
	if err != nil {
		return false, "", err
	}
	defer r.Close()
	rootSt, err := r.Lstat(".")
	if err != nil {
		return false, "", err
	}
	st, err := r.Lstat(name)
	if err != nil || !st.Exists {
		return false, "not there", err
	}
	if !st.Regular {
		return false, "not a regular file", nil
	}
	why := untrusted(ContainerName(name), st, rootSt.UID)
	return why == "", why, nil
}

// ContainerName is the container of an image file: its base name without
// ".sqsh" (what "enroot create FILE" names it).
func ContainerName(image string) string {
	return strings.TrimSuffix(filepath.Base(image), ".sqsh")
}

// checkOwner refuses a data path (or, while it does not exist, its nearest
// existing parent) that does not belong to the user running: containers
// are made only for the calling user, never by root for another.
func checkOwner(dataPath string) error {
	p := dataPath
	for {
		st, err := os.Lstat(p)
		if err == nil {
			sys := st.Sys().(*syscall.Stat_t)
			if int(sys.Uid) != os.Geteuid() {
				return fmt.Errorf("the Enroot data path %s (at %s) belongs to uid %d, not to uid %d who runs this: containers are made only for the user running the command; run it as that user", dataPath, p, sys.Uid, os.Geteuid())
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) || filepath.Dir(p) == p {
			return err
		}
		p = filepath.Dir(p)
	}
}

// Plan compares the root's images with the user's containers and their
// markers. It reads only; images are hashed when their stat differs from
// the marker's (or always, with Verify).
func Plan(ctx context.Context, opts Options) ([]Step, error) {
	if err := checkOwner(opts.DataPath); err != nil {
		return nil, err
	}
	r, err := cacheroot.OpenRoot(opts.Root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	images, err := listImages(r, opts.Images)
	if err != nil {
		return nil, err
	}
	markers, err := readMarkers(opts.DataPath)
	if err != nil {
		return nil, err
	}
	rootSt, err := r.Lstat(".")
	if err != nil {
		return nil, err
	}
	var steps []Step
	inCache := map[string]bool{}
	for _, img := range images {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := ContainerName(img)
		inCache[name] = true
		s := Step{Container: name, Image: img}
		fs, err := r.Lstat(img)
		if err != nil {
			return nil, err
		}
		s.seen = fs
		if !fs.Regular {
			return nil, fmt.Errorf("%s is not a regular file", r.Abs(img))
		}
		if why := untrusted(name, fs, rootSt.UID); why != "" {
			s.Action, s.Reason = Skip, why
			steps = append(steps, s)
			continue
		}
		exists := dirExists(filepath.Join(opts.DataPath, name))
		mk, hasMarker := markers[name]
		switch {
		case !exists:
			s.Action, s.Reason = Create, "no container yet"
		case !hasMarker && !opts.Force:
			s.Action, s.Reason = Skip, "a container of that name exists that this command did not make; --force recreates it"
		case !hasMarker:
			s.Action, s.Reason = Recreate, "not made by this command (--force)"
		case mk.Root != opts.Root || mk.Image != img:
			s.Action, s.Reason = Recreate, fmt.Sprintf("made from %s", filepath.Join(mk.Root, mk.Image))
		case !opts.Verify && mk.Size == fs.Size && mk.MTimeNs == fs.ModTime.UnixNano() && mk.Inode == fs.Inode && mk.Dev == fs.Dev:
			s.Action = Keep
		default:
			sum, _, err := r.Hash(img)
			if err != nil {
				if re := (*ReadError)(nil); errors.As(readError(r.Abs(img), err), &re) {
					s.Action, s.Reason = Unreadable, re.Error()
					break
				}
				return nil, err
			}
			s.sum = sum
			if sum == mk.SHA256 && mk.SHA256 != "" {
				s.Action, s.Reason = Keep, "same content"
			} else {
				s.Action, s.Reason = Recreate, fmt.Sprintf("the shared image changed (sha256 %s, container made from %s)", short(sum), short(mk.SHA256))
			}
		}
		if s.Action == Create || s.Action == Recreate {
			var re *ReadError
			if err := checkReadable(r, img); errors.As(err, &re) {
				s.Action, s.Reason = Unreadable, re.Error()
			} else if err != nil {
				return nil, err
			}
		}
		steps = append(steps, s)
	}
	if opts.Prune {
		var gone []string
		for name, mk := range markers {
			if !inCache[name] && mk.Root == opts.Root && len(opts.Images) == 0 {
				gone = append(gone, name)
			}
		}
		sort.Strings(gone)
		for _, name := range gone {
			steps = append(steps, Step{Container: name, Action: Remove, Reason: fmt.Sprintf("%s left the cache", markers[name].Image)})
		}
	}
	return steps, nil
}

// Run carries out the steps (Keep, Skip and Unreadable change nothing):
// "enroot create --force --name NAME FILE" for Create and Recreate (the marker is written after it succeeded, with the
// image's sha256 — hashed through the root's handle before the create; a
// file replaced meanwhile gets no digest, so the next sync recreates it),
// "enroot remove --force NAME" for Remove. It stops at the first failure.
func Run(ctx context.Context, opts Options, steps []Step) error {
	enroot := opts.Enroot
	if enroot == "" {
		enroot = "enroot"
	}
	r, err := cacheroot.OpenRoot(opts.Root)
	if err != nil {
		return err
	}
	defer r.Close()
	rootSt, err := r.Lstat(".")
	if err != nil {
		return err
	}
	for i := range steps {
		s := &steps[i]
		switch s.Action {
		case Create, Recreate:
			// Enroot reads the very file checked and hashed here: the
			// opened handle, through /proc/PID/fd/N, not a path others
			// could swap. Plan looked at the name, maybe minutes ago: the
			// file opened now is checked again, and hashed again unless it
			// is still the one Plan hashed.
			f, fs, err := r.OpenFileAt(s.Image)
			if err != nil {
				return readError(r.Abs(s.Image), err)
			}
			if why := untrusted(s.Container, fs, rootSt.UID); why != "" {
				f.Close()
				return fmt.Errorf("container %s: %s changed since the plan: %s", s.Container, r.Abs(s.Image), why)
			}
			if fs.Dev != s.seen.Dev || fs.Inode != s.seen.Inode || fs.Size != s.seen.Size ||
				!fs.ModTime.Equal(s.seen.ModTime) || !fs.Ctime.Equal(s.seen.Ctime) {
				s.sum = ""
			}
			before, err := f.Stat()
			if err == nil && s.sum == "" {
				s.sum, err = cacheroot.HashFile(f)
			}
			if err != nil {
				f.Close()
				return err
			}
			sum := s.sum
			args := []string{"create", "--name", s.Container}
			if s.Action == Recreate {
				args = append(args, "--force")
			}
			err = runEnroot(ctx, enroot, opts, append(args, fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()))...)
			after, serr := f.Stat()
			f.Close()
			if err != nil {
				return fmt.Errorf("container %s: %w", s.Container, err)
			}
			if serr != nil || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
				sum = "" // written while enroot read it: recreate next time
			}
			st := before.Sys().(*syscall.Stat_t)
			if err := writeMarker(opts.DataPath, marker{Container: s.Container, Root: opts.Root, Image: s.Image, SHA256: sum,
				Size: before.Size(), MTimeNs: before.ModTime().UnixNano(), Dev: uint64(st.Dev), Inode: st.Ino, Created: time.Now().UTC()}); err != nil {
				return err
			}
		case Remove:
			if dirExists(filepath.Join(opts.DataPath, s.Container)) {
				if err := runEnroot(ctx, enroot, opts, "remove", "--force", s.Container); err != nil {
					return fmt.Errorf("container %s: %w", s.Container, err)
				}
			}
			if err := os.Remove(filepath.Join(opts.DataPath, MarkerDir, s.Container+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

func runEnroot(ctx context.Context, enroot string, opts Options, args ...string) error {
	cmd := exec.CommandContext(ctx, enroot, args...)
	cmd.Env = opts.Env
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "ENROOT_DATA_PATH="+opts.DataPath)
	var out strings.Builder
	w := io.Writer(&out)
	if opts.Output != nil {
		w = io.MultiWriter(&out, opts.Output)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", enroot, strings.Join(args, " "), err, lastLine(out.String()))
	}
	return nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// listImages lists the *.sqsh files directly in the root (or checks the
// given ones), through the root's handles.
func listImages(r *cacheroot.Root, only []string) ([]string, error) {
	if len(only) > 0 {
		out := append([]string{}, only...)
		for _, n := range out {
			if strings.Contains(n, "/") || !strings.HasSuffix(n, ".sqsh") {
				return nil, fmt.Errorf("%s is not a .sqsh file directly in %s", n, r.Path())
			}
			fs, err := r.Lstat(n)
			if err != nil {
				return nil, err
			}
			if !fs.Exists {
				return nil, fmt.Errorf("%s is not in the cache %s", n, r.Path())
			}
		}
		sort.Strings(out)
		return out, nil
	}
	st, err := r.Scan(nil, cacheroot.ScanOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, u := range st.Unmanaged {
		if !strings.Contains(u.Name, "/") && strings.HasSuffix(u.Name, ".sqsh") {
			out = append(out, u.Name)
		}
	}
	return out, nil
}

func readMarkers(dataPath string) (map[string]marker, error) {
	out := map[string]marker{}
	dir := filepath.Join(dataPath, MarkerDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var m marker
		if json.Unmarshal(b, &m) != nil || m.Container != strings.TrimSuffix(e.Name(), ".json") {
			continue // not ours: ignored
		}
		out[m.Container] = m
	}
	return out, nil
}

func writeMarker(dataPath string, m marker) error {
	dir := filepath.Join(dataPath, MarkerDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, m.Container+".json"))
}

func dirExists(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

func short(d string) string {
	if d == "" {
		return "(none)"
	}
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
