package spec

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// variable is a declared input variable and the value it ends up with.
type variable struct {
	name    string
	typ     cty.Type
	typeSet bool // type given explicitly
	decl    hcl.Range
	value   cty.Value // cty.NilVal: no value yet
	failed  bool      // an error was reported for it
}

var variableSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "default"},
	{Name: "type"},
	{Name: "description"},
}}

// declareVariables decodes the variable blocks: type and default.
func (l *loader) declareVariables(blocks []*hcl.Block) {
	for _, b := range blocks {
		content, d := b.Body.Content(variableSchema)
		l.add(d)
		name := b.Labels[0]
		lr := b.LabelRanges[0]
		if !hclsyntax.ValidIdentifier(name) {
			l.errorf(&lr, "Invalid variable name", "%q is not a valid variable name: use letters, digits, underscores and dashes, starting with a letter or underscore.", name)
			continue
		}
		if prev, dup := l.vars[name]; dup {
			l.errorf(&lr, "Duplicate variable", "A variable named %q was already declared at %s.", name, posString(prev.decl))
			continue
		}
		v := &variable{name: name, typ: cty.DynamicPseudoType, decl: b.DefRange}
		l.vars[name] = v
		l.varOrder = append(l.varOrder, name)
		if a := content.Attributes["type"]; a != nil {
			ty, d := typeexpr.TypeConstraint(a.Expr)
			l.add(d)
			if d.HasErrors() {
				v.failed = true
			} else {
				v.typ, v.typeSet = ty, true
			}
		}
		if a := content.Attributes["description"]; a != nil {
			l.stringAttr(a, nil) // type check only
		}
		if a := content.Attributes["default"]; a != nil {
			// Defaults are constants: functions, but no var or local.
			val, d := a.Expr.Value(&hcl.EvalContext{Functions: l.funcs})
			l.add(d)
			if d.HasErrors() {
				v.failed = true
				continue
			}
			if !val.IsNull() {
				cv, err := convert.Convert(val, v.typ)
				if err != nil {
					l.errorf(a.Expr.Range().Ptr(), "Invalid default value for variable", "The default of variable %q does not match its type %s: %s.", name, typeexpr.TypeString(v.typ), err)
					v.failed = true
					continue
				}
				v.value = cv
			}
		}
	}
}

// assignVariables applies, from lowest to highest precedence, the
// CACHECTL_VAR_<name> environment variables, the -var-file files in order
// and the -var options in order; it then builds the var object.
func (l *loader) assignVariables() {
	for _, kv := range l.opts.Environ {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvVarPrefix) {
			continue
		}
		name := strings.TrimPrefix(k, EnvVarPrefix)
		v := l.vars[name]
		if v == nil {
			continue // undeclared: ignored, the environment may serve several specs
		}
		l.setRaw(v, val, k)
	}
	for _, path := range l.opts.VarFiles {
		l.readVarFile(path)
	}
	for _, arg := range l.opts.Vars {
		name, val, ok := strings.Cut(arg, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			l.errorf(nil, "Invalid -var option", "The option -var %q is not of the form NAME=VALUE.", arg)
			continue
		}
		v := l.vars[name]
		if v == nil {
			l.errorf(nil, "Value for undeclared variable", "-var %s=...: the spec declares no variable %q.%s Declare it with a variable %q { ... } block.", name, name, suggest(name, l.varOrder, ""), name)
			continue
		}
		l.setRaw(v, val, "-var "+name)
	}
	obj := make(map[string]cty.Value, len(l.vars))
	for _, name := range l.varOrder {
		v := l.vars[name]
		switch {
		case v.failed:
			obj[name] = cty.DynamicVal
		case v.value == cty.NilVal || v.value.IsNull():
			l.errorf(v.decl.Ptr(), "No value for required variable", "Variable %q has no default. Set it with -var %s=VALUE, in a -var-file, or with the environment variable %s%s.", name, name, EnvVarPrefix, name)
			obj[name] = cty.DynamicVal
		default:
			obj[name] = v.value
		}
	}
	l.varObj = cty.ObjectVal(obj)
}

// setRaw sets a variable from a raw string (-var or the environment): taken
// literally for variables of type string or without a type, parsed as an
// HCL expression otherwise (Terraform's rule).
func (l *loader) setRaw(v *variable, raw, origin string) {
	if !v.typeSet || v.typ == cty.String {
		v.value = cty.StringVal(raw)
		return
	}
	fname := fmt.Sprintf("<value of %s>", origin)
	expr, d := hclsyntax.ParseExpression([]byte(raw), fname, hcl.InitialPos)
	l.files[fname] = &hcl.File{Bytes: []byte(raw)}
	l.add(d)
	if d.HasErrors() {
		v.failed = true
		return
	}
	val, d := expr.Value(nil)
	l.add(d)
	if d.HasErrors() {
		v.failed = true
		return
	}
	l.assign(v, val, expr.Range(), origin)
}

func (l *loader) assign(v *variable, val cty.Value, rng hcl.Range, origin string) {
	cv, err := convert.Convert(val, v.typ)
	if err != nil {
		l.errorf(&rng, "Invalid value for variable", "%s: variable %q has type %s: %s.", origin, v.name, typeexpr.TypeString(v.typ), err)
		v.failed = true
		return
	}
	v.value = cv
}

// readVarFile applies a variables file: NAME = VALUE lines, constant values.
func (l *loader) readVarFile(path string) {
	src, err := os.ReadFile(path)
	if err != nil {
		l.errorf(nil, "Cannot read a variables file", "-var-file %s: %s.", path, strings.TrimPrefix(err.Error(), "open "+path+": "))
		return
	}
	f, d := l.parser.ParseHCL(src, path)
	l.add(d)
	if f == nil || d.HasErrors() {
		return
	}
	l.files[path] = f
	attrs, d := f.Body.JustAttributes()
	l.add(d)
	for _, a := range sortedAttrs(attrs) {
		v := l.vars[a.Name]
		if v == nil {
			l.errorf(a.NameRange.Ptr(), "Value for undeclared variable", "The spec declares no variable %q.%s Remove it from %s or declare it with a variable %q { ... } block.", a.Name, suggest(a.Name, l.varOrder, ""), path, a.Name)
			continue
		}
		val, d := a.Expr.Value(nil)
		l.add(d)
		if d.HasErrors() {
			v.failed = true
			continue
		}
		l.assign(v, val, a.Expr.Range(), path)
	}
}

// sortedAttrs returns attributes in source order.
func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sortAttrs(out)
	return out
}

func sortAttrs(as []*hcl.Attribute) {
	for i := 1; i < len(as); i++ {
		for j := i; j > 0 && lessRange(as[j].Range, as[j-1].Range); j-- {
			as[j], as[j-1] = as[j-1], as[j]
		}
	}
}

func lessRange(a, b hcl.Range) bool {
	if a.Filename != b.Filename {
		return a.Filename < b.Filename
	}
	return a.Start.Byte < b.Start.Byte
}

// posString formats the start of a range as FILE:LINE:COLUMN.
func posString(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// suggest returns ` Did you mean "PREFIXx"?` for the closest candidate, or "".
func suggest(given string, candidates []string, prefix string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(given, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", prefix+best)
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
