package squashfs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Entry is one line of `unsquashfs -lln`.
type Entry struct {
	// Path is absolute inside the image ("/" for the root, "/etc/rc").
	Path string
	// Mode is the ls-style mode string ("drwxr-xr-x", "-rwsr-xr-x").
	Mode string
	Uid  int
	Gid  int
	// Size is the file size (symlink target length for links); for devices
	// it is zero and Device holds "major,minor".
	Size   int64
	Device string
	// Linkname is the symlink target.
	Linkname string
}

// Type returns the ls type character: 'd', '-', 'l', 'c', 'b', 'p', 's'.
func (e Entry) Type() byte { return e.Mode[0] }

// Perm returns the permission bits including setuid/setgid/sticky.
func (e Entry) Perm() uint32 {
	m := e.Mode[1:]
	var p uint32
	bits := []uint32{0o400, 0o200, 0o100, 0o040, 0o020, 0o010, 0o004, 0o002, 0o001}
	for i, c := range m {
		if i >= 9 {
			break
		}
		switch c {
		case 'r', 'w', 'x':
			p |= bits[i]
		case 's', 't':
			p |= bits[i]
			fallthrough
		case 'S', 'T':
			switch i {
			case 2:
				p |= 0o4000
			case 5:
				p |= 0o2000
			case 8:
				p |= 0o1000
			}
		}
	}
	return p
}

var lineRE = regexp.MustCompile(`^(\S{10}) (\d+)/(\d+) +(\d+|\d+, *\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) squashfs-root(.*)$`)

// List runs `unsquashfs -lln -o off path` and parses its output.
func List(ctx context.Context, path string, off int64) ([]Entry, error) {
	args := []string{"-lln", "-no-progress"}
	if off > 0 {
		args = append(args, "-o", strconv.FormatInt(off, 10))
	}
	args = append(args, path)
	out, err := run(ctx, args...)
	if err != nil {
		return nil, err
	}
	var entries []Entry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		m := lineRE.FindStringSubmatch(line)
		if m == nil {
			continue // banners, progress
		}
		e := Entry{Mode: m[1]}
		e.Uid, _ = strconv.Atoi(m[2])
		e.Gid, _ = strconv.Atoi(m[3])
		if strings.Contains(m[4], ",") {
			e.Device = strings.ReplaceAll(m[4], " ", "")
		} else {
			e.Size, _ = strconv.ParseInt(m[4], 10, 64)
		}
		p := m[6]
		if e.Mode[0] == 'l' {
			if i := strings.Index(p, " -> "); i >= 0 {
				e.Linkname = p[i+4:]
				p = p[:i]
			}
		}
		if p == "" {
			p = "/"
		}
		e.Path = p
		entries = append(entries, e)
	}
	return entries, sc.Err()
}

// Cat returns the content of the file name (absolute or relative to the
// image root) with `unsquashfs -cat`.
func Cat(ctx context.Context, path string, off int64, name string) ([]byte, error) {
	args := []string{"-no-wildcards", "-cat"}
	if off > 0 {
		args = append(args, "-o", strconv.FormatInt(off, 10))
	}
	args = append(args, path, strings.TrimPrefix(name, "/"))
	return run(ctx, args...)
}

func run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, DefaultUnsquashfs, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("squashfs: unsquashfs %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
