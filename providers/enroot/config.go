package enroot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"
)

// The files below are what `enroot import docker://REF` (Enroot 4.1.2,
// src/docker.sh, docker::configure) writes from the image config: jq prints
// the values raw, bash reads arrays with readarray -t and quotes them with
// ${var[@]@Q}.
//
// No image-supplied string becomes shell syntax in /etc/rc, nor a line of
// its own in /etc/rc or /etc/fstab. Where Enroot 4.1.2's own output would
// (docs/conformance.md lists these deviations), cachectl writes the value
// as data instead:
//   - a label key holding a newline: Enroot turns the newlines of label
//     values into spaces but writes keys raw; cachectl turns them into
//     spaces in keys too;
//   - a WORKDIR holding ", $, ` or \: Enroot pastes it between double
//     quotes (`cd "/w/$(id)"` runs id); cachectl single-quotes it;
//   - a VOLUME path holding a newline: Enroot writes it raw (the rest
//     becomes a second fstab entry); cachectl writes getmntent's \012.

// Files holds the generated configuration files of an enroot image.
type Files struct {
	Fstab, Environment, RC, RCLocal string
	// Workdir is the working directory the rc script enters (created in the
	// image when missing); "" means "/".
	Workdir string
}

// rcLocal is the initial /etc/rc.local.
const rcLocal = `# This file is sourced by /etc/rc when the container starts.
# It can be used to manipulate the entrypoint or the command of the container.
`

// imageConfig is the part of an image config enroot reads, with the labels
// in document order (jq keeps it).
type imageConfig struct {
	Volumes    []string
	Env        []string
	Labels     [][2]string
	WorkingDir string
	Entrypoint []string
	Cmd        []string
}

// parseConfig decodes a raw image config file.
func parseConfig(raw []byte) (*imageConfig, error) {
	var doc struct {
		Config struct {
			Volumes    map[string]json.RawMessage `json:"Volumes"`
			Env        []string                   `json:"Env"`
			Labels     json.RawMessage            `json:"Labels"`
			WorkingDir string                     `json:"WorkingDir"`
			Entrypoint []string                   `json:"Entrypoint"`
			Cmd        []string                   `json:"Cmd"`
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("enroot: decode image config: %w", err)
	}
	c := &imageConfig{
		Env:        doc.Config.Env,
		WorkingDir: doc.Config.WorkingDir,
		Entrypoint: doc.Config.Entrypoint,
		Cmd:        doc.Config.Cmd,
	}
	for v := range doc.Config.Volumes {
		c.Volumes = append(c.Volumes, v)
	}
	sort.Strings(c.Volumes) // jq's keys sorts
	labels, err := orderedObject(doc.Config.Labels)
	if err != nil {
		return nil, fmt.Errorf("enroot: decode labels: %w", err)
	}
	c.Labels = labels
	return c, nil
}

// orderedObject decodes a JSON object of strings keeping its key order.
func orderedObject(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("labels are not an object")
	}
	var out [][2]string
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		k := kt.(string)
		// A repeated key keeps its first position and its last value (jq).
		replaced := false
		for i := range out {
			if out[i][0] == k {
				out[i][1] = v
				replaced = true
			}
		}
		if !replaced {
			out = append(out, [2]string{k, v})
		}
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return nil, err
	}
	return out, nil
}

// readarray returns what `jq -r '.x[]' | readarray -t a` yields: elements
// split at newlines.
func readarray(elems []string) []string {
	var out []string
	for _, e := range elems {
		out = append(out, strings.Split(e, "\n")...)
	}
	return out
}

// bashQuote quotes s like bash's ${s@Q} (bash 5, UTF-8 locale): single
// quotes, or $'...' when s holds control characters.
func bashQuote(s string) string {
	if s == "" {
		return "''"
	}
	ansi := false
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			ansi = true
			break
		}
	}
	if !ansi {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\v':
			b.WriteString(`\v`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		case 0x1b:
			b.WriteString(`\E`)
		case '\'':
			b.WriteString(`\'`)
		case '\\':
			b.WriteString(`\\`)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, "\\%03o", c)
			} else if c < utf8.RuneSelf {
				b.WriteByte(c)
			} else {
				_, n := utf8.DecodeRuneInString(s[i:])
				b.WriteString(s[i : i+n])
				i += n
				continue
			}
		}
		i++
	}
	b.WriteString("'")
	return b.String()
}

// oneLine turns newlines into spaces (jq's gsub("\n"; " ")).
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// shellWord returns s as one literal shell word: between double quotes as
// Enroot writes it when that is literal (no ", $, ` or \ inside), else
// between single quotes (POSIX; ' as '\”).
func shellWord(s string) string {
	if !strings.ContainsAny(s, "\"$`\\") {
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func quoteAll(a []string) string {
	q := make([]string, len(a))
	for i, s := range a {
		q[i] = bashQuote(s)
	}
	return strings.Join(q, " ")
}

// Configure returns the files enroot writes for the raw image config.
func Configure(rawConfig []byte) (*Files, error) {
	c, err := parseConfig(rawConfig)
	if err != nil {
		return nil, err
	}
	f := &Files{RCLocal: rcLocal}

	var b strings.Builder
	for _, v := range c.Volumes {
		v = strings.ReplaceAll(v, "\n", `\012`)
		fmt.Fprintf(&b, "${ENROOT_ROOTFS}%s %s none x-create=dir,bind,rw,nosuid,nodev\n", v, v)
	}
	f.Fstab = b.String()

	b.Reset()
	for _, e := range c.Env {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	f.Environment = b.String()

	// `common::read -r workdir`: the first line, without surrounding blanks.
	workdir, _, _ := strings.Cut(c.WorkingDir, "\n")
	workdir = strings.Trim(workdir, " \t")
	f.Workdir = workdir
	if workdir == "" {
		workdir = "/"
	}
	entrypoint, cmd := readarray(c.Entrypoint), readarray(c.Cmd)
	if len(entrypoint) == 0 && len(cmd) == 0 {
		cmd = []string{"/bin/sh"}
	}

	b.Reset()
	for _, l := range c.Labels {
		// jq: "# \(.key) \(.value | gsub("\n"; " "))"; keys too here.
		fmt.Fprintf(&b, "# %s %s\n", oneLine(l[0]), oneLine(l[1]))
	}
	if b.Len() > 0 {
		b.WriteByte('\n')
	}
	ep, cm := quoteAll(entrypoint), quoteAll(cmd)
	wq := shellWord(workdir)
	fmt.Fprintf(&b, `mkdir -p %s 2> /dev/null
cd %s && unset OLDPWD || exit 1

if [ -s /etc/rc.local ]; then
    . /etc/rc.local
fi

if [ $# -gt 0 ]; then
    exec %s "$@"
else
    exec %s %s
fi
`, wq, wq, ep, ep, cm)
	f.RC = b.String()
	return f, nil
}
