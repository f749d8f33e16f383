package apptainer

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The metadata files below are what `apptainer build x.sif docker://REF`
// writes into /.singularity.d. Their formats (the env script's quoting, the
// runscript's OCI_ENTRYPOINT/OCI_CMD variables and its argument handling, the
// labels) are the compatibility surface Apptainer and users rely on; the
// static scripts are written here with the same behaviour.

// Deffile returns the definition Apptainer records for a build from ref:
// bootstrap docker for registry references, oci, oci-archive or
// docker-archive for local sources.
func Deffile(ref string) string {
	// Local sources use the bootstrap agent Apptainer has for them.
	for _, agent := range []struct{ prefix, bootstrap string }{
		{"oci-layout:", "oci"}, {"oci-archive:", "oci-archive"}, {"docker-archive:", "docker-archive"},
	} {
		if rest, ok := strings.CutPrefix(ref, agent.prefix); ok {
			return "bootstrap: " + agent.bootstrap + "\nfrom: " + rest + "\n"
		}
	}
	return "bootstrap: docker\nfrom: " + ref + "\n"
}

// envNameRE is the variable-name check Apptainer applies to image ENV
// entries; other names are skipped (they would break the script).
var envNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// shEscape escapes backslash, double quote, backtick and dollar.
func shEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)
	return r.Replace(s)
}

// escapeSingleQuotes makes s safe inside a single-quoted shell word.
func escapeSingleQuotes(s string) string {
	return strings.ReplaceAll(s, `'`, `'"'"'`)
}

// argsQuoted double-quotes each (escaped) argument and joins them with spaces.
func argsQuoted(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = `"` + shEscape(a) + `"`
	}
	return strings.Join(q, " ")
}

// EnvScript returns /.singularity.d/env/10-docker2singularity.sh for the
// image's ENV: PATH is exported as is, every other variable only when the
// host does not already set it; values are shell-escaped and then Go-quoted,
// exactly as Apptainer writes them. Entries with invalid names are skipped.
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
			fmt.Fprintf(&b, "export %s=%s\n", name, strconv.Quote(shEscape(value)))
		default:
			fmt.Fprintf(&b, "export %s=\"${%s:-%s}\"\n", name, name, strconv.Quote(shEscape(value)))
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

// Runscript returns /.singularity.d/runscript for an image's ENTRYPOINT and
// CMD. By default the combination is evaluated through the shell (Apptainer's
// behaviour); with SINGULARITY_NO_EVAL set it is executed verbatim, OCI style.
func Runscript(entrypoint, cmd []string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	fmt.Fprintf(&b, "OCI_ENTRYPOINT='%s'\n", escapeSingleQuotes(argsQuoted(entrypoint)))
	fmt.Fprintf(&b, "OCI_CMD='%s'\n", escapeSingleQuotes(argsQuoted(cmd)))
	pc, pe := prependArgs(cmd), prependArgs(entrypoint)

	b.WriteString(`
# With SINGULARITY_NO_EVAL set, behave like an OCI runtime: ENTRYPOINT, CMD
# and arguments are executed as given, without evaluation by the shell.
if [ -n "$SINGULARITY_NO_EVAL" ]; then
    # ENTRYPOINT only: entrypoint plus arguments
    if [ -z "$OCI_CMD" ] && [ -n "$OCI_ENTRYPOINT" ]; then
        `)
	b.WriteString(pe)
	b.WriteString(`
        exec "$@"
    fi

    # CMD only: CMD, unless arguments replace it
    if [ -n "$OCI_CMD" ] && [ -z "$OCI_ENTRYPOINT" ]; then`)
	if pc != "" {
		b.WriteString(`
        if [ $# -eq 0 ]; then
            `)
		b.WriteString(pc)
		b.WriteString(`
        fi`)
	}
	b.WriteString(`
        exec "$@"
    fi

    # ENTRYPOINT and CMD: CMD is the default for arguments`)
	switch {
	case pe != "":
		b.WriteString(`
    if [ $# -gt 0 ]; then
        `)
		b.WriteString(pe)
		b.WriteString(`
    else
        `)
		b.WriteString(pc)
		b.WriteString(`
        `)
		b.WriteString(pe)
		b.WriteString(`
    fi`)
	case pc != "":
		b.WriteString(`
    if [ $# -eq 0 ]; then
        `)
		b.WriteString(pc)
		b.WriteString(`
    fi`)
	}
	b.WriteString(`
    exec "$@"
fi

# Default: the ENTRYPOINT / CMD / arguments combination is evaluated by the
# shell before it runs, so the arguments are quoted once more here.
CMDLINE_ARGS=""
for arg in "$@"; do
        CMDLINE_ARGS="${CMDLINE_ARGS} \"$arg\""
done

# ENTRYPOINT only: entrypoint plus arguments
if [ -z "$OCI_CMD" ] && [ -n "$OCI_ENTRYPOINT" ]; then
    if [ $# -gt 0 ]; then
        SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT} ${CMDLINE_ARGS}"
    else
        SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT}"
    fi
fi

# CMD only: CMD, unless arguments replace it
if [ -n "$OCI_CMD" ] && [ -z "$OCI_ENTRYPOINT" ]; then
    if [ $# -gt 0 ]; then
        SINGULARITY_OCI_RUN="${CMDLINE_ARGS}"
    else
        SINGULARITY_OCI_RUN="${OCI_CMD}"
    fi
fi

# ENTRYPOINT and CMD: CMD is the default for arguments
if [ $# -gt 0 ]; then
    SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT} ${CMDLINE_ARGS}"
else
    SINGULARITY_OCI_RUN="${OCI_ENTRYPOINT} ${OCI_CMD}"
fi

# Evaluate, set the positional parameters, and run as the first process.
eval "set ${SINGULARITY_OCI_RUN}"
exec "$@"
`)
	return b.String()
}

