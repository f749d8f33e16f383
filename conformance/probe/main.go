// Command probe is the program the conformance suite runs inside containers:
// it prints what a process sees (arguments, environment, working directory,
// user) one item per line, each value quoted with Go's %q so that any byte
// is unambiguous. It is built statically (CGO_ENABLED=0) by the suite and
// placed in the test images; it is not part of cachectl.
package main

import (
	"fmt"
	"os"
	"sort"
)

func main() {
	for i, a := range os.Args {
		if i == 0 {
			fmt.Printf("argv0 %q\n", a)
			continue
		}
		fmt.Printf("arg %q\n", a)
	}
	env := os.Environ()
	sort.Strings(env)
	for _, e := range env {
		fmt.Printf("env %q\n", e)
	}
	wd, err := os.Getwd()
	if err != nil {
		wd = "error: " + err.Error()
	}
	fmt.Printf("cwd %q\n", wd)
	fmt.Printf("uid %d gid %d\n", os.Getuid(), os.Getgid())
}
