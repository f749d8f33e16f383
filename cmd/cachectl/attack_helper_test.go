package main

// The attacker's side of the attack tests: the test binary, linked where the
// test user can run it, re-executed as that user with CACHECTL_ATTACK_HELPER
// set. Each subcommand is one thing a member of the cache group can do in a
// 2775 directory of that group.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const attackHelperEnv = "CACHECTL_ATTACK_HELPER"

func init() {
	if os.Getenv(attackHelperEnv) != "" {
		os.Exit(attackHelperMain(os.Args[1:]))
	}
}

func attackHelperMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: attack-helper COMMAND ARGS…")
		return 2
	}
	err := func() error {
		switch cmd, a := args[0], args[1:]; cmd {
		case "rename": // rename OLD NEW
			return os.Rename(a[0], a[1])
		case "symlink": // symlink TARGET LINK
			return os.Symlink(a[0], a[1])
		case "mkdir": // mkdir DIR
			return os.Mkdir(a[0], 0o775)
		case "write": // write FILE < data
			b, err := io.ReadAll(os.Stdin)
			if err != nil {
				return err
			}
			return os.WriteFile(a[0], b, 0o664)
		case "copy": // copy SRC DST
			b, err := os.ReadFile(a[0])
			if errors.Is(err, fs.ErrPermission) {
				// The real index is private (a 0700 state directory): the
				// member forges an empty one instead.
				fmt.Fprintf(os.Stderr, "attack-helper copy: %s is not readable; writing an empty index\n", a[0])
				b, err = []byte(`{"version":1,"entries":[]}`), nil
			}
			if err != nil {
				return err
			}
			return os.WriteFile(a[1], b, 0o664)
		case "swap": // swap A B DURATION INTERVAL
			return swapLoop(a[0], a[1], a[2], a[3])
		case "swaponwrite": // swaponwrite A B STATEDIR DURATION
			return swapOnWrite(a[0], a[1], a[2], a[3])
		case "stagingrace": // stagingrace STATEDIR TARGET DURATION
			return stagingRace(a[0], a[1], a[2])
		}
		if f, ok := attack2Commands[args[0]]; ok { // attack2_helper_test.go
			return f(args[1:])
		}
		return fmt.Errorf("unknown command %q", args[0])
	}()
	if err != nil {
		fmt.Fprintf(os.Stderr, "attack-helper %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// until returns a channel closed after d or on SIGTERM/SIGINT.
func until(d string) (<-chan struct{}, error) {
	dur, err := time.ParseDuration(d)
	if err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-sig:
		case <-time.After(dur):
		}
		close(stop)
	}()
	return stop, nil
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// swapLoop exchanges a and b (a real directory and a symlink) with
// renameat2(RENAME_EXCHANGE) every interval until the duration ends or a
// signal comes, then leaves them as they were found. It prints how many
// exchanges it made.
func swapLoop(a, b, d, interval string) error {
	stop, err := until(d)
	if err != nil {
		return err
	}
	iv, err := time.ParseDuration(interval)
	if err != nil {
		return err
	}
	n, fails := 0, 0
	for !stopped(stop) {
		if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
			fails++
		} else {
			n++
		}
		time.Sleep(iv)
	}
	if n%2 == 1 {
		if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err == nil {
			n++
		}
	}
	fmt.Printf("exchanges %d failed %d\n", n, fails)
	return nil
}

// swapOnWrite is the aimed variant of swapLoop: it watches the root's
// state directory (readable by the group) and, right after cachectl
// creates staging/ (its changes start) or renames a new index.json into
// place (it is about to rename an artifact into place), exchanges a and b
// for 5 ms. When the state directory cannot be watched it falls back to
// the blind loop.
func swapOnWrite(a, b, stateDir, d string) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err == nil {
		_, err = unix.InotifyAddWatch(fd, stateDir, unix.IN_CREATE|unix.IN_MOVED_TO)
	}
	if err != nil {
		fmt.Printf("cannot watch %s (%v): blind loop; ready\n", stateDir, err)
		return swapLoop(a, b, d, "2ms")
	}
	fmt.Println("ready")
	stop, err := until(d)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	n := 0
	buf := make([]byte, 4096)
	for !stopped(stop) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if k, _ := unix.Poll(pfd, 10); k <= 0 {
			continue
		}
		k, err := unix.Read(fd, buf)
		if err != nil || k <= 0 {
			continue
		}
		hit := false
		for off := 0; off+unix.SizeofInotifyEvent <= k; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			hit = hit || name == "staging" || name == "index.json"
		}
		if hit && unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE) == nil {
			n++
			time.Sleep(5 * time.Millisecond)
			for unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE) != nil && !stopped(stop) {
				time.Sleep(time.Millisecond)
			}
		}
	}
	fmt.Printf("aimed exchanges %d\n", n)
	return nil
}

// stagingRace watches STATEDIR/staging and, whenever it is a real
// directory, moves it aside and puts a symlink to target in its place.
func stagingRace(stateDir, target, d string) error {
	stop, err := until(d)
	if err != nil {
		return err
	}
	staging := filepath.Join(stateDir, "staging")
	n := 0
	for !stopped(stop) {
		fi, err := os.Lstat(staging)
		if err == nil && fi.IsDir() {
			if os.Rename(staging, fmt.Sprintf("%s.moved-%d", staging, n)) == nil {
				n++
			}
		}
		if err == nil && fi.IsDir() || errors.Is(err, os.ErrNotExist) {
			os.Symlink(target, staging)
		}
		time.Sleep(200 * time.Microsecond)
	}
	fmt.Printf("staging replaced %d times\n", n)
	return nil
}
