package spec

import (
	"fmt"
	"path"
	"strings"
)

// IndexDir is the hidden directory in every cache root that holds
// cachectl's index, lock and staging area. No artifact may live under it.
const IndexDir = ".cachectl"

// FileName returns the path, relative to the cache root and slash separated,
// where an image reference lands for the given runtime. These rules are what
// the clusters' launchers look up; see DESIGN.md "Where an image lands".
//
//   - apptainer, singularity: the reference exactly as written, one directory
//     level per "/", the ":tag" kept, no suffix.
//   - enroot: every "/" and ":" replaced by "+", plus ".sqsh".
//   - podman: every "/" and ":" replaced by "+".
//
// The result is checked with CheckName, so it never leaves the root.
func FileName(rt Runtime, ref string) (string, error) {
	var n string
	switch rt {
	case RuntimeApptainer, RuntimeSingularity:
		n = ref
	case RuntimeEnroot:
		n = plusName(ref) + ".sqsh"
	case RuntimePodman:
		n = plusName(ref)
	default:
		return "", fmt.Errorf("unknown runtime %q", rt)
	}
	if err := CheckName(rt, n); err != nil {
		return "", fmt.Errorf("reference %q gives file name %q: %w", ref, n, err)
	}
	return n, nil
}

var plusReplacer = strings.NewReplacer("/", "+", ":", "+")

func plusName(ref string) string {
	return plusReplacer.Replace(ref)
}

// CheckName reports whether a relative file name (computed or given with an
// image's name option) is safe to place under a cache root: not empty, not
// absolute, no empty, "." or ".." components, no backslashes or control
// characters, not inside the .cachectl directory, and for podman no ":"
// (the oci-archive:PATH[:REF] syntax splits on it).
func CheckName(rt Runtime, n string) error {
	switch {
	case n == "":
		return fmt.Errorf("file name is empty")
	case strings.HasPrefix(n, "/"):
		return fmt.Errorf("file name must be relative to the cache root, not absolute")
	case strings.ContainsRune(n, '\\'):
		return fmt.Errorf("file name must not contain a backslash")
	case strings.HasSuffix(n, "/"):
		return fmt.Errorf("file name must not end with \"/\"")
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("file name must not contain control characters")
		}
	}
	for _, c := range strings.Split(n, "/") {
		switch c {
		case "":
			return fmt.Errorf("file name must not contain an empty path component (\"//\")")
		case ".", "..":
			return fmt.Errorf("file name must not contain a %q path component", c)
		}
		if len(c) > 255 {
			return fmt.Errorf("path component %.20q... is longer than 255 bytes", c)
		}
	}
	first := strings.SplitN(n, "/", 2)[0]
	if first == IndexDir {
		return fmt.Errorf("file name must not be inside the %s directory", IndexDir)
	}
	if rt == RuntimePodman && strings.Contains(n, ":") {
		return fmt.Errorf("podman file names must not contain \":\" (oci-archive:PATH[:REF] splits on it)")
	}
	return nil
}

// JoinRoot joins a cache root and a checked relative name. It panics if the
// result would not be below root, which CheckName rules out.
func JoinRoot(root, rel string) string {
	p := path.Join(root, rel)
	if !within(root, p) {
		panic(fmt.Sprintf("spec: %q escapes root %q", rel, root))
	}
	return p
}

// within reports whether p is strictly below root (both clean and absolute).
func within(root, p string) bool {
	if root == "/" {
		return p != "/" && strings.HasPrefix(p, "/")
	}
	return strings.HasPrefix(p, root+"/")
}

// Within reports whether the clean absolute path p is strictly below root.
func Within(root, p string) bool { return within(path.Clean(root), path.Clean(p)) }
