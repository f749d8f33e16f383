package views

import (
	"strconv"
	"strings"
	"unicode"
)

// Printable returns s as it is when it holds no control or format
// characters, else Go-quoted ("x\x1b[2K…"): file names found in a cache
// root and text from registries are not cachectl's, and printed raw they
// could drive the admin's terminal (erase the plan's lines, retitle the
// window, reorder text with bidirectional overrides).
func Printable(s string) string {
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// PrintableText is Printable for messages of several lines: newlines and
// tabs stay, every other control or format character is escaped.
func PrintableText(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r != '\n' && r != '\t' && unsafeRune(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == '\n' || r == '\t' || !unsafeRune(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == unicode.ReplacementChar
}
