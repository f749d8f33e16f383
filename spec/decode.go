package spec

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"
)

// Compressions lists the squashfs compressors a cache may select.
var Compressions = []string{"gzip", "lzo", "xz", "zstd", "lz4", "lzma"}

// Architectures lists the CPU architectures a platform may name (the
// GOARCH spellings that OCI image indexes use).
var Architectures = []string{"386", "amd64", "arm", "arm64", "loong64", "mips64le", "ppc64le", "riscv64", "s390x"}

var (
	settingsSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "store"}, {Name: "source"}, {Name: "executor"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "slurm"}},
	}
	registrySchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "mirror"}, {Name: "ca_file"}, {Name: "auth_file"}, {Name: "insecure"}, {Name: "max_concurrency"}, {Name: "timeout"}, {Name: "retry_time"},
	}}
	flavorSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "images", Required: true}}}
	cacheSchema  = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "runtime", Required: true}, {Name: "root", Required: true},
			{Name: "flavors"}, {Name: "images"}, {Name: "platform"},
			{Name: "owner"}, {Name: "group"}, {Name: "file_mode"}, {Name: "dir_mode"},
			{Name: "prune"}, {Name: "compression"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "image"}},
	}
	imageSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "ref", Required: true}, {Name: "name"}, {Name: "platform"},
	}}
	cacheNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
	platformRE  = regexp.MustCompile(`^[a-z0-9_]+$`)
	userNameRE  = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$`)
)

// ValidCacheName reports whether name can name a cache block: letters,
// digits, underscores and dashes, starting with a letter or underscore.
func ValidCacheName(name string) bool { return cacheNameRE.MatchString(name) }

// typed evaluates an attribute and converts it to ty. ok is false when the
// attribute is null (treated as absent) or on a reported error.
func (l *loader) typed(a *hcl.Attribute, ty cty.Type, what string) (cty.Value, bool) {
	v, ok := l.eval(a.Expr)
	if !ok || v.IsNull() {
		return cty.NilVal, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		l.errorf(a.Expr.Range().Ptr(), "Incorrect attribute value type", "Inappropriate value for attribute %q: %s required.", a.Name, what)
		return cty.NilVal, false
	}
	return cv, true
}

// stringAttr decodes a string attribute into *dst (when dst is not nil).
func (l *loader) stringAttr(a *hcl.Attribute, dst *string) bool {
	v, ok := l.typed(a, cty.String, "string")
	if ok && dst != nil {
		*dst = v.AsString()
	}
	return ok
}

func (l *loader) boolAttr(a *hcl.Attribute, dst *bool) bool {
	v, ok := l.typed(a, cty.Bool, "bool")
	if ok {
		*dst = v.True()
	}
	return ok
}

func (l *loader) intAttr(a *hcl.Attribute, dst *int) bool {
	v, ok := l.typed(a, cty.Number, "number")
	if !ok {
		return false
	}
	if err := gocty.FromCtyValue(v, dst); err != nil {
		l.errorf(a.Expr.Range().Ptr(), "Incorrect attribute value type", "Inappropriate value for attribute %q: a whole number required.", a.Name)
		return false
	}
	return true
}

// durationAttr decodes a duration string ("90s", "5m") between lo and hi.
func (l *loader) durationAttr(a *hcl.Attribute, dst *time.Duration, lo, hi time.Duration) {
	var s string
	if !l.stringAttr(a, &s) {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		l.errorf(a.Expr.Range().Ptr(), "Invalid "+a.Name, "%s must be a duration between %s and %s such as \"90s\" or \"5m\", not %q.", a.Name, lo, hi, s)
		return
	}
	*dst = d
}

// strItem is one string of a list attribute with the range that wrote it.
type strItem struct {
	val string
	rng hcl.Range
}

// stringList decodes a list of strings. When the expression is a literal
// list, each item gets the range of its own element expression; otherwise
// all items get the range of the whole expression.
func (l *loader) stringList(a *hcl.Attribute) ([]strItem, bool) {
	v, ok := l.eval(a.Expr)
	if !ok || v.IsNull() {
		return nil, false
	}
	ty := v.Type()
	if !ty.IsTupleType() && !ty.IsListType() && !ty.IsSetType() {
		l.errorf(a.Expr.Range().Ptr(), "Incorrect attribute value type", "Inappropriate value for attribute %q: list of string required.", a.Name)
		return nil, false
	}
	// Element by element: cty's tuple-to-list conversion unifies the element
	// types pairwise, which is slow for lists of thousands of images.
	elems := v.AsValueSlice()
	tuple, isTuple := a.Expr.(*hclsyntax.TupleConsExpr)
	perElem := isTuple && len(tuple.Exprs) == len(elems)
	out := make([]strItem, 0, len(elems))
	good := true
	for i, e := range elems {
		rng := a.Expr.Range()
		if perElem {
			rng = tuple.Exprs[i].Range()
		}
		if e.IsNull() {
			l.errorf(&rng, "Null list element", "Element %d of %q is null; a string is required.", i, a.Name)
			good = false
			continue
		}
		sv, err := convert.Convert(e, cty.String)
		if err != nil {
			l.errorf(&rng, "Incorrect attribute value type", "Inappropriate value for attribute %q: list of string required, but element %d is %s.", a.Name, i, e.Type().FriendlyName())
			good = false
			continue
		}
		out = append(out, strItem{val: sv.AsString(), rng: rng})
	}
	return out, good
}

// specDir returns the absolute directory of the file of a range, against
// which relative paths in it are resolved.
func specDir(r hcl.Range) string {
	d, err := filepath.Abs(filepath.Dir(r.Filename))
	if err != nil {
		return filepath.Dir(r.Filename)
	}
	return d
}

// localPath resolves a path attribute against the directory of its file.
func (l *loader) pathAttr(a *hcl.Attribute, dst *string) {
	var s string
	if !l.stringAttr(a, &s) {
		return
	}
	if s == "" {
		l.errorf(a.Expr.Range().Ptr(), "Empty path", "%s must not be empty; leave it out instead.", a.Name)
		return
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(specDir(a.Range), s)
	}
	*dst = filepath.Clean(s)
}

func (l *loader) decodeSettings(m *Model, blocks []*hcl.Block) {
	for i, b := range blocks {
		if i > 0 {
			l.errorf(b.DefRange.Ptr(), "Duplicate cachectl block", "The settings were already given at %s; a spec has at most one cachectl block.", posString(blocks[0].DefRange))
			continue
		}
		content, d := b.Body.Content(settingsSchema)
		l.add(d)
		if a := content.Attributes["store"]; a != nil {
			l.pathAttr(a, &m.Store)
		}
		if a := content.Attributes["source"]; a != nil {
			l.sourceAttr(a, m)
		}
		l.decodeExecutor(m, content)
	}
}

// sourceAttr decodes source = "bundle.tar" or ["new.tar", "base.tar"]:
// bundles that plan and apply read images from instead of registries.
func (l *loader) sourceAttr(a *hcl.Attribute, m *Model) {
	v, ok := l.eval(a.Expr)
	if !ok || v.IsNull() {
		return
	}
	if v.Type() == cty.String {
		var p string
		l.pathAttr(a, &p)
		if p != "" {
			m.Sources = []string{p}
		}
		return
	}
	items, _ := l.stringList(a)
	for _, it := range items {
		p := it.val
		if p == "" {
			l.errorf(&it.rng, "Empty path", "A source bundle path must not be empty.")
			continue
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(specDir(a.Range), p)
		}
		m.Sources = append(m.Sources, filepath.Clean(p))
	}
}

func (l *loader) decodeRegistries(m *Model, blocks []*hcl.Block) {
	seen := map[string]*Registry{}
	for _, b := range blocks {
		content, d := b.Body.Content(registrySchema)
		l.add(d)
		host := b.Labels[0]
		lr := b.LabelRanges[0]
		if err := checkRegistry(host); err != nil {
			l.errorf(&lr, "Invalid registry host", "%s. A registry block is labelled with HOST or HOST:PORT, as in image references (\"docker.io\", \"127.0.0.1:5000\").", capitalize(err.Error()))
			continue
		}
		if prev := seen[host]; prev != nil {
			l.errorf(&lr, "Duplicate registry block", "Registry %q was already configured at %s.", host, posString(prev.Range))
			continue
		}
		r := &Registry{Host: host, Range: b.DefRange}
		seen[host] = r
		if a := content.Attributes["mirror"]; a != nil {
			if l.stringAttr(a, &r.Mirror) {
				if err := checkRegistry(r.Mirror); err != nil {
					l.errorf(a.Expr.Range().Ptr(), "Invalid mirror", "%s. A mirror is HOST or HOST:PORT.", capitalize(err.Error()))
				}
			}
		}
		if a := content.Attributes["ca_file"]; a != nil {
			l.pathAttr(a, &r.CAFile)
		}
		if a := content.Attributes["auth_file"]; a != nil {
			l.pathAttr(a, &r.AuthFile)
		}
		if a := content.Attributes["insecure"]; a != nil {
			if l.boolAttr(a, &r.Insecure) && r.Insecure && r.Mirror != "" {
				l.warnf(a.Expr.Range().Ptr(), "insecure applies to the registry itself, not only its mirror",
					"insecure = true in registry %q turns off TLS verification and allows plain HTTP for %s itself (where images come from when the mirror lacks them), not for the mirror %s, which has its own settings. insecure applies to %s itself too; for an HTTP mirror, give the mirror a registry block of its own with insecure = true (registry %q { insecure = true }) and remove it here.",
					host, host, r.Mirror, host, r.Mirror)
			}
		}
		if a := content.Attributes["max_concurrency"]; a != nil {
			if l.intAttr(a, &r.MaxConcurrency) && (r.MaxConcurrency < 1 || r.MaxConcurrency > 1024) {
				l.errorf(a.Expr.Range().Ptr(), "Invalid max_concurrency", "max_concurrency must be between 1 and 1024, not %d.", r.MaxConcurrency)
			}
		}
		if a := content.Attributes["timeout"]; a != nil {
			l.durationAttr(a, &r.Timeout, time.Second, time.Hour)
		}
		if a := content.Attributes["retry_time"]; a != nil {
			l.durationAttr(a, &r.RetryTime, 0, 24*time.Hour)
		}
		m.Registries = append(m.Registries, r)
	}
	sort.Slice(m.Registries, func(i, j int) bool { return m.Registries[i].Host < m.Registries[j].Host })
}

// flavorItems keeps, per flavor, the images with their ranges, for caches.
type flavorInfo struct {
	flavor *Flavor
	items  []strItem
}

func (l *loader) decodeFlavors(m *Model, blocks []*hcl.Block) map[string]*flavorInfo {
	if l.flavors == nil {
		l.flavors = map[string]*flavorInfo{}
	}
	for _, b := range blocks {
		content, d := b.Body.Content(flavorSchema)
		l.add(d)
		name := b.Labels[0]
		lr := b.LabelRanges[0]
		if strings.TrimSpace(name) == "" {
			l.errorf(&lr, "Invalid flavor name", "A flavor name must not be empty.")
			continue
		}
		if prev := l.flavors[name]; prev != nil {
			l.errorf(&lr, "Duplicate flavor", "A flavor named %q was already defined at %s.", name, posString(prev.flavor.Range))
			continue
		}
		fi := &flavorInfo{flavor: &Flavor{Name: name, Range: b.DefRange}}
		l.flavors[name] = fi
		m.Flavors = append(m.Flavors, fi.flavor)
		if a := content.Attributes["images"]; a != nil {
			items, _ := l.stringList(a)
			for _, it := range items {
				if l.checkRef(it) {
					fi.items = append(fi.items, it)
					fi.flavor.Images = append(fi.flavor.Images, it.val)
				}
			}
		}
	}
	return l.flavors
}

// checkRef parses a reference where it is written, reporting errors and the
// warnings for references that will drift. It returns false on errors.
func (l *loader) checkRef(it strItem) bool {
	info, local, err := l.parseRef(it.val)
	if err != nil {
		l.errorf(&it.rng, "Invalid image reference", "%q: %s.", it.val, err)
		return false
	}
	if local != nil {
		return true // a local source does not drift with a registry tag
	}
	switch {
	case info.Tag == "" && info.Digest == "":
		l.warnf(&it.rng, "Image reference without tag or digest", "%q names no tag or digest, so \"latest\" is pulled and the artifact changes whenever the tag moves. Pin a tag (%s:1.2.3) or a digest.", it.val, it.val)
	case info.Tag == "latest" && info.Digest == "":
		l.warnf(&it.rng, "Image reference with the \"latest\" tag", "%q will change whenever the tag moves. Pin a version tag or a digest.", it.val)
	}
	return true
}

// parseRef parses a registry reference (info) or a local source (local),
// caching the result per string.
func (l *loader) parseRef(s string) (info *RefInfo, local *LocalRef, err error) {
	if r, ok := l.refs[s]; ok {
		return r.info, r.local, r.err
	}
	switch {
	case IsLocalRef(s):
		local, err = ParseLocalRef(s)
	case transportHint(s) != "":
		err = fmt.Errorf("%s", transportHint(s))
	default:
		info, err = ParseRef(s)
	}
	l.refs[s] = refResult{info, local, err}
	return info, local, err
}

// ParsePlatform parses "OS/ARCH" or "OS/ARCH/VARIANT", e.g. "linux/amd64"
// or "linux/arm64/v8". The OS must be linux; the architecture one of
// Architectures.
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return v1.Platform{}, fmt.Errorf("%q is not of the form OS/ARCH or OS/ARCH/VARIANT (e.g. \"linux/amd64\", \"linux/arm64/v8\")", s)
	}
	for _, p := range parts {
		if !platformRE.MatchString(p) {
			return v1.Platform{}, fmt.Errorf("%q is not of the form OS/ARCH or OS/ARCH/VARIANT: parts are lowercase letters, digits and underscores", s)
		}
	}
	if parts[0] != "linux" {
		return v1.Platform{}, fmt.Errorf("operating system %q is not supported: the runtimes run linux images", parts[0])
	}
	known := false
	for _, a := range Architectures {
		known = known || a == parts[1]
	}
	if !known {
		return v1.Platform{}, fmt.Errorf("unknown architecture %q; known: %s", parts[1], strings.Join(Architectures, ", "))
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func (l *loader) platformAttr(a *hcl.Attribute) (v1.Platform, bool) {
	var s string
	if !l.stringAttr(a, &s) {
		return v1.Platform{}, false
	}
	p, err := ParsePlatform(s)
	if err != nil {
		l.errorf(a.Expr.Range().Ptr(), "Invalid platform", "%s.", capitalize(err.Error()))
		return v1.Platform{}, false
	}
	return p, true
}

func (l *loader) modeAttr(a *hcl.Attribute, dst *Mode) {
	var s string
	if !l.stringAttr(a, &s) {
		return
	}
	mo, err := ParseMode(s)
	if err != nil {
		l.errorf(a.Expr.Range().Ptr(), "Invalid mode", "%s: %s. Write the mode as an octal string such as \"0644\" or \"2775\".", a.Name, err)
		return
	}
	if mo&0o002 != 0 {
		l.errorf(a.Expr.Range().Ptr(), "World-writable mode", "%s = %q lets every user replace or change the images that jobs run. Drop the write bit for others (e.g. %q).", a.Name, s, (mo &^ 0o002).String())
		return
	}
	*dst = mo
}

// checkDirMode warns when a root's directories would let others rename
// and replace entries (group write without the sticky bit): see
// docs/security.md.
func (l *loader) checkDirMode(a *hcl.Attribute, c *Cache) {
	m := c.DirMode
	if m&0o020 == 0 || m&0o1000 != 0 {
		return
	}
	who := "the directory's group"
	if c.Group != "" {
		who = fmt.Sprintf("group %q", c.Group)
	}
	l.warnf(a.Expr.Range().Ptr(), "Group-writable directories without the sticky bit",
		"dir_mode = %q lets every member of %s rename, replace and delete any entry in the cache's directories: files cachectl placed (jobs then run what the member put there until the next apply) and the .cachectl state directory (cachectl then refuses the root until an admin looks). Add the sticky bit (dir_mode = %q) so that only an entry's owner can rename or remove it, or drop group write (%q). See docs/security.md.",
		m.String(), who, (m | 0o1000).String(), (m &^ 0o020).String())
}

// checkFileMode warns about artifact modes that make no sense for image
// files: setuid/setgid, or group write.
func (l *loader) checkFileMode(a *hcl.Attribute, c *Cache) {
	m := c.FileMode
	switch {
	case m&0o6000 != 0:
		l.warnf(a.Expr.Range().Ptr(), "Setuid or setgid image files",
			"file_mode = %q makes every cached image file setuid or setgid; image files are read, never executed as programs. Use %q.", m.String(), (m &^ 0o6000).String())
	case m&0o020 != 0:
		l.warnf(a.Expr.Range().Ptr(), "Group-writable image files",
			"file_mode = %q lets every member of the file's group change the images that jobs run. Use %q.", m.String(), (m &^ 0o020).String())
	}
}

func (l *loader) userAttr(a *hcl.Attribute, dst *string, what string) {
	var s string
	if !l.stringAttr(a, &s) {
		return
	}
	switch {
	case s == "":
		l.errorf(a.Expr.Range().Ptr(), "Empty "+what+" name", "%s must name a %s or give a numeric id; to keep the %s cachectl runs as, leave %s out.", a.Name, what, what, a.Name)
	case !userNameRE.MatchString(s) || len(s) > 256:
		l.errorf(a.Expr.Range().Ptr(), "Invalid "+what+" name", "%q is not a valid %s name or numeric id.", s, what)
	default:
		*dst = s
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// cachePlan is a cache being decoded, with the ranges needed by later checks.
type cacheInfo struct {
	cache    *Cache
	rootRng  hcl.Range
	rootOK   bool
	nameRngs map[*Artifact]hcl.Range // range of a custom name
}

func (l *loader) decodeCaches(m *Model, blocks []*hcl.Block) {
	seen := map[string]*Cache{}
	for _, b := range blocks {
		content, d := b.Body.Content(cacheSchema)
		l.add(d)
		name := b.Labels[0]
		lr := b.LabelRanges[0]
		if !cacheNameRE.MatchString(name) {
			l.errorf(&lr, "Invalid cache name", "%q is not a valid cache name: use letters, digits, underscores and dashes, starting with a letter or underscore (it appears in addresses like cache.NAME[\"REF\"]).", name)
			continue
		}
		if prev := seen[name]; prev != nil {
			l.errorf(&lr, "Duplicate cache", "A cache named %q was already defined at %s.", name, posString(prev.Range))
			continue
		}
		errsBefore := countErrors(l.diags)
		c := &Cache{Name: name, Range: b.DefRange, Platform: DefaultPlatform, FileMode: DefaultFileMode, DirMode: DefaultDirMode}
		seen[name] = c
		ci := &cacheInfo{cache: c, nameRngs: map[*Artifact]hcl.Range{}}
		l.caches = append(l.caches, ci)
		m.Caches = append(m.Caches, c)
		rtOK := l.decodeCacheSettings(ci, content)
		// The images: flavors first, then the cache's own list, then image blocks.
		entries, listsOK := l.cacheFlavors(m, c, content.Attributes["flavors"])
		blockRefs := map[string]hcl.Range{}
		more, ok := l.imageEntries(c, content, rtOK, blockRefs)
		entries, listsOK = append(entries, more...), listsOK && ok
		for _, b := range l.cacheImages[name] {
			ec, d := b.Body.Content(cacheImagesSchema)
			l.add(d)
			more, ok := l.imageEntries(c, ec, rtOK, blockRefs)
			entries, listsOK = append(entries, more...), listsOK && ok
		}
		if len(entries) == 0 && listsOK && countErrors(l.diags) == errsBefore {
			l.warnf(c.Range.Ptr(), "Cache has no images", "Cache %q names no flavors, images or image blocks, so it stays empty.", c.Name)
		}
		l.buildArtifacts(ci, entries, rtOK)
	}
}

// decodeCacheSettings decodes a cache's attributes other than its image
// lists; it reports whether the runtime is known.
func (l *loader) decodeCacheSettings(ci *cacheInfo, content *hcl.BodyContent) (rtOK bool) {
	c := ci.cache
	if a := content.Attributes["runtime"]; a != nil {
		rtOK = l.runtimeAttr(a, &c.Runtime)
	}
	if a := content.Attributes["root"]; a != nil {
		ci.rootRng = a.Expr.Range()
		ci.rootOK = l.rootAttr(a, &c.Root)
	}
	if a := content.Attributes["platform"]; a != nil {
		if p, ok := l.platformAttr(a); ok {
			c.Platform = p
		}
	}
	if a := content.Attributes["owner"]; a != nil {
		l.userAttr(a, &c.Owner, "user")
	}
	if a := content.Attributes["group"]; a != nil {
		l.userAttr(a, &c.Group, "group")
	}
	if a := content.Attributes["file_mode"]; a != nil {
		l.modeAttr(a, &c.FileMode)
		l.checkFileMode(a, c)
	}
	if a := content.Attributes["dir_mode"]; a != nil {
		l.modeAttr(a, &c.DirMode)
		l.checkDirMode(a, c)
	}
	if a := content.Attributes["prune"]; a != nil {
		l.boolAttr(a, &c.Prune)
	}
	if a := content.Attributes["compression"]; a != nil {
		l.compressionAttr(a, c, rtOK)
	}
	return rtOK
}

// runtimeAttr decodes a cache's runtime; it reports whether it is known.
func (l *loader) runtimeAttr(a *hcl.Attribute, dst *Runtime) bool {
	var s string
	if !l.stringAttr(a, &s) {
		return false
	}
	var names []string
	for _, rt := range Runtimes {
		if Runtime(s) == rt {
			*dst = rt
			return true
		}
		names = append(names, string(rt))
	}
	l.errorf(a.Expr.Range().Ptr(), "Unknown runtime", "Runtime %q is not one of: %s.%s", s, strings.Join(names, ", "), suggest(s, names, ""))
	return false
}

// rootAttr decodes a cache root: absolute, not "/".
func (l *loader) rootAttr(a *hcl.Attribute, dst *string) bool {
	var s string
	if !l.stringAttr(a, &s) {
		return false
	}
	rng := a.Expr.Range()
	switch {
	case !strings.HasPrefix(s, "/"):
		l.errorf(&rng, "Relative cache root", "root = %q: a cache root must be an absolute path (jobs on every node find images by absolute path).", s)
	case path.Clean(s) == "/":
		l.errorf(&rng, "Cache root is the file system root", "root = %q: cachectl owns every file under a cache root; give it a directory of its own, such as \"/shared/containers/sif\".", s)
	default:
		*dst = path.Clean(s)
		return true
	}
	return false
}

// compressionAttr decodes a squashfs compressor (not for podman caches).
func (l *loader) compressionAttr(a *hcl.Attribute, c *Cache, rtOK bool) {
	var s string
	if !l.stringAttr(a, &s) {
		return
	}
	switch {
	case !slices.Contains(Compressions, s):
		l.errorf(a.Expr.Range().Ptr(), "Unknown compression", "Compression %q is not one of: %s.", s, strings.Join(Compressions, ", "))
	case rtOK && c.Runtime == RuntimePodman:
		l.errorf(a.Expr.Range().Ptr(), "Compression does not apply to podman", "Podman caches hold OCI archives, not squashfs images; remove compression from this cache.")
	default:
		c.Compression = s
	}
}

// cacheFlavors returns the images of the flavors a cache names (each
// flavor once); ok is false when the list itself is unusable.
func (l *loader) cacheFlavors(m *Model, c *Cache, a *hcl.Attribute) (entries []imageEntry, ok bool) {
	if a == nil {
		return nil, true
	}
	items, ok := l.stringList(a)
	for _, it := range items {
		fi := l.flavors[it.val]
		if fi == nil {
			l.errorf(&it.rng, "Undefined flavor", "No flavor named %q is defined.%s Defined flavors: %s.", it.val, suggest(it.val, sortedKeys(l.flavors), ""), flavorList(m))
			continue
		}
		if slices.Contains(c.Flavors, it.val) {
			continue
		}
		c.Flavors = append(c.Flavors, it.val)
		for _, img := range fi.items {
			entries = append(entries, imageEntry{ref: img.val, rng: img.rng, flavor: it.val})
		}
	}
	return entries, ok
}

// imageEntry is one mention of an image in a cache (through a flavor, the
// images list or an image block).
type imageEntry struct {
	ref    string
	rng    hcl.Range
	flavor string
	block  *imageOpts // options of an image block, nil otherwise
}

// imageOpts are the options of an image block.
type imageOpts struct {
	hasName  bool
	name     string
	nameRng  hcl.Range
	platform v1.Platform
}

func flavorList(m *Model) string {
	if len(m.Flavors) == 0 {
		return "(none)"
	}
	var names []string
	for _, f := range m.Flavors {
		names = append(names, fmt.Sprintf("%q", f.Name))
	}
	return strings.Join(names, ", ")
}

func countErrors(d hcl.Diagnostics) int {
	n := 0
	for _, x := range d {
		if x.Severity == hcl.DiagError {
			n++
		}
	}
	return n
}

// imageEntries decodes the images attribute and the image blocks of a
// cache body (or of a cache_images block for it). blockRefs holds the
// references given image blocks so far in the cache (each may have one).
// ok is false when a list is unusable (already reported).
func (l *loader) imageEntries(c *Cache, content *hcl.BodyContent, rtOK bool, blockRefs map[string]hcl.Range) (entries []imageEntry, ok bool) {
	ok = true
	if a := content.Attributes["images"]; a != nil {
		items, listOK := l.stringList(a)
		ok = ok && listOK
		for _, it := range items {
			if l.checkRef(it) {
				entries = append(entries, imageEntry{ref: it.val, rng: it.rng})
			}
		}
	}
	for _, ib := range content.Blocks {
		ic, d := ib.Body.Content(imageSchema)
		l.add(d)
		o := &imageOpts{platform: c.Platform}
		e := imageEntry{block: o}
		a := ic.Attributes["ref"]
		if a == nil {
			continue
		}
		e.rng = a.Expr.Range()
		if !l.stringAttr(a, &e.ref) || !l.checkRef(strItem{e.ref, e.rng}) {
			continue
		}
		if prev, dup := blockRefs[e.ref]; dup {
			l.errorf(&e.rng, "Duplicate image block", "An image block for %q was already given at %s; a reference has one set of options per cache.", e.ref, posString(prev))
			continue
		}
		blockRefs[e.ref] = e.rng
		if na := ic.Attributes["name"]; na != nil {
			if l.stringAttr(na, &o.name) {
				o.nameRng = na.Expr.Range()
				if rtOK {
					if err := CheckName(c.Runtime, o.name); err != nil {
						l.errorf(&o.nameRng, "Invalid file name", "name = %q: %s.", o.name, err)
						continue
					}
				}
				o.hasName = true
			}
		}
		if pa := ic.Attributes["platform"]; pa != nil {
			if p, ok := l.platformAttr(pa); ok {
				o.platform = p
			}
		}
		entries = append(entries, e)
	}
	return entries, ok
}
