package spec

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// The reference grammar of the distribution project (docker/distribution
// "reference" package), checked strictly: go-containerregistry alone accepts
// "a//b", "a/../b", ports above 65535 and silently drops the tag of
// "name:tag@digest" when it parses.
var (
	domainComponentRE = regexp.MustCompile(`^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$`)
	digestAlgRE       = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*$`)
	ipv6RE            = regexp.MustCompile(`^\[[0-9a-fA-F:.]+\]$`)
)

// RefInfo describes a reference that passed ParseRef.
type RefInfo struct {
	// Parsed is the reference as go-containerregistry parses it (a
	// name.Digest when the reference has a digest, else a name.Tag).
	Parsed name.Reference
	// Registry is the host[:port] as written, "" when the reference names none
	// (Docker Hub is then implied).
	Registry string
	// Repository is the path after the registry as written.
	Repository string
	// Tag as written ("" when none).
	Tag string
	// Digest as written ("" when none).
	Digest string
}

// ParseRef parses an image reference strictly: the grammar of the
// distribution project (lowercase repository components, tags of at most
// 128 word characters, digests of the right length, ports 1-65535), then
// go-containerregistry's parser for the normalized form. A reference
// without tag or digest ("alpine") is valid; callers warn about it.
func ParseRef(s string) (*RefInfo, error) {
	if s == "" {
		return nil, fmt.Errorf("the reference is empty")
	}
	if strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t\r\n") {
		return nil, fmt.Errorf("a reference must not contain white space")
	}
	info := &RefInfo{}
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		info.Digest = rest[i+1:]
		rest = rest[:i]
		if err := checkDigest(info.Digest); err != nil {
			return nil, err
		}
	}
	// A tag is what follows the last ":" when no "/" follows it (else the
	// colon belongs to a registry port).
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		info.Tag = rest[i+1:]
		rest = rest[:i]
		if info.Tag == "" {
			return nil, fmt.Errorf("the tag after %q is empty", rest+":")
		}
		if !validTag(info.Tag) {
			return nil, fmt.Errorf("invalid tag %q: a tag is 1 to 128 letters, digits, \"_\", \".\" or \"-\", not starting with \".\" or \"-\"", info.Tag)
		}
	}
	if rest == "" {
		return nil, fmt.Errorf("the repository name is empty")
	}
	parts := strings.Split(rest, "/")
	if len(parts) > 1 && (strings.ContainsAny(parts[0], ".:") || parts[0] == "localhost" || strings.HasPrefix(parts[0], "[")) {
		info.Registry = parts[0]
		if err := checkRegistry(info.Registry); err != nil {
			return nil, err
		}
		parts = parts[1:]
	}
	info.Repository = strings.Join(parts, "/")
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("repository %q has an empty path component", info.Repository)
		}
		if !validPathComponent(p) {
			if strings.ToLower(p) != p {
				return nil, fmt.Errorf("repository names must be lowercase: %q", info.Repository)
			}
			return nil, fmt.Errorf("invalid repository path component %q: lowercase letters and digits, separated by \".\", \"_\", \"__\" or dashes", p)
		}
	}
	if len(rest) > 255 {
		return nil, fmt.Errorf("repository name is longer than 255 characters")
	}
	parsed, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("invalid reference: %w", err)
	}
	info.Parsed = parsed
	return info, nil
}

func checkDigest(d string) error {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg == "" || hex == "" {
		return fmt.Errorf("invalid digest %q: want ALGORITHM:HEX, e.g. sha256:<64 hex digits>", d)
	}
	if !digestAlgRE.MatchString(alg) {
		return fmt.Errorf("invalid digest algorithm %q", alg)
	}
	want := map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}[alg]
	if want == 0 {
		return fmt.Errorf("unsupported digest algorithm %q: use sha256, sha384 or sha512", alg)
	}
	if len(hex) != want {
		return fmt.Errorf("invalid digest %q: %s digests have %d hex digits, not %d", d, alg, want, len(hex))
	}
	for _, r := range hex {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return fmt.Errorf("invalid digest %q: only lowercase hex digits are allowed", d)
		}
	}
	return nil
}

// checkRegistry checks a registry host[:port] as written in a reference or
// a registry block label.
func checkRegistry(h string) error {
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		i := strings.IndexByte(h, ']')
		if i < 0 {
			return fmt.Errorf("invalid registry %q: unterminated IPv6 address", h)
		}
		host, port = h[:i+1], strings.TrimPrefix(h[i+1:], ":")
		if !ipv6RE.MatchString(host) {
			return fmt.Errorf("invalid registry %q: bad IPv6 address", h)
		}
		if h[i+1:] != "" && !strings.HasPrefix(h[i+1:], ":") {
			return fmt.Errorf("invalid registry %q", h)
		}
	} else if i := strings.IndexByte(h, ':'); i >= 0 {
		host, port = h[:i], h[i+1:]
		if port == "" {
			return fmt.Errorf("invalid registry %q: empty port", h)
		}
	}
	if port != "" || strings.HasSuffix(h, ":") {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.HasPrefix(port, "+") {
			return fmt.Errorf("invalid registry %q: port %q is not a number from 1 to 65535", h, port)
		}
	}
	if strings.HasPrefix(host, "[") {
		return nil
	}
	if host == "" {
		return fmt.Errorf("invalid registry %q: empty host", h)
	}
	for _, c := range strings.Split(host, ".") {
		if !domainComponentRE.MatchString(c) {
			return fmt.Errorf("invalid registry host %q: %q is not a valid host name component", host, c)
		}
	}
	return nil
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// validPathComponent matches [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* without a
// regular expression (this runs for every image of every spec).
func validPathComponent(p string) bool {
	i, n := 0, len(p)
	for {
		start := i
		for i < n && isLowerAlnum(p[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == n {
			return true
		}
		switch {
		case p[i] == '.':
			i++
		case p[i] == '_':
			i++
			if i < n && p[i] == '_' {
				i++
			}
		case p[i] == '-':
			for i < n && p[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

// validTag matches [\w][\w.-]{0,127}.
func validTag(t string) bool {
	if len(t) == 0 || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		word := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
		if !word && (i == 0 || c != '.' && c != '-') {
			return false
		}
	}
	return true
}
