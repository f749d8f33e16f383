// Package history keeps the apply and import history of one cache root:
// one JSON object per line in <root>/.cachectl/history.jsonl, newest last.
//
// The file is bounded: an append keeps the newest MaxRecords records and at
// most MaxBytes bytes, dropping the oldest. Every append rewrites the file
// through a temporary file that is fsynced and renamed over the old one
// (renameat(2)), so a reader sees the old history or the new one, never a
// half-written line; appends from several processes are serialised with
// flock(2) on the history file itself. Every file is opened relative to a
// handle on the .cachectl directory and never through a symlink
// (O_NOFOLLOW); a history file that is not a regular file is refused.
//
// The history is input, not instructions: Read skips lines that do not
// parse or lack the fields every record has.
package history

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cachectl/cachectl/planner/cacheroot"
)

// FileName is the history file's name inside a root's .cachectl directory.
const FileName = "history.jsonl"

// Bounds of the history file of one root.
const (
	MaxRecords = 1000
	MaxBytes   = 4 << 20
)

// FormatVersion is the version of a history record; later minor revisions
// add fields only.
const FormatVersion = 1

// Results of a record and of an artifact in it.
const (
	ResultSuccess     = "success"     // every change was made
	ResultFailed      = "failed"      // at least one change failed, or the run failed before changing anything
	ResultInterrupted = "interrupted" // the run was cancelled (SIGINT/SIGTERM)

	ArtifactDone       = "done"
	ArtifactFailed     = "failed"
	ArtifactNotStarted = "not_started"
)

// Record is one apply (or import) as it concerned one cache root.
type Record struct {
	Version int `json:"version"`
	// Command is "apply" or "import".
	Command string `json:"command"`
	Cache   string `json:"cache"`
	Root    string `json:"root"`
	// Start and End of the run (UTC); DurationSeconds = End - Start.
	Start           time.Time `json:"start"`
	End             time.Time `json:"end"`
	DurationSeconds float64   `json:"duration_seconds"`
	// Who ran it: the effective user (name and uid), the user behind sudo
	// (SUDO_USER) when there was one, the host, and the Slurm job
	// (SLURM_JOB_ID) when it ran inside one.
	User            string `json:"user"`
	UID             int    `json:"uid"`
	SudoUser        string `json:"sudo_user,omitempty"`
	Host            string `json:"host"`
	SlurmJobID      string `json:"slurm_job_id,omitempty"`
	CachectlVersion string `json:"cachectl_version"`
	// PlanFile is the saved plan that was applied ("" when apply planned
	// itself).
	PlanFile string `json:"plan_file,omitempty"`
	// Plan counts the changes planned for this root.
	Plan Summary `json:"plan"`
	// Result is success, failed or interrupted; Error says why it was not
	// a success.
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	// DownloadedBytes were fetched from registries for this root's images
	// during the run (a blob two roots need is counted in both);
	// WrittenBytes is the size of the files placed in this root.
	DownloadedBytes int64 `json:"downloaded_bytes"`
	WrittenBytes    int64 `json:"written_bytes"`
	// Artifacts are the results of the changes, in plan order.
	Artifacts []Artifact `json:"artifacts,omitempty"`
}

// Summary counts planned changes (a replace adds and destroys).
type Summary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
}

// Artifact is the result of one change.
type Artifact struct {
	Address string `json:"address"`
	Ref     string `json:"ref,omitempty"`
	// Action is the planned action (create, update, replace, delete).
	Action string `json:"action"`
	// Result is done, failed or not_started.
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	// Manifest is the image manifest built (creates and replaces).
	Manifest string `json:"manifest,omitempty"`
	// WrittenBytes is the size of the file placed.
	WrittenBytes int64 `json:"written_bytes,omitempty"`
	// DurationSeconds from the change's start to its end.
	DurationSeconds float64 `json:"duration_seconds,omitempty"`
}

// SetRunner fills in who ran the command and where: the effective user,
// SUDO_USER, the host name and SLURM_JOB_ID (from getenv).
func (r *Record) SetRunner(getenv func(string) string) {
	r.UID = os.Geteuid()
	r.User = strconv.Itoa(r.UID)
	if u, err := user.LookupId(r.User); err == nil {
		r.User = u.Username
	}
	r.SudoUser = getenv("SUDO_USER")
	r.Host, _ = os.Hostname()
	r.SlurmJobID = getenv("SLURM_JOB_ID")
}

// Success reports whether the run made every change it planned.
func (r *Record) Success() bool { return r.Result == ResultSuccess }

// valid reports whether a record read back has the fields every record has.
func (r *Record) valid() bool {
	return r.Version >= 1 && r.Command != "" && r.Cache != "" && !r.Start.IsZero() && r.Result != ""
}

// OpenDir opens the state directory (.cachectl) of a cache root for
// Append and Read, checked as every run checks it (planner/cacheroot: a
// real directory of the runner or root, writable by nobody else). A root
// or state directory that does not exist gives an error wrapping
// fs.ErrNotExist: history never creates one.
func OpenDir(root string) (*os.File, error) {
	r, err := cacheroot.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	s, err := r.OpenState(false)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Reopen()
}

