package planner

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportDirection checks the layering docs/architecture.md describes:
// imports flow cmd → planner → spec, providers. Providers and spec never
// import planner or cmd, spec imports no provider, planner never imports
// cmd (test files are free).
func TestImportDirection(t *testing.T) {
	const mod = "github.com/cachectl/cachectl/"
	rules := []struct{ dir, forbidden string }{
		{"providers", mod + "planner"},
		{"providers", mod + "cmd"},
		{"providers", mod + "spec"},
		{"spec", mod + "planner"},
		{"spec", mod + "cmd"},
		{"spec", mod + "providers"},
		{"planner", mod + "cmd"},
	}
	fset := token.NewFileSet()
	for _, r := range rules {
		err := filepath.WalkDir(filepath.Join("..", r.dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, im := range f.Imports {
				path, _ := strconv.Unquote(im.Path.Value)
				if path == r.forbidden || strings.HasPrefix(path, r.forbidden+"/") {
					t.Errorf("%s imports %s: %s/ must not import it (docs/architecture.md)", p, path, r.dir)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
