package spec

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Attr is an attribute a new block is created with (a string value).
type Attr struct{ Name, Value string }

// AddToImageList returns the spec file src (named filename) with ref added
// to the "images" list of the block TYPE "NAME" (a cache or a
// cache_images block), the list kept sorted, one image per line; a
// missing block is appended with attrs, in order, before its list. changed
// is false (and src returned) when ref is there already. Everything else
// in the file, comments included, stays as it was; the result is
// formatted. A list that is not plain strings (an expression someone
// wrote by hand) is an error that says so: the tool that calls this would
// otherwise have to evaluate, then rewrite, that person's expression.
func AddToImageList(src []byte, filename, blockType, name string, attrs []Attr, ref string) (out []byte, changed bool, err error) {
	f, diags := hclwrite.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, false, fmt.Errorf("%s: %s", filename, diags.Error())
	}
	blk := f.Body().FirstMatchingBlock(blockType, []string{name})
	if blk == nil {
		f.Body().AppendNewline()
		blk = f.Body().AppendNewBlock(blockType, []string{name})
		for _, a := range attrs {
			blk.Body().SetAttributeValue(a.Name, cty.StringVal(a.Value))
		}
	}
	notPlain := fmt.Errorf("%s: the images of %s %q are not a plain list of strings (edited by hand?); make them one", filename, blockType, name)
	var list []string
	if a := blk.Body().GetAttribute("images"); a != nil {
		expr, d := hclsyntax.ParseExpression(a.Expr().BuildTokens(nil).Bytes(), filename, hcl.InitialPos)
		var v cty.Value
		if !d.HasErrors() {
			v, d = expr.Value(nil)
		}
		if d.HasErrors() || !(v.Type().IsTupleType() || v.Type().IsListType()) {
			return nil, false, notPlain
		}
		for _, el := range v.AsValueSlice() {
			if el.Type() != cty.String || el.IsNull() {
				return nil, false, notPlain
			}
			if el.AsString() == ref {
				return src, false, nil
			}
			list = append(list, el.AsString())
		}
	}
	list = append(list, ref)
	sort.Strings(list)
	blk.Body().SetAttributeRaw("images", ListTokens(list))
	return hclwrite.Format(f.Bytes()), true, nil
}

// ListTokens is an HCL list of strings, one per line (formatted by
// hclwrite.Format).
func ListTokens(items []string) hclwrite.Tokens {
	toks := hclwrite.Tokens{{Type: hclsyntax.TokenOBrack, Bytes: []byte("[")}, {Type: hclsyntax.TokenNewline, Bytes: []byte("\n")}}
	for _, it := range items {
		toks = append(toks, hclwrite.TokensForValue(cty.StringVal(it))...)
		toks = append(toks, &hclwrite.Token{Type: hclsyntax.TokenComma, Bytes: []byte(",")}, &hclwrite.Token{Type: hclsyntax.TokenNewline, Bytes: []byte("\n")})
	}
	return append(toks, &hclwrite.Token{Type: hclsyntax.TokenCBrack, Bytes: []byte("]")})
}
