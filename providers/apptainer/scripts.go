package apptainer

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The per-image files of /.singularity.d and the SIF's JSON objects, as
// Apptainer 1.5.3 and SingularityCE 4.5.1 write them for `build x.sif
// docker://REF` (both write the same env script, definition and objects;
// the runscript's text and the build labels differ, see Runtime). Image
// strings (ENV, ENTRYPOINT, CMD, labels) only ever appear quoted: inside
// double quotes with \ " ` $ escaped (env script, OCI_ENTRYPOINT/OCI_CMD),
// inside single quotes (the runscript's `set --` lines), or as JSON.

// definition returns the bootstrap agent and the "from" value of the
// definition the runtime records for a build from ref: "docker" for a
// registry reference, or "oci", "oci-archive", "docker-archive" for cachectl's
// local sources (their path and image name as the from value).
func definition(ref string) (bootstrap, from string) {
	for _, agent := range []struct{ prefix, bootstrap string }{
		{"oci-layout:", "oci"}, {"oci-archive:", "oci-archive"}, {"docker-archive:", "docker-archive"},
	} {
		if rest, ok := strings.CutPrefix(ref, agent.prefix); ok {
			return agent.bootstrap, rest
		}
	}
	return "docker", ref
}

// Deffile returns /.singularity.d/Singularity, the definition both
// runtimes record: "bootstrap: docker\nfrom: REF\n\n".
func Deffile(ref string) string {
	bootstrap, from := definition(ref)
	return "bootstrap: " + bootstrap + "\nfrom: " + from + "\n\n"
}

// envNameRE is the variable-name rule of the runtimes' env script: image
// ENV entries with other names are left out.
var envNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// shEscape escapes backslash, double quote, backquote and dollar, the
// characters special inside a double-quoted shell word.
func shEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)
	return r.Replace(s)
}

// dquote returns s as one double-quoted shell word.
func dquote(s string) string { return `"` + shEscape(s) + `"` }

// escapeSingleQuotes makes s safe inside a single-quoted shell word.
func escapeSingleQuotes(s string) string {
	return strings.ReplaceAll(s, `'`, `'"'"'`)
}

// argsQuoted double-quotes each argument and joins them with spaces.
func argsQuoted(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = dquote(a)
	}
	return strings.Join(q, " ")
}

// EnvScript returns /.singularity.d/env/10-docker2singularity.sh for the
// image's ENV, in order: `export PATH="VALUE"`, `export NAME="${NAME:-"VALUE"}"`
// for every other variable (the image's value unless NAME is set and not
// empty), `export NAME="${NAME:-}"` for an entry without "=". VALUE is the
// value byte for byte inside double quotes, with \ " ` $ escaped, so that
// sourcing the script yields exactly the image's value (newlines and TABs
// stay literal). Entries whose name is not [a-zA-Z_][a-zA-Z0-9_]* are left
// out. Both runtimes write this text.
func EnvScript(env []string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, e := range env {
		name, value, hasValue := strings.Cut(e, "=")
		if !envNameRE.MatchString(name) {
			continue
		}
		switch {
		case !hasValue:
			fmt.Fprintf(&b, "export %s=\"${%s:-}\"\n", name, name)
		case name == "PATH":
			fmt.Fprintf(&b, "export %s=%s\n", name, dquote(value))
		default:
			fmt.Fprintf(&b, "export %s=\"${%s:-%s}\"\n", name, name, dquote(value))
		}
	}
	return b.String()
}

// prependArgs returns the `set -- 'ARG' "$@"` lines that put args in front
// of the positional parameters, last argument first.
func prependArgs(args []string) string {
	var b strings.Builder
	for i := len(args) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "set -- '%s' \"$@\"\n", escapeSingleQuotes(args[i]))
	}
	return b.String()
}

// runscriptData fills a runtime's runscript.tmpl.
type runscriptData struct {
	// Entrypoint and Cmd are the values of OCI_ENTRYPOINT and OCI_CMD
	// (inside single quotes): the arguments double-quoted and escaped.
	Entrypoint, Cmd string
	// PrependEntrypoint and PrependCmd are `set --` lines (prependArgs).
	PrependEntrypoint, PrependCmd string
}

// Runscript returns the runtime's /.singularity.d/runscript for an
// image's ENTRYPOINT and CMD. By default it evaluates the combination
// through the shell (the runtimes' behaviour; image strings are escaped so
// that the evaluation gives them back verbatim); with SINGULARITY_NO_EVAL
// set (--no-eval) it runs them as given, OCI style.
func (rt *Runtime) Runscript(entrypoint, cmd []string) (string, error) {
	d := runscriptData{
		Entrypoint:        escapeSingleQuotes(argsQuoted(entrypoint)),
		Cmd:               escapeSingleQuotes(argsQuoted(cmd)),
		PrependEntrypoint: prependArgs(entrypoint),
		PrependCmd:        prependArgs(cmd),
	}
	var b strings.Builder
	if err := rt.runscript.Execute(&b, d); err != nil {
		return "", fmt.Errorf("apptainer: %s runscript: %w", rt.Name, err)
	}
	return b.String(), nil
}

