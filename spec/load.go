package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// Options are the inputs of Load besides the spec itself.
type Options struct {
	// Vars are raw "-var NAME=VALUE" arguments, in command-line order.
	Vars []string
	// VarFiles are "-var-file" paths, in command-line order.
	VarFiles []string
	// Environ is the process environment (os.Environ()); CACHECTL_VAR_<name>
	// entries set variables. Nil means no environment variables.
	Environ []string
}

// EnvVarPrefix prefixes environment variables that set spec variables.
const EnvVarPrefix = "CACHECTL_VAR_"

// Source is one spec file given by content, for LoadSources.
type Source struct {
	// Filename is shown in diagnostics; relative paths in the file
	// (store, ca_file, auth_file) are resolved against its directory.
	Filename string
	Bytes    []byte
}

// Load reads a spec from path, a file (with its compat file, see
// CompatFile, when that exists) or a directory whose *.hcl files (not
// recursive, in name order) together form the spec, evaluates it with the
// variables of opts and validates it. The model is nil when there are errors;
// the diagnostics (never nil) hold errors and warnings in source order.
func Load(path string, opts Options) (*Model, *Diagnostics) {
	diags := &Diagnostics{Files: map[string]*hcl.File{}}
	names, err := specFiles(path)
	if err != nil {
		diags.Diagnostics = append(diags.Diagnostics, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Cannot read the spec",
			Detail:   err.Error(),
		})
		return nil, diags
	}
	srcs := make([]Source, 0, len(names))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			diags.Diagnostics = append(diags.Diagnostics, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read a spec file",
				Detail:   err.Error(),
			})
			continue
		}
		srcs = append(srcs, Source{Filename: n, Bytes: b})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return loadSources(srcs, opts, diags)
}

// LoadSources is Load for specs given by content (tests, fuzzing, stdin).
func LoadSources(srcs []Source, opts Options) (*Model, *Diagnostics) {
	return loadSources(srcs, opts, &Diagnostics{Files: map[string]*hcl.File{}})
}

// specFiles lists the spec files of path: the file itself, or the *.hcl
// files of a directory in name order.
func specFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s does not exist; give the spec with -spec PATH (a file, or a directory of *.hcl files)", path)
		}
		return nil, err
	}
	if !fi.IsDir() {
		return withCompatFile(path), nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".hcl") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("directory %s has no *.hcl files", path)
	}
	return out, nil
}

// loader holds the state of one Load.
type loader struct {
	opts   Options
	diags  hcl.Diagnostics
	files  map[string]*hcl.File
	parser *hclparse.Parser
	funcs  map[string]function.Function

	vars     map[string]*variable
	varOrder []string
	varObj   cty.Value

	locals     map[string]*hcl.Attribute
	localVals  map[string]cty.Value
	localState map[string]int

	ctx *hcl.EvalContext

	refs map[string]refResult // ParseRef results by reference

	flavors map[string]*flavorInfo
	caches  []*cacheInfo

	cacheImages map[string][]*hcl.Block // cache_images blocks by cache name
}

type refResult struct {
	info  *RefInfo
	local *LocalRef
	err   error
}

func (l *loader) errorf(rng *hcl.Range, summary, detail string, args ...any) {
	l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: rng})
}

func (l *loader) warnf(rng *hcl.Range, summary, detail string, args ...any) {
	l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: rng})
}

func (l *loader) add(d hcl.Diagnostics) { l.diags = append(l.diags, d...) }

// rootSchema is the top level of a spec file.
var rootSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "cachectl"},
	{Type: "variable", LabelNames: []string{"name"}},
	{Type: "locals"},
	{Type: "registry", LabelNames: []string{"host"}},
	{Type: "flavor", LabelNames: []string{"name"}},
	{Type: "cache", LabelNames: []string{"name"}},
	{Type: "cache_images", LabelNames: []string{"cache"}},
	{Type: "node_cache", LabelNames: []string{"name"}},
}}

