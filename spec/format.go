package spec

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns src in the canonical HCL format (hclwrite's: aligned
// equals signs, two-space indentation, normalized spacing). Sources with
// syntax errors are not formatted: the diagnostics say why and the result
// is nil. Formatting is idempotent: Format of a result returns it unchanged.
func Format(src []byte, filename string) ([]byte, hcl.Diagnostics) {
	_, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	out := hclwrite.Format(src)
	// hclwrite.Format is a token-level pass; a second pass settles the rare
	// inputs whose alignment changes once the first has normalized spacing.
	if again := hclwrite.Format(out); string(again) != string(out) {
		out = again
	}
	return out, diags
}
