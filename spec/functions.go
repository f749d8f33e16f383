package spec

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Functions returns the function table available in spec expressions: a
// curated part of go-cty's standard library (string, collection, numeric,
// encoding, date and conversion functions; no operator-shaped functions such
// as add or equal, which HCL has operators for), try and can, and the domain
// function determined_default_image. A new map is returned on every call.
func Functions() map[string]function.Function {
	return map[string]function.Function{
		// strings
		"chomp":         stdlib.ChompFunc,
		"format":        stdlib.FormatFunc,
		"formatlist":    stdlib.FormatListFunc,
		"indent":        stdlib.IndentFunc,
		"join":          stdlib.JoinFunc,
		"lower":         stdlib.LowerFunc,
		"regex":         stdlib.RegexFunc,
		"regexall":      stdlib.RegexAllFunc,
		"regex_replace": stdlib.RegexReplaceFunc,
		"replace":       stdlib.ReplaceFunc,
		"split":         stdlib.SplitFunc,
		"strrev":        stdlib.ReverseFunc,
		"strlen":        stdlib.StrlenFunc,
		"substr":        stdlib.SubstrFunc,
		"title":         stdlib.TitleFunc,
		"trim":          stdlib.TrimFunc,
		"trimprefix":    stdlib.TrimPrefixFunc,
		"trimspace":     stdlib.TrimSpaceFunc,
		"trimsuffix":    stdlib.TrimSuffixFunc,
		"upper":         stdlib.UpperFunc,
		"startswith":    startsWithFunc,
		"endswith":      endsWithFunc,
		"strcontains":   strContainsFunc,
		// collections
		"chunklist":              stdlib.ChunklistFunc,
		"coalesce":               stdlib.CoalesceFunc,
		"coalescelist":           stdlib.CoalesceListFunc,
		"compact":                stdlib.CompactFunc,
		"concat":                 stdlib.ConcatFunc,
		"contains":               stdlib.ContainsFunc,
		"distinct":               stdlib.DistinctFunc,
		"element":                stdlib.ElementFunc,
		"flatten":                stdlib.FlattenFunc,
		"index":                  stdlib.IndexFunc,
		"keys":                   stdlib.KeysFunc,
		"length":                 stdlib.LengthFunc,
		"lookup":                 stdlib.LookupFunc,
		"merge":                  stdlib.MergeFunc,
		"range":                  stdlib.RangeFunc,
		"reverse":                stdlib.ReverseListFunc,
		"setintersection":        stdlib.SetIntersectionFunc,
		"setproduct":             stdlib.SetProductFunc,
		"setsubtract":            stdlib.SetSubtractFunc,
		"setsymmetricdifference": stdlib.SetSymmetricDifferenceFunc,
		"setunion":               stdlib.SetUnionFunc,
		"slice":                  stdlib.SliceFunc,
		"sort":                   stdlib.SortFunc,
		"values":                 stdlib.ValuesFunc,
		"zipmap":                 stdlib.ZipmapFunc,
		// numbers
		"abs":      stdlib.AbsoluteFunc,
		"ceil":     stdlib.CeilFunc,
		"floor":    stdlib.FloorFunc,
		"log":      stdlib.LogFunc,
		"max":      stdlib.MaxFunc,
		"min":      stdlib.MinFunc,
		"parseint": stdlib.ParseIntFunc,
		"pow":      stdlib.PowFunc,
		"signum":   stdlib.SignumFunc,
		// encoding
		"csvdecode":  stdlib.CSVDecodeFunc,
		"jsondecode": stdlib.JSONDecodeFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		// date and time
		"formatdate": stdlib.FormatDateFunc,
		"timeadd":    stdlib.TimeAddFunc,
		// conversion
		"tobool":   stdlib.MakeToFunc(cty.Bool),
		"tolist":   stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":    stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber": stdlib.MakeToFunc(cty.Number),
		"toset":    stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring": stdlib.MakeToFunc(cty.String),
		// errors
		"try": tryfunc.TryFunc,
		"can": tryfunc.CanFunc,
		// domain
		"determined_default_image": DeterminedDefaultImageFunc,
	}
}

func stringPredicate(f func(s, x string) bool, a, b string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{
			{Name: a, Type: cty.String},
			{Name: b, Type: cty.String},
		},
		Type: function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.BoolVal(f(args[0].AsString(), args[1].AsString())), nil
		},
	})
}

