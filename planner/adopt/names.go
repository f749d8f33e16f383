package adopt

import (
	"fmt"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cachectl/cachectl/spec"
)

// Readings returns the references whose Enroot/Podman file name (every "/"
// and ":" replaced by "+", the rule of Determined's launcher and of
// spec.FileName) is base, in a stable order. A "+" stands for "/" except
// where a ":" can be: after a registry host (its port) and before the last
// part (a tag, or a digest's hex after "@sha256"). Only readings that pass
// spec.ParseRef are returned: "determinedai+environments+cpu-1" reads as
// "determinedai/environments:cpu-1" and "determinedai/environments/cpu-1"
// (no tag); "localhost+5000+app+1" also as "localhost:5000/app:1".
func Readings(base string) []string {
	parts := strings.Split(base, "+")
	if len(parts) == 1 {
		if _, err := spec.ParseRef(base); err == nil {
			return []string{base}
		}
		return nil
	}
	seps := len(parts) - 1
	var out []string
	seen := map[string]bool{}
	for _, port := range []bool{false, true} {
		for _, tag := range []bool{true, false} {
			if port && seps < 2 {
				continue
			}
			var b strings.Builder
			b.WriteString(parts[0])
			for i := 1; i < len(parts); i++ {
				sep := "/"
				if (i == 1 && port) || (i == len(parts)-1 && tag) {
					sep = ":"
				}
				b.WriteString(sep)
				b.WriteString(parts[i])
			}
			r := b.String()
			if seen[r] {
				continue
			}
			seen[r] = true
			if _, err := spec.ParseRef(r); err == nil {
				out = append(out, r)
			}
		}
	}
	return out
}

// SameImage reports whether two references name the same image once
// normalized (alpine:3.20 and docker.io/library/alpine:3.20 do).
func SameImage(a, b string) bool {
	ra, err := name.ParseReference(a, name.WeakValidation)
	if err != nil {
		return false
	}
	rb, err := name.ParseReference(b, name.WeakValidation)
	if err != nil {
		return false
	}
	return ra.Name() == rb.Name()
}

// ParseMap parses name=reference mappings (--map values, or the lines of a
// mapping file: one NAME=REF per line, blank lines and lines starting with
// "#" ignored). A name is relative to the root (an absolute path below
// root is made relative). where names the source in errors ("--map",
// "FILE:LINE").
func ParseMap(dst map[string]string, root, line, where string) error {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return nil
	}
	n, ref, ok := strings.Cut(line, "=")
	n, ref = strings.TrimSpace(n), strings.TrimSpace(ref)
	if !ok || n == "" || ref == "" {
		return fmt.Errorf("%s: %q is not NAME=REFERENCE (a file name relative to the root, then its image reference)", where, line)
	}
	if strings.HasPrefix(n, "/") {
		if !spec.Within(root, n) {
			return fmt.Errorf("%s: %s is not below the root %s", where, n, root)
		}
		n = strings.TrimPrefix(path.Clean(n), strings.TrimSuffix(root, "/")+"/")
	}
	if _, err := spec.ParseRef(ref); err != nil {
		return fmt.Errorf("%s: %q is not an image reference: %w", where, ref, err)
	}
	dst[n] = ref
	return nil
}

// Likely returns the reading of a "+" name a person most likely meant
// (for listings where nothing settles it): with a tag when the last part
// can be one, with a registry port when the first part looks like a host
// ("localhost", or with a ".") and the second is a number. "" when the
// name reads as no reference.
func Likely(base string) string {
	rs := Readings(base)
	if len(rs) == 0 {
		return ""
	}
	parts := strings.Split(base, "+")
	hostPort := len(parts) > 2 && (parts[0] == "localhost" || strings.Contains(parts[0], ".")) && isDigits(parts[1])
	for _, r := range rs {
		if strings.Contains(strings.SplitN(r, "/", 2)[0], ":") == hostPort {
			return r
		}
	}
	return rs[0]
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
