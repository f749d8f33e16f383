// Package squashfs drives squashfs-tools: it builds a squashfs image with
// `mksquashfs - OUT -tar` from a tar stream produced in process (no staging
// directory), checks superblocks, and lists or reads images with unsquashfs
// (used by tests and by Verify).
//
// mksquashfs 4.5.1 (Debian 12) is the reference version. With -tar it keeps
// owners, modes (setuid/setgid/sticky), device nodes, hard links and symlinks
// as written in the tar stream, without needing root; owners can be flattened
// with AllRoot. The root directory of a -tar image gets mode 0777 unless told
// otherwise, so Create always passes -root-mode (0755 by default).
package squashfs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// DefaultMksquashfs is the mksquashfs program used when Options.Mksquashfs is empty.
const DefaultMksquashfs = "mksquashfs"

// DefaultMem is the -mem value the builders pass by default: mksquashfs's
// own default (a quarter of physical memory) makes it use several hundred MiB
// for a 1 GiB image without being faster.
const DefaultMem = "256M"

// DefaultUnsquashfs is the unsquashfs program used by List and Cat.
const DefaultUnsquashfs = "unsquashfs"

// Options control one mksquashfs run. The zero value builds a gzip image
// with owners as in the tar stream, using all processors.
type Options struct {
	// Compression is the -comp value ("gzip", "lzo", "lz4", "xz", "zstd",
	// "lzma"). Default "gzip".
	Compression string
	// AllRoot makes every file owned by 0:0 (-all-root).
	AllRoot bool
	// NoDataCompression stores data blocks uncompressed (-noD).
	NoDataCompression bool
	// Processors bounds mksquashfs threads (-processors); 0 = all.
	Processors int
	// RootMode is the mode of the root directory (-root-mode). Default 0755.
	RootMode os.FileMode
	// Offset makes mksquashfs skip (and zero) that many bytes at the start of
	// the output file (-offset); used to write a SIF partition in place.
	Offset int64
	// Mem bounds mksquashfs's cache memory (-mem, e.g. "256M"); "" = its default.
	Mem string
	// ExtraArgs are appended to the command line as is.
	ExtraArgs []string
	// Mksquashfs is the program to run. Default DefaultMksquashfs.
	Mksquashfs string
	// Stats, when not nil, receives the resource usage of the mksquashfs process.
	Stats *ProcessStats
}

// ProcessStats is the resource usage of a finished subprocess.
type ProcessStats struct {
	// MaxRSSKiB is the peak resident set size in KiB.
	MaxRSSKiB int64
	// UserSeconds and SystemSeconds are CPU times.
	UserSeconds, SystemSeconds float64
}

// Args returns the mksquashfs arguments for writing out from a tar stream on stdin.
func (o Options) Args(out string) []string {
	comp := o.Compression
	if comp == "" {
		comp = "gzip"
	}
	mode := o.RootMode
	if mode == 0 {
		mode = 0o755
	}
	args := []string{"-", out, "-tar", "-noappend", "-root-mode", fmt.Sprintf("%o", mode.Perm()), "-comp", comp}
	if o.AllRoot {
		args = append(args, "-all-root")
	}
	if o.NoDataCompression {
		args = append(args, "-noD")
	}
	if o.Processors > 0 {
		args = append(args, "-processors", strconv.Itoa(o.Processors))
	}
	if o.Offset > 0 {
		args = append(args, "-offset", strconv.FormatInt(o.Offset, 10))
	}
	if o.Mem != "" {
		args = append(args, "-mem", o.Mem)
	}
	args = append(args, o.ExtraArgs...)
	return append(args, "-quiet", "-no-progress")
}

// TarWriter writes a complete tar stream (including its end-of-archive
// marker) to w. It must stop early and return ctx.Err() when ctx is done.
type TarWriter func(ctx context.Context, w io.Writer) error

