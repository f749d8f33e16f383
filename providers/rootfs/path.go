package rootfs

import (
	"fmt"
	"strings"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	opaqueMarker   = ".wh..wh..opq"
	maxPathLen     = 4096
)

// cleanPath normalises a tar member name or hard-link target the way tar
// does: leading "/" and "./" are stripped, empty and "." components dropped.
// It returns the components (none for the root) and rejects ".." anywhere,
// NUL bytes and over-long names.
func cleanPath(name string) ([]string, error) {
	if len(name) > maxPathLen {
		return nil, fmt.Errorf("%w: name longer than %d bytes", ErrUnsafe, maxPathLen)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return nil, fmt.Errorf("%w: name %q contains a NUL byte", ErrUnsafe, name)
	}
	var comps []string
	for c := range strings.SplitSeq(name, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("%w: name %q has a \"..\" component", ErrUnsafe, name)
		}
		comps = append(comps, c)
	}
	return comps, nil
}

// CleanPath returns the clean relative form of a tar member name ("./etc/"
// → "etc", "/x" → "x", "" or "/" → ""), or an error wrapping ErrUnsafe
// when a component is "..".
func CleanPath(name string) (string, error) {
	comps, err := cleanPath(name)
	if err != nil {
		return "", err
	}
	return strings.Join(comps, "/"), nil
}
