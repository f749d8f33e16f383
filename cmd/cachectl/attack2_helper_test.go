package main

// The attacker's side of the second round of attack tests (attack2_test.go):
// more things a member of the cache group (or an ordinary user) can do,
// run by the re-executed test binary as that user (attack_helper_test.go
// dispatches here).

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

var attack2Commands = map[string]func([]string) error{
	// renameover DST < data: writes data to a new file beside DST and
	// renames it over DST (what replacing an image takes).
	"renameover": func(a []string) error {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		tmp := filepath.Join(filepath.Dir(a[0]), ".member-"+strconv.Itoa(os.Getpid()))
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, a[0]); err != nil {
			os.Remove(tmp)
			return err
		}
		return nil
	},
	// chmod MODE FILE (octal)
	"chmod": func(a []string) error {
		m, err := strconv.ParseUint(a[0], 8, 32)
		if err != nil {
			return err
		}
		return os.Chmod(a[1], os.FileMode(m))
	},
	// create FILE: an empty file of the member's, mode 0644.
	"create": func(a []string) error {
		f, err := os.OpenFile(a[0], os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if err := f.Chmod(0o644); err != nil {
			return err
		}
		return f.Close()
	},
	// replacetext FILE OLD NEW: rewrites FILE in place (same inode, owner
	// and mode) with every OLD replaced by NEW.
	"replacetext": func(a []string) error {
		b, err := os.ReadFile(a[0])
		if err != nil {
			return err
		}
		n := strings.Count(string(b), a[1])
		if n == 0 {
			return fmt.Errorf("%s does not hold %q", a[0], a[1])
		}
		if err := os.WriteFile(a[0], []byte(strings.ReplaceAll(string(b), a[1], a[2])), 0); err != nil {
			return err
		}
		fmt.Printf("replaced %d times\n", n)
		return nil
	},
	"inodereuse": inodeReuse,
}

// inodeReuse PATH MAXFILES < payload: the member deletes the file at PATH
// (its directory is group-writable without the sticky bit), then creates
// files in the same directory until the file system hands out PATH's old
// inode number again (ext4 reuses a freed inode at once), writes the
// payload (cut or padded with NULs to the old size) into that file, gives
// it the old modification time (utimensat, to the nanosecond: the owner of
// a file may set it) and renames it to PATH. Inode, size and mtime are then
// what cachectl recorded when it placed its file. The other files are
// removed. It prints how many files it took; it fails when the inode did
// not come back within MAXFILES files.
func inodeReuse(a []string) error {
	path := a[0]
	max, err := strconv.Atoi(a[1])
	if err != nil {
		return err
	}
	payload, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return err
	}
	if int64(len(payload)) > st.Size {
		payload = payload[:st.Size]
	} else {
		payload = append(payload, make([]byte, st.Size-int64(len(payload)))...)
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	var misses []string
	defer func() {
		for _, m := range misses {
			os.Remove(m)
		}
	}()
	for i := 0; i < max; i++ {
		name := filepath.Join(dir, fmt.Sprintf(".member-%d", i))
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		var fst unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
			f.Close()
			return err
		}
		if fst.Ino != st.Ino {
			f.Close()
			misses = append(misses, name)
			continue
		}
		_, err = f.Write(payload)
		if err == nil {
			err = f.Close()
		}
		if err == nil {
			err = unix.UtimesNanoAt(unix.AT_FDCWD, name, []unix.Timespec{st.Atim, st.Mtim}, 0)
		}
		if err == nil {
			err = os.Rename(name, path)
		}
		if err != nil {
			return err
		}
		fmt.Printf("inode %d reused after %d files\n", st.Ino, i+1)
		return nil
	}
	return errors.New("inode " + strconv.FormatUint(st.Ino, 10) + " was not reused within " + a[1] + " files (not ext4?)")
}