func loadSources(srcs []Source, opts Options, diags *Diagnostics) (*Model, *Diagnostics) {
	l := &loader{
		opts:       opts,
		files:      diags.Files,
		parser:     hclparse.NewParser(),
		funcs:      Functions(),
		vars:       map[string]*variable{},
		locals:     map[string]*hcl.Attribute{},
		localVals:  map[string]cty.Value{},
		localState: map[string]int{},
		refs:       map[string]refResult{},
	}
	m := &Model{}
	byType := map[string][]*hcl.Block{}
	for _, s := range srcs {
		m.Files = append(m.Files, s.Filename)
		f, d := l.parser.ParseHCL(s.Bytes, s.Filename)
		l.add(d)
		if f == nil {
			continue
		}
		l.files[s.Filename] = f
		content, d := f.Body.Content(rootSchema)
		l.add(d)
		for _, b := range content.Blocks {
			byType[b.Type] = append(byType[b.Type], b)
		}
	}

	l.declareVariables(byType["variable"])
	l.assignVariables()
	m.Variables = l.variableValues()
	l.declareLocals(byType["locals"])
	l.evalLocals()

	l.decodeSettings(m, byType["cachectl"])
	l.decodeRegistries(m, byType["registry"])
	l.decodeFlavors(m, byType["flavor"])
	l.collectCacheImages(byType["cache_images"])
	l.decodeCaches(m, byType["cache"])
	l.checkCacheImages(m)
	l.decodeNodeCaches(m, byType["node_cache"])
	l.checkFlavorsUsed(m)
	l.checkRoots(m)

	diags.Diagnostics = append(diags.Diagnostics, l.diags...)
	diags.sortAndDedupe()
	if diags.HasErrors() {
		return nil, diags
	}
	return m, diags
}

// evalCtx returns the evaluation context with the variables and the locals
// evaluated so far.
func (l *loader) evalCtx() *hcl.EvalContext {
	if l.ctx != nil {
		return l.ctx
	}
	locals := make(map[string]cty.Value, len(l.locals))
	for n := range l.locals {
		if v, ok := l.localVals[n]; ok {
			locals[n] = v
		} else {
			locals[n] = cty.DynamicVal
		}
	}
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":   l.varObj,
			"local": cty.ObjectVal(locals),
		},
		Functions: l.funcs,
	}
}

// checkRefs reports references to names that are not declared: var.X
// without a variable block, local.X without a local, anything else.
// It returns false when the expression must not be evaluated.
func (l *loader) checkRefs(expr hcl.Expression) bool {
	ok := true
	for _, tr := range expr.Variables() {
		root := tr.RootName()
		rng := tr.SourceRange()
		var attr string
		if len(tr) > 1 {
			if a, isAttr := tr[1].(hcl.TraverseAttr); isAttr {
				attr = a.Name
			}
		}
		switch root {
		case "var":
			if attr == "" {
				l.errorf(&rng, "Invalid reference", "A reference to var must name a variable, like var.determined_version.")
				ok = false
			} else if _, found := l.vars[attr]; !found {
				l.errorf(&rng, "Reference to undeclared variable", "There is no variable named %q.%s Declare it with a variable %q { ... } block.", attr, suggest(attr, l.varOrder, "var."), attr)
				ok = false
			}
		case "local":
			if attr == "" {
				l.errorf(&rng, "Invalid reference", "A reference to local must name a local value, like local.ngc.")
				ok = false
			} else if _, found := l.locals[attr]; !found {
				l.errorf(&rng, "Reference to undeclared local value", "There is no local value named %q. Define it in a locals block.%s", attr, suggest(attr, sortedKeys(l.locals), "local."))
				ok = false
			}
		default:
			l.errorf(&rng, "Reference to unknown name", "%q is not defined. Expressions can refer to var.NAME (variables) and local.NAME (local values).", root)
			ok = false
		}
	}
	return ok
}

// eval checks references and evaluates an expression. It returns false (and
// a DynamicVal) when the value is unusable because of an error that has been
// reported, or because it depends on one.
func (l *loader) eval(expr hcl.Expression) (cty.Value, bool) {
	if !l.checkRefs(expr) {
		return cty.DynamicVal, false
	}
	v, d := expr.Value(l.evalCtx())
	l.add(d)
	if d.HasErrors() || !v.IsWhollyKnown() {
		return cty.DynamicVal, false
	}
	return v, true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
