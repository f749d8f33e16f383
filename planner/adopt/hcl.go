package adopt

import (
	"fmt"
	"os/user"
	"sort"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/spec"
)

// NewCache holds the settings of a cache block adopt writes.
type NewCache struct {
	Name     string
	Runtime  spec.Runtime
	Root     string
	Owner    string // "" = not set
	Group    string
	FileMode spec.Mode
	DirMode  spec.Mode
}

// Settings infers a new cache's settings from the root: the owner, group
// and mode that most adoptable files have (so that adopting changes
// nothing and plan shows the files that differ as drift), the root
// directory's mode as dir_mode.
func (r *Result) Settings(name string) NewCache {
	nc := NewCache{Name: name, Runtime: r.Runtime, Root: r.Root, FileMode: spec.DefaultFileMode, DirMode: r.DirMode}
	uids, gids, modes := map[int]int{}, map[int]int{}, map[spec.Mode]int{}
	for _, f := range r.Adoptable() {
		uids[f.UID]++
		gids[f.GID]++
		modes[f.Mode]++
	}
	if uid, ok := most(uids); ok {
		nc.Owner = userName(uid)
	}
	if gid, ok := most(gids); ok {
		nc.Group = groupName(gid)
	}
	if m, ok := most(modes); ok {
		nc.FileMode = m
	}
	return nc
}

// most returns the most frequent key (the smallest among equals).
func most[K ~int | ~uint32](m map[K]int) (K, bool) {
	var best K
	n := 0
	for k, c := range m {
		if c > n || c == n && k < best {
			best, n = k, c
		}
	}
	return best, n > 0
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}

// specFiles are the files a spec edit adds: adopted ones the spec does not
// name yet, sorted by reference.
func specFiles(files []*File) []*File {
	var out []*File
	for _, f := range files {
		if f.Status == StatusAdopt && f.Info.RefFrom != "spec" {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out
}

// needsBlock reports whether a file needs an image block (its own name or
// platform) rather than a place in the images list.
func needsBlock(f *File, platform string) bool {
	return f.CustomName || f.Platform != "" && f.Platform != platform
}

// NewCacheBlock returns a cache block (canonical HCL, as "cachectl fmt"
// writes it) for the adopted files of r, after a comment that says where
// it comes from.
func NewCacheBlock(nc NewCache, r *Result) []byte {
	f := hclwrite.NewEmptyFile()
	body := f.Body()
	body.AppendUnstructuredTokens(comment(fmt.Sprintf("# Adopted by \"cachectl adopt %s\" from %s.\n", nc.Name, nc.Root)))
	b := body.AppendNewBlock("cache", []string{nc.Name})
	cb := b.Body()
	cb.SetAttributeValue("runtime", cty.StringVal(string(nc.Runtime)))
	cb.SetAttributeValue("root", cty.StringVal(nc.Root))
	if nc.Owner != "" {
		cb.SetAttributeValue("owner", cty.StringVal(nc.Owner))
	}
	if nc.Group != "" {
		cb.SetAttributeValue("group", cty.StringVal(nc.Group))
	}
	cb.SetAttributeValue("file_mode", cty.StringVal(nc.FileMode.String()))
	cb.SetAttributeValue("dir_mode", cty.StringVal(nc.DirMode.String()))
	addImages(cb, specFiles(r.Files), spec.DefaultPlatform.OS+"/"+spec.DefaultPlatform.Architecture, false)
	return hclwrite.Format(f.Bytes())
}

// addImages writes the files into a cache body: an images list (set when
// the body has none, hasList false) and image blocks for files with their
// own name or platform, or for all when the body has a list already.
func addImages(cb *hclwrite.Body, files []*File, platform string, hasList bool) {
	var list []string
	var blocks []*File
	for _, f := range files {
		if hasList || needsBlock(f, platform) {
			blocks = append(blocks, f)
		} else {
			list = append(list, f.Ref)
		}
	}
	if len(list) > 0 {
		cb.SetAttributeRaw("images", spec.ListTokens(list))
	}
	for _, f := range blocks {
		cb.AppendNewline()
		ib := cb.AppendNewBlock("image", nil).Body()
		ib.SetAttributeValue("ref", cty.StringVal(f.Ref))
		if f.CustomName {
			ib.SetAttributeValue("name", cty.StringVal(f.Name))
		}
		if f.Platform != "" && f.Platform != platform {
			ib.SetAttributeValue("platform", cty.StringVal(f.Platform))
		}
	}
}

func comment(text string) hclwrite.Tokens {
	return hclwrite.Tokens{{Type: hclsyntax.TokenComment, Bytes: []byte(text)}}
}

// AddToCache returns the spec file src (named filename) with the adopted
// files of r added to the block cache "NAME": an images list when the
// block has none, image blocks otherwise. Everything else in the file,
// comments included, stays as it was; the result is formatted.
func AddToCache(src []byte, filename string, c *spec.Cache, r *Result) ([]byte, error) {
	f, diags := hclwrite.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("%s: %s", filename, diags.Error())
	}
	blk := f.Body().FirstMatchingBlock("cache", []string{c.Name})
	if blk == nil {
		return nil, fmt.Errorf("%s has no cache %q block", filename, c.Name)
	}
	files := specFiles(r.Files)
	if len(files) == 0 {
		return src, nil
	}
	hasList := blk.Body().GetAttribute("images") != nil
	addImages(blk.Body(), files, image.PlatformString(c.Platform), hasList)
	return hclwrite.Format(f.Bytes()), nil
}