// Create builds the squashfs image out from the tar stream that write
// produces, streamed through a pipe into mksquashfs's standard input.
//
// out must not exist unless opts.Offset > 0, in which case Create writes
// into the existing file from that offset on. On error, Create removes out
// (when it created it) and returns an error that includes mksquashfs's
// standard error. Cancelling ctx kills mksquashfs.
func Create(ctx context.Context, out string, opts Options, write TarWriter) (err error) {
	created := false
	if opts.Offset == 0 {
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("squashfs: create output: %w", err)
		}
		f.Close()
		created = true
	}
	defer func() {
		if err != nil && created {
			os.Remove(out)
		}
	}()

	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("squashfs: pipe: %w", err)
	}

	prog := opts.Mksquashfs
	if prog == "" {
		prog = DefaultMksquashfs
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, opts.Args(out)...)
	cmd.Stdin = pr
	stderr := &tailBuffer{max: 64 << 10}
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("squashfs: start %s: %w", prog, err)
	}
	pr.Close() // the child holds its own copy
	growPipe(pw)

	// Produce the tar stream; a failure cancels mksquashfs so that a
	// truncated stream never yields an image that looks complete.
	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		bw := bufio.NewWriterSize(pw, 1<<20)
		writeErr = write(ctx, bw)
		if writeErr == nil {
			writeErr = bw.Flush()
		}
		if writeErr != nil {
			cancel()
		}
		pw.Close()
	}()

	waitErr := cmd.Wait()
	// If mksquashfs died early, unblock the writer.
	cancel()
	wg.Wait()
	if opts.Stats != nil && cmd.ProcessState != nil {
		*opts.Stats = statsOf(cmd.ProcessState)
	}

	if err := parent.Err(); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	if writeErr != nil && !isPipeErr(writeErr) && !(waitErr != nil && errors.Is(writeErr, context.Canceled)) {
		return fmt.Errorf("squashfs: writing tar stream: %w", writeErr)
	}
	if waitErr != nil {
		return fmt.Errorf("squashfs: mksquashfs %s: %w: %s", out, waitErr, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

func isPipeErr(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrClosed)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...)
}

func (t *tailBuffer) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buf)
}

// growPipe enlarges the pipe buffer (Linux F_SETPIPE_SZ) to cut context
// switches between the tar producer and mksquashfs; failures are harmless.
func growPipe(f *os.File) {
	const fSetPipeSz = 1031
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, 1<<20)
		})
	}
}

// Settings are what the squashfs-based builders (providers/apptainer,
// providers/enroot) let their callers set: the mksquashfs options that do
// not depend on the image or the request — program, memory, owners, data
// compression, statistics — and the clock for the files and labels they
// generate. A builder copies Options per build and sets the rest.
type Settings struct {
	Options
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Option sets one of a builder's Settings.
type Option func(*Settings)

// NewSettings returns the defaults (time.Now, DefaultMem), then opts.
func NewSettings(opts ...Option) Settings {
	s := Settings{Options: Options{Mem: DefaultMem}, Now: time.Now}
	for _, o := range opts {
		o(&s)
	}
	return s
}

// WithMksquashfs sets the mksquashfs program. Default DefaultMksquashfs.
func WithMksquashfs(path string) Option { return func(s *Settings) { s.Mksquashfs = path } }

// WithMem bounds mksquashfs's caches (-mem). Default DefaultMem; "" leaves
// mksquashfs's own default (a quarter of physical memory). The output does
// not depend on it.
func WithMem(size string) Option { return func(s *Settings) { s.Mem = size } }

// WithAllRoot makes every file owned by root (-all-root).
func WithAllRoot(on bool) Option { return func(s *Settings) { s.AllRoot = on } }

// WithDataCompression compresses data blocks (on) or stores them as they
// are (-noD).
func WithDataCompression(on bool) Option { return func(s *Settings) { s.NoDataCompression = !on } }

// WithClock sets the clock for generated files and labels. Default time.Now.
func WithClock(now func() time.Time) Option { return func(s *Settings) { s.Now = now } }

// WithStats makes builds record mksquashfs's resource usage in st.
func WithStats(st *ProcessStats) Option { return func(s *Settings) { s.Stats = st } }
