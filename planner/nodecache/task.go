package nodecache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/planner/slurmexec"
	"github.com/cachectl/cachectl/spec"
)

// StageFileVersion is the format version of a stage job's task file.
const StageFileVersion = 1

// StageFile is what every node's task of a stage job reads (stage.json in
// the job's run directory).
type StageFile struct {
	Version    int    `json:"version"`
	NodeCache  string `json:"node_cache"`
	SharedRoot string `json:"shared_root"`
	Runtime    string `json:"runtime"`
	// Root is the local root; "%n" is replaced by the node's name.
	Root     string `json:"root"`
	MaxSize  int64  `json:"max_size,omitempty"`
	UID      int    `json:"uid"`
	GID      int    `json:"gid"`
	FileMode string `json:"file_mode"`
	DirMode  string `json:"dir_mode"`
	// Wanted are the artifacts to hold, by name in the shared root; their
	// sha256 is read from the shared index when the task runs.
	Wanted []Want `json:"wanted"`
}

// Want is one artifact a node should hold.
type Want struct {
	Name string `json:"name"`
	Ref  string `json:"ref"`
}

// nodeNameRE is what a node name must look like to go into a path (Slurm
// node names do).
var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// lockTimeout bounds the wait for another stage of the same local root.
const lockTimeout = time.Minute

// RunTask stages the node cache of the task file at file on this node
// (named node) and records the node's state in the shared root. Progress
// lines go to log. It returns an error when anything failed; the state is
// recorded either way (when the shared root can be written).
func RunTask(ctx context.Context, file, node string, log io.Writer) error {
	if !nodeNameRE.MatchString(node) || len(node) > 200 {
		return fmt.Errorf("node name %q cannot name a directory or a state file", node)
	}
	data, err := slurmexec.ReadOwnedFile(file, 64<<20)
	if err != nil {
		return err
	}
	var sf StageFile
	if err := json.Unmarshal(data, &sf); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if sf.Version != StageFileVersion {
		return fmt.Errorf("%s: stage file version %d; this cachectl reads version %d (use the same cachectl on the nodes as on the host that runs stage)", file, sf.Version, StageFileVersion)
	}
	st := &NodeState{Version: StateVersion, NodeCache: sf.NodeCache, Node: node, Root: strings.ReplaceAll(sf.Root, "%n", node),
		Time: time.Now().UTC(), JobID: os.Getenv("SLURM_JOB_ID"), MaxSize: sf.MaxSize}
	serr := stage(ctx, &sf, st, log)
	if serr != nil {
		st.Errors = append(st.Errors, serr.Error())
	}
	st.Time = time.Now().UTC()
	if err := writeState(sf.SharedRoot, st); err != nil {
		return errors.Join(serr, fmt.Errorf("record the state of %s in %s: %w", node, sf.SharedRoot, err))
	}
	if len(st.Errors) > 0 {
		return fmt.Errorf("%s: %s", node, strings.Join(st.Errors, "; "))
	}
	return nil
}

