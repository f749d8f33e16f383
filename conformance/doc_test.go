package conformance

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// A doc is what the suite compares of one artifact, keyed by what it is:
//
//	build            "ok", or the normalized error of a failed build
//	sif/launch       the SIF launch script
//	sif/N            descriptor N: data type, name, partition info
//	sif/N/data       descriptor N's data (not for partitions)
//	tree/"PATH"      one path of the root file system (describe's line)
//	file/"PATH"      the content of a metadata file
//	run/NAME         a process's exit code, stdout and stderr
//	podman/inspect   the image's config and layers as podman reads them
type doc map[string]string

// write serializes d: one record per key, sorted, each "== LEN KEY\n" then
// LEN bytes and a newline, so any content round-trips.
func (d doc) write(path string) error {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "== %d %s\n%s\n", len(d[k]), k, d[k])
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// readDoc parses what write wrote.
func readDoc(path string) (doc, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d := doc{}
	r := bufio.NewReader(bytes.NewReader(raw))
	for {
		line, err := r.ReadString('\n')
		if line == "" && err != nil {
			return d, nil
		}
		rest, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "== ")
		n, key, ok2 := strings.Cut(rest, " ")
		size, err := strconv.Atoi(n)
		if !ok || !ok2 || err != nil {
			return nil, fmt.Errorf("%s: bad record header %q", path, line)
		}
		buf := make([]byte, size+1)
		if _, err := io.ReadFull(r, buf); err != nil || buf[size] != '\n' {
			return nil, fmt.Errorf("%s: record %q truncated", path, key)
		}
		d[key] = string(buf[:size])
	}
}

// normalizer replaces what legitimately differs between two builds of the
// same image (docs/conformance.md): the registry's address (a free port),
// the image's digests (the kit layer's bytes depend on the machine), build
// times, and the artifact's own path and name.
type normalizer struct {
	pairs []string
}

var (
	// Apptainer's and SingularityCE's org.label-schema.build-date.
	labelDate = regexp.MustCompile(`(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)_[0-9]{1,2}_[A-Z][a-z]+_[0-9]{4}_[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}_UTC`)
	// podman's HOSTNAME is the new container's ID.
	containerHostname = regexp.MustCompile(`env "HOSTNAME=[0-9a-f]{12}"`)
	// A shell's `set` listing (Apptainer's runscript without a command)
	// names its parent's process ID.
	shellPPID = regexp.MustCompile(`(?m)^PPID='[0-9]+'$`)
	// RFC 3339 times from 2025 on: build times (the corpus's are 2024).
	buildTime = regexp.MustCompile(`20(2[5-9]|[3-9][0-9])-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})`)
)

func (n normalizer) with(pairs ...string) normalizer {
	return normalizer{pairs: append(append([]string(nil), n.pairs...), pairs...)}
}

func (n normalizer) apply(s string) string {
	if len(n.pairs) > 0 {
		s = strings.NewReplacer(n.pairs...).Replace(s)
	}
	s = labelDate.ReplaceAllString(s, "BUILD-DATE")
	s = containerHostname.ReplaceAllString(s, `env "HOSTNAME=CONTAINER-ID"`)
	s = shellPPID.ReplaceAllString(s, "PPID='PID'")
	return buildTime.ReplaceAllString(s, "BUILD-TIME")
}

// tmpPath matches the temporary directories runtimes name in messages.
var tmpPath = regexp.MustCompile(`/tmp/[^ :'"]*`)