// Append adds r to the history in dir (a handle on a .cachectl directory,
// see OpenDir), keeping the file within MaxRecords and MaxBytes.
func Append(dir *os.File, r Record) error {
	if r.Version == 0 {
		r.Version = FormatVersion
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	line = append(line, '\n')
	dfd := int(dir.Fd())
	for range 20 {
		done, err := appendOnce(dfd, line)
		if err != nil {
			return fmt.Errorf("history %s/%s: %w", dir.Name(), FileName, err)
		}
		if done {
			return nil
		}
	}
	return fmt.Errorf("history %s/%s: the file kept being replaced; not appended", dir.Name(), FileName)
}

// appendOnce locks the current history file and rewrites it with line
// added. It returns false when the file was replaced while it waited for
// the lock (the caller tries again).
func appendOnce(dfd int, line []byte) (bool, error) {
	fd, err := unix.Openat(dfd, FileName, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o644)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return false, errors.New("is a symlink; not used")
		}
		return false, err
	}
	f := os.NewFile(uintptr(fd), FileName)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, errors.New("is not a regular file; not used")
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return false, err
	}
	// The lock is on this inode: make sure it is still the history file.
	var now unix.Stat_t
	if err := unix.Fstatat(dfd, FileName, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil || now.Ino != st.Ino || now.Dev != st.Dev {
		return false, nil
	}
	removeLeftovers(dfd)
	old, err := readBounded(f, st.Size)
	if err != nil {
		return false, err
	}
	content := bound(append(completeLines(old), line...), maxRecords, maxBytes)
	tmp := "." + FileName + ".tmp-" + randomSuffix()
	tfd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return false, err
	}
	tf := os.NewFile(uintptr(tfd), tmp)
	_, werr := tf.Write(content)
	if werr == nil {
		werr = tf.Chmod(0o644) // not narrowed by the umask
	}
	if werr == nil {
		werr = tf.Sync()
	}
	if cerr := tf.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = unix.Renameat(dfd, tmp, dfd, FileName)
	}
	if werr != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return false, werr
	}
	return true, unix.Fsync(dfd)
}

// removeLeftovers deletes temporary files of appends that crashed (the
// caller holds the lock of the current history file, so no live append
// has one).
func removeLeftovers(dfd int) {
	d, err := unix.Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	df := os.NewFile(uintptr(d), ".")
	defer df.Close()
	names, _ := df.Readdirnames(-1)
	for _, n := range names {
		if strings.HasPrefix(n, "."+FileName+".tmp-") {
			unix.Unlinkat(dfd, n, 0)
		}
	}
}

// readBounded reads at most the last 2*MaxBytes bytes of f (size bytes
// long), starting at a line boundary.
func readBounded(f *os.File, size int64) ([]byte, error) {
	var off int64
	if size > 2*MaxBytes {
		off = size - 2*MaxBytes
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, size-off))
	if err != nil {
		return nil, err
	}
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b, nil
}

// completeLines drops a trailing line without its newline.
func completeLines(b []byte) []byte {
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[:i+1]
	}
	return nil
}

// maxRecords and maxBytes are MaxRecords and MaxBytes (smaller in tests).
var maxRecords, maxBytes = MaxRecords, MaxBytes

// bound drops the oldest lines until at most records lines and size bytes
// are left (the newest line is always kept).
func bound(b []byte, records, size int) []byte {
	n := bytes.Count(b, []byte{'\n'})
	for (n > records || len(b) > size) && n > 1 {
		i := bytes.IndexByte(b, '\n')
		b = b[i+1:]
		n--
	}
	return b
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Read returns the records of the history in dir (a handle on a .cachectl
// directory), oldest first. A missing file is an empty history; lines
// that are not records are skipped and counted in skipped.
func Read(dir *os.File) (recs []Record, skipped int, err error) {
	fd, err := unix.Openat(int(dir.Fd()), FileName, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("history %s/%s: %w", dir.Name(), FileName, err)
	}
	f := os.NewFile(uintptr(fd), FileName)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("history %s/%s is not a regular file; not read", dir.Name(), FileName)
	}
	b, err := readBounded(f, fi.Size())
	if err != nil {
		return nil, 0, fmt.Errorf("history %s/%s: %w", dir.Name(), FileName, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), MaxBytes)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) != nil || !r.valid() {
			skipped++
			continue
		}
		recs = append(recs, r)
	}
	return recs, skipped, nil
}

// ReadRoot reads the history of a cache root (whose hidden directory is
// metaName, spec.IndexDir); a root or directory that does not exist has
// no history.
func ReadRoot(root string) ([]Record, int, error) {
	d, err := OpenDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer d.Close()
	return Read(d)
}

// Last returns the newest record of recs with the given command ("" for
// any), or nil.
func Last(recs []Record, command string) *Record {
	for i := len(recs) - 1; i >= 0; i-- {
		if command == "" || recs[i].Command == command {
			return &recs[i]
		}
	}
	return nil
}
