package main

// The attacker's side of the attack tests: the test binary, linked where the
// test user can run it, re-executed as that user with CACHECTL_ATTACK_HELPER
// set. Each subcommand is one thing a member of the cache group can do in a
// 2775 directory of that group.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

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
			if err != nil {
				return err
			}
			return os.WriteFile(a[1], b, 0o664)
		case "swap": // swap A B DURATION INTERVAL
			return swapLoop(a[0], a[1], a[2], a[3])
		case "stagingrace": // stagingrace STATEDIR TARGET DURATION
			return stagingRace(a[0], a[1], a[2])
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