// stage does the work; errors about single artifacts go to st.Errors,
// the returned error stops the run.
func stage(ctx context.Context, sf *StageFile, st *NodeState, log io.Writer) error {
	rt := spec.Runtime(sf.Runtime)
	fileMode, err := spec.ParseMode(sf.FileMode)
	if err != nil {
		return err
	}
	dirMode, err := spec.ParseMode(sf.DirMode)
	if err != nil {
		return err
	}
	shared, err := cacheroot.OpenRoot(sf.SharedRoot)
	if err != nil {
		return err
	}
	defer shared.Close()
	sd, err := shared.OpenState(false)
	if err != nil {
		return err
	}
	ix, err := sd.ReadIndex(rt)
	sd.Close()
	if err != nil {
		return err
	}
	// The local root is made on the node's own disk, often under a
	// scratch directory every user may write: its path, the root itself
	// included, must be one only root, the runner or the node cache's
	// owner could have made or could change (Begin checks it before it
	// creates anything there and again once it exists).
	sess, err := cacheroot.Begin(ctx, st.Root, cacheroot.Settings{Runtime: rt, DirMode: dirMode, UID: sf.UID, GID: sf.GID,
		What: "local root", Path: cacheroot.PathCheck{Whole: true, Fix: localRootFix}}, lockTimeout)
	if err != nil {
		return err
	}
	defer func() {
		st.Held, st.Size = holdings(sess)
		st.FreeBytes, st.TotalBytes = space(sess.Root.Path())
		sess.Release()
	}()
	var names []string
	for _, w := range sf.Wanted {
		names = append(names, w.Name)
	}
	rs, err := sess.Scan(cacheroot.ScanOptions{SkipUnmanaged: true, Names: names})
	if err != nil {
		return err
	}
	// What the node holds intact, and what it must copy.
	held := map[string]cacheroot.Entry{}
	for _, e := range rs.Index.Entries {
		if !cacheroot.Intact(rs.Files[e.Name], &e) {
			sess.Delete(e.Name) // changed or gone: forget it (deletes only the very file placed)
			continue
		}
		held[e.Name] = e
	}
	wanted := map[string]bool{}
	var copies []cacheroot.Entry // shared entries to copy
	need := int64(0)
	for _, w := range sf.Wanted {
		wanted[w.Name] = true
		se, ok := ix.Lookup(w.Name)
		if !ok {
			st.Errors = append(st.Errors, fmt.Sprintf("%s is not in the shared cache yet (run apply)", w.Ref))
			continue
		}
		if le, ok := held[w.Name]; ok && le.SHA256 == se.SHA256 {
			continue
		}
		copies = append(copies, *se)
		need += se.Size
		if le, ok := held[w.Name]; ok {
			need -= le.Size // replaced
		}
	}
	// Evict unwanted copies, least recently used first, to stay under max_size.
	var total int64
	var unwanted []Holding
	for name, e := range held {
		total += e.Size
		if !wanted[name] {
			unwanted = append(unwanted, Holding{Name: name, Ref: e.Ref, Size: e.Size, LastUsed: lastUsed(sess.Root, e)})
		}
	}
	sort.Slice(unwanted, func(i, j int) bool { return unwanted[i].LastUsed.Before(unwanted[j].LastUsed) })
	for _, u := range unwanted {
		if sf.MaxSize <= 0 || total+need <= sf.MaxSize {
			break
		}
		if err := sess.Delete(u.Name); err != nil {
			st.Errors = append(st.Errors, fmt.Sprintf("evict %s: %v", u.Ref, err))
			continue
		}
		total -= u.Size
		st.Evicted = append(st.Evicted, u.Name)
		fmt.Fprintf(log, "%s: evicted %s (%s, last used %s)\n", st.Node, u.Ref, planner.HumanBytes(u.Size), u.LastUsed.Format(time.RFC3339))
	}
	for _, se := range copies {
		if err := ctx.Err(); err != nil {
			return err
		}
		grow := se.Size
		if le, ok := held[se.Name]; ok {
			grow -= le.Size
		}
		if sf.MaxSize > 0 && total+grow > sf.MaxSize {
			st.Errors = append(st.Errors, fmt.Sprintf("%s (%s) does not fit: the node cache holds %s of max_size %s (raise max_size or list fewer images)", se.Ref, planner.HumanBytes(se.Size), planner.HumanBytes(total), planner.HumanBytes(sf.MaxSize)))
			continue
		}
		if free, _ := space(sess.Root.Path()); free >= 0 && se.Size > free {
			st.Errors = append(st.Errors, fmt.Sprintf("%s (%s) does not fit: %s free on %s", se.Ref, planner.HumanBytes(se.Size), planner.HumanBytes(free), sess.Root.Path()))
			continue
		}
		start := time.Now()
		if err := copyOne(ctx, shared, sess, se, fileMode, sf.UID, sf.GID); err != nil {
			st.Errors = append(st.Errors, fmt.Sprintf("copy %s: %v", se.Ref, err))
			continue
		}
		total += grow
		st.Copied = append(st.Copied, se.Name)
		fmt.Fprintf(log, "%s: copied %s (%s in %s)\n", st.Node, se.Ref, planner.HumanBytes(se.Size), time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// localRootFix is what to do about a local root whose path someone other
// than root, the runner or the node cache's owner could redirect or take
// over: jobs on the node read its files by that path.
const localRootFix = "whoever made or can change it could replace what stage puts there, and jobs on this node would run their files; remove it (stage then makes it) or make it and the directories above it root's and writable only by their owner (or sticky), or choose another root in the node_cache block"

// copyOne copies the shared artifact se into a work directory of the
// local root, checks its sha256 against the shared index (while reading
// and again from the local disk), gives it its owner and mode, and places
// it atomically.
func copyOne(ctx context.Context, shared *cacheroot.Root, sess *cacheroot.Session, se cacheroot.Entry, mode spec.Mode, uid, gid int) error {
	src, fs, err := shared.OpenFileAt(se.Name)
	if err != nil {
		return err
	}
	defer src.Close()
	if fs.Size != se.Size {
		return fmt.Errorf("the shared file is %d bytes, the shared index says %d (is an apply replacing it?)", fs.Size, se.Size)
	}
	work, err := sess.WorkDir()
	if err != nil {
		return err
	}
	defer work.Remove()
	const name = "artifact"
	dst, err := work.Create(name)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(dst, h), ctxReader{ctx, src})
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != se.SHA256 {
		return fmt.Errorf("read sha256 %s, the shared index says %s (is an apply replacing it?); not placed", got, se.SHA256)
	}
	fin, err := work.Finish(name, mode, uid, gid)
	if err != nil {
		return err
	}
	if fin.SHA256 != se.SHA256 {
		return fmt.Errorf("the local copy's sha256 is %s, not %s; not placed", fin.SHA256, se.SHA256)
	}
	e := fin.Entry(cacheroot.Entry{Name: se.Name, Ref: se.Ref, Digest: se.Digest, Manifest: se.Manifest, Platform: se.Platform,
		Builder: se.Builder, BuilderVersion: se.BuilderVersion, Imported: se.Imported, Placed: time.Now().UTC()})
	return sess.Place(work, name, e)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// holdings lists what the local root's index holds now.
func holdings(sess *cacheroot.Session) ([]Holding, int64) {
	rs, err := sess.Scan(cacheroot.ScanOptions{SkipUnmanaged: true})
	if err != nil {
		return nil, 0
	}
	var out []Holding
	var total int64
	for _, e := range rs.Index.Entries {
		if fs := rs.Files[e.Name]; !fs.Exists {
			continue
		}
		out = append(out, Holding{Name: e.Name, Ref: e.Ref, SHA256: e.SHA256, Size: e.Size, LastUsed: lastUsed(sess.Root, e)})
		total += e.Size
	}
	return out, total
}

// lastUsed is the later of a file's access time and its placement.
func lastUsed(r *cacheroot.Root, e cacheroot.Entry) time.Time {
	t := e.Placed
	if at, err := r.AccessTime(e.Name); err == nil && at.After(t) {
		t = at
	}
	return t
}

// space returns the free and total bytes of the file system of path (-1
// when unknown).
func space(path string) (free, total int64) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return -1, -1
	}
	return int64(s.Bavail) * s.Bsize, int64(s.Blocks) * s.Bsize
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