// buildSource is what the build labels record of the image's source.
type buildSource struct {
	// Ref is the reference as written (or a local source).
	Ref string
	// Name is the normalized reference ("docker.io/library/alpine:3.20")
	// and Digest the digest it resolved to (of the index for a
	// multi-platform image); for registry sources only.
	Name, Digest string
	// Arch is the image's architecture (GOARCH names).
	Arch string
}

// BuildLabels returns the labels the runtime adds to the image's own at
// build time (they win over image labels of the same name):
// org.label-schema.{schema-version, build-date, build-arch}, the runtime's
// version, the definition's bootstrap and from, and for Apptainer's
// registry builds org.opencontainers.image.base.{name,digest}.
//
// build-arch is the image's architecture: what the runtime writes when it
// builds on a host of the image's platform.
func (rt *Runtime) BuildLabels(src buildSource, now time.Time) map[string]string {
	bootstrap, from := definition(src.Ref)
	l := map[string]string{
		"org.label-schema.schema-version":                      "1.0",
		"org.label-schema.build-date":                          buildDate(now),
		"org.label-schema.build-arch":                          src.Arch,
		rt.versionLabel:                                        rt.Version,
		"org.label-schema.usage.singularity.deffile.bootstrap": bootstrap,
		"org.label-schema.usage.singularity.deffile.from":      from,
	}
	if rt.baseLabels && bootstrap == "docker" {
		if src.Name != "" {
			l["org.opencontainers.image.base.name"] = src.Name
		}
		if src.Digest != "" {
			l["org.opencontainers.image.base.digest"] = src.Digest
		}
	}
	return l
}

// buildDate formats t as the runtimes do: weekday, day, month, year, time
// without zero padding, zone abbreviation ("Monday_16_February_2026_10:1:6_CET").
func buildDate(t time.Time) string {
	y, m, d := t.Date()
	h, mi, s := t.Clock()
	zone, _ := t.Zone()
	return fmt.Sprintf("%s_%d_%s_%d_%d:%d:%d_%s", t.Weekday(), d, m, y, h, mi, s, zone)
}

// mergeLabels returns the image labels overlaid with the build labels.
func mergeLabels(imageLabels, build map[string]string) map[string]string {
	all := make(map[string]string, len(imageLabels)+len(build))
	for k, v := range imageLabels {
		all[k] = v
	}
	for k, v := range build {
		all[k] = v
	}
	return all
}

// LabelsJSON returns /.singularity.d/labels.json: labels as a tab-indented
// JSON object with sorted keys (Go's encoding, "<" as \u003c), no final
// newline.
func LabelsJSON(labels map[string]string) ([]byte, error) {
	b, err := json.MarshalIndent(labels, "", "\t")
	if err != nil {
		return nil, fmt.Errorf("apptainer: encode labels: %w", err)
	}
	return b, nil
}

// inspectMetadata is the SIF's inspect-metadata.json object, what
// `apptainer inspect --json` prints.
type inspectMetadata struct {
	Data struct {
		Attributes struct {
			Environment map[string]string `json:"environment,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Runscript   string            `json:"runscript,omitempty"`
			Deffile     string            `json:"deffile,omitempty"`
			Startscript string            `json:"startscript,omitempty"`
		} `json:"attributes"`
	} `json:"data"`
	Type string `json:"type"`
}

// inspectInput holds the files inspect-metadata.json repeats.
type inspectInput struct {
	Labels                                       map[string]string
	EnvScript, EnvironmentSh, Runscript, Deffile string
	Startscript                                  string
}

// InspectMetadata returns the inspect-metadata.json object: the labels,
// and the env scripts, runscript, definition and startscript with leading
// and trailing white space removed, as the runtimes store them.
func InspectMetadata(in inspectInput) ([]byte, error) {
	var m inspectMetadata
	m.Type = "container"
	a := &m.Data.Attributes
	a.Labels = in.Labels
	a.Runscript = strings.TrimSpace(in.Runscript)
	a.Deffile = strings.TrimSpace(in.Deffile)
	a.Startscript = strings.TrimSpace(in.Startscript)
	a.Environment = map[string]string{
		"/.singularity.d/env/10-docker2singularity.sh": strings.TrimSpace(in.EnvScript),
		"/.singularity.d/env/90-environment.sh":        strings.TrimSpace(in.EnvironmentSh),
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("apptainer: encode inspect metadata: %w", err)
	}
	return b, nil
}

// OCIConfigJSON returns the oci-config.json object: the image's runtime
// config (the "config" member of its config file), the only place where
// WORKDIR, USER, ports and such survive in the SIF.
func OCIConfigJSON(cfg v1.Config) ([]byte, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("apptainer: encode oci config: %w", err)
	}
	return b, nil
}