// BuildLabels returns the labels Apptainer adds to the image's own labels
// at build time (they win over image labels of the same name).
func BuildLabels(ref, arch, variant string, now time.Time) map[string]string {
	l := map[string]string{
		"org.label-schema.schema-version":                      "1.0",
		"org.opencontainers.image.created":                     now.Format(time.RFC3339),
		"org.label-schema.build-date":                          buildDate(now),
		"org.label-schema.usage.singularity.deffile.bootstrap": "docker",
		"org.label-schema.usage.singularity.deffile.from":      ref,
		"org.opencontainers.image.architecture":                arch,
		"org.label-schema.build-arch":                          arch,
	}
	if variant != "" {
		l["org.opencontainers.image.variant"] = variant
	}
	return l
}

// buildDate formats t like Apptainer: "Monday_16_February_2026_10:21:46_CET"
// (no zero padding).
func buildDate(t time.Time) string {
	y, m, d := t.Date()
	h, mi, s := t.Clock()
	zone, _ := t.Zone()
	return fmt.Sprintf("%s_%d_%s_%d_%d:%d:%d_%s", t.Weekday(), d, m, y, h, mi, s, zone)
}

// LabelsJSON returns /.singularity.d/labels.json: the image labels merged
// with the build labels, as a tab-indented JSON object with sorted keys.
func LabelsJSON(imageLabels, build map[string]string) ([]byte, error) {
	all := make(map[string]string, len(imageLabels)+len(build))
	for k, v := range imageLabels {
		all[k] = v
	}
	for k, v := range build {
		all[k] = v
	}
	b, err := json.MarshalIndent(all, "", "\t")
	if err != nil {
		return nil, fmt.Errorf("apptainer: encode labels: %w", err)
	}
	return b, nil
}

// inspectMetadata mirrors the JSON of `apptainer inspect --all --json`,
// stored in the SIF as inspect-metadata.json.
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

// InspectMetadata returns the inspect-metadata.json data object.
func InspectMetadata(labels map[string]string, envScript, runscript, deffile string) ([]byte, error) {
	var m inspectMetadata
	m.Type = "container"
	a := &m.Data.Attributes
	a.Labels = labels
	a.Runscript = runscript
	a.Deffile = deffile
	a.Startscript = startscript
	a.Environment = map[string]string{
		"/.singularity.d/env/10-docker2singularity.sh": envScript,
		"/.singularity.d/env/90-environment.sh":        environmentSh,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("apptainer: encode inspect metadata: %w", err)
	}
	return b, nil
}

// OCIConfigJSON returns the oci-config.json data object: the image's
// runtime config (the "config" member of the config file), which is the only
// place where WORKDIR, user, ports and such survive in the SIF.
func OCIConfigJSON(cfg v1.Config) ([]byte, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("apptainer: encode oci config: %w", err)
	}
	return b, nil
}