var (
	startsWithFunc  = stringPredicate(strings.HasPrefix, "str", "prefix")
	endsWithFunc    = stringPredicate(strings.HasSuffix, "str", "suffix")
	strContainsFunc = stringPredicate(strings.Contains, "str", "substr")
)

// Determined flavors of default images.
const (
	FlavorCPU  = "cpu"
	FlavorCUDA = "cuda"
	FlavorROCm = "rocm"
)

// determinedDefaults are the default task images of Determined releases,
// from master/pkg/schemas/expconf/const.go of each release.
var determinedDefaults = map[string]map[string]string{
	"0.34.0": {FlavorCPU: "determinedai/pytorch-ngc:0.34.0", FlavorCUDA: "determinedai/pytorch-ngc:0.34.0"},
	"0.35.0": {FlavorCPU: "determinedai/pytorch-ngc:0.35.0", FlavorCUDA: "determinedai/pytorch-ngc:0.35.0"},
	"0.35.1": {
		FlavorCPU:  "determinedai/pytorch-ngc:0.35.1",
		FlavorCUDA: "determinedai/pytorch-ngc:0.35.1",
		FlavorROCm: "determinedai/environments:rocm-5.0-pytorch-1.10-tf-2.7-rocm-622d512",
	},
	"0.36.0": {FlavorCPU: "determinedai/pytorch-ngc:0.36.0", FlavorCUDA: "determinedai/pytorch-ngc:0.36.0"},
	"0.37.0": {FlavorCPU: "determinedai/pytorch-ngc:0.37.0", FlavorCUDA: "determinedai/pytorch-ngc:0.37.0"},
	"0.38.1": {
		FlavorCPU:  "determinedai/pytorch-ngc:0.38.1",
		FlavorCUDA: "determinedai/pytorch-ngc:0.38.1",
		FlavorROCm: "determinedai/environments:rocm-5.6-pytorch-1.3-tf-2.10-rocm-mpich-0736b6d",
	},
}

// DeterminedDefaultImage returns the default task image of a Determined
// release for a flavor ("cpu", "cuda" or "rocm"). Unknown versions and
// flavors are errors that name the known ones.
func DeterminedDefaultImage(version, flavor string) (string, error) {
	v := strings.TrimPrefix(version, "v")
	byFlavor, ok := determinedDefaults[v]
	if !ok {
		return "", fmt.Errorf("unknown Determined version %q; known versions: %s", version, strings.Join(DeterminedVersions(), ", "))
	}
	if img, ok := byFlavor[flavor]; ok {
		return img, nil
	}
	var fl []string
	for f := range byFlavor {
		fl = append(fl, f)
	}
	sort.Strings(fl)
	if flavor == FlavorROCm {
		var with []string
		for _, ver := range DeterminedVersions() {
			if _, ok := determinedDefaults[ver][FlavorROCm]; ok {
				with = append(with, ver)
			}
		}
		return "", fmt.Errorf("Determined %s has no default rocm image; versions with one: %s", v, strings.Join(with, ", "))
	}
	return "", fmt.Errorf("unknown flavor %q for Determined %s; known flavors: %s", flavor, v, strings.Join(fl, ", "))
}

// DeterminedVersions lists the Determined versions DeterminedDefaultImage
// knows, in version order.
func DeterminedVersions() []string {
	vs := make([]string, 0, len(determinedDefaults))
	for v := range determinedDefaults {
		vs = append(vs, v)
	}
	sort.Strings(vs) // all are 0.3x.y: string order is version order
	return vs
}

// DeterminedDefaultImageFunc is the spec function
// determined_default_image(version, flavor).
var DeterminedDefaultImageFunc = function.New(&function.Spec{
	Description: "The default task container image of a Determined release for a flavor (cpu, cuda, rocm).",
	Params: []function.Parameter{
		{Name: "version", Type: cty.String},
		{Name: "flavor", Type: cty.String},
	},
	Type: function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		img, err := DeterminedDefaultImage(args[0].AsString(), args[1].AsString())
		if err != nil {
			if _, known := determinedDefaults[strings.TrimPrefix(args[0].AsString(), "v")]; known {
				return cty.NilVal, function.NewArgError(1, err)
			}
			return cty.NilVal, function.NewArgError(0, err)
		}
		return cty.StringVal(img), nil
	},
})
