package spec

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// CompatSuffix ends the name of the spec file that the launcher-compatible
// commands (manage-singularity-cache, manage-enroot-cache, "cachectl
// compat") own and edit.
const CompatSuffix = ".compat.hcl"

// CompatFile returns the path of the compat spec file that belongs to the
// spec at specPath: for a spec file DIR/NAME.hcl it is DIR/NAME.compat.hcl
// (loaded together with the spec file by Load), for a spec directory DIR it
// is DIR/compat.hcl (loaded like every *.hcl file of the directory). The
// compat commands write the images they add there, so that the spec the
// admin keeps stays theirs alone and plan sees both.
func CompatFile(specPath string) string {
	if fi, err := os.Stat(specPath); err == nil && fi.IsDir() {
		return filepath.Join(specPath, "compat.hcl")
	}
	if strings.HasSuffix(specPath, CompatSuffix) {
		return specPath
	}
	return strings.TrimSuffix(specPath, ".hcl") + CompatSuffix
}

// withCompatFile adds the compat file that belongs to the spec file path,
// when it exists (a regular file), to the files Load reads.
func withCompatFile(path string) []string {
	out := []string{path}
	if strings.HasSuffix(path, CompatSuffix) {
		return out
	}
	c := CompatFile(path)
	if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
		out = append(out, c)
	}
	return out
}

// StringVar returns the value of the spec variable name as a string, and
// whether the spec declares it with a value that converts to a string.
func (m *Model) StringVar(name string) (string, bool) {
	v, ok := m.Variables[name]
	if !ok || v == cty.NilVal || v.IsNull() || !v.IsWhollyKnown() {
		return "", false
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil {
		return "", false
	}
	return s.AsString(), true
}
