package conformance

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"testing"
)

// isMeta reports whether p is a file a runtime writes (its content goes
// into the doc): everything under /.singularity.d, and the hosts,
// resolv.conf, rc, rc.local, environment and fstab files wherever they are
// (an image whose /etc is a symlink has them elsewhere).
func isMeta(p string) bool {
	if strings.HasPrefix(p, ".singularity.d/") {
		return true
	}
	switch path.Base(p) {
	case "hosts", "resolv.conf", "rc", "rc.local", "environment", "fstab":
		return true
	}
	return false
}

// treeDoc adds the tree's paths and metadata files to d. Metadata files
// are normalized first; their size and hash are those of the normalized
// content.
func treeDoc(d doc, tree fsTree, norm normalizer) {
	for p, n := range tree {
		if n.typ == tar.TypeReg && isMeta(p) && n.content != nil {
			c := norm.apply(string(n.content))
			d["file/"+fmt.Sprintf("%q", p)] = c
			s := sha256.Sum256([]byte(c))
			m := *n
			m.size, m.sha = int64(len(c)), hex.EncodeToString(s[:])
			tree[p] = &m
		}
	}
	for _, line := range strings.SplitAfter(tree.describe(describeOpts{}), "\n") {
		if line == "" {
			continue
		}
		// `"PATH" rest`: the quoted path ends at the first `" ` outside escapes.
		var p string
		if _, err := fmt.Sscanf(line, "%q", &p); err != nil {
			panic(fmt.Sprintf("describe line %q: %v", line, err))
		}
		q := fmt.Sprintf("%q", p)
		d["tree/"+q] = strings.TrimSuffix(strings.TrimPrefix(line, q+" "), "\n")
	}
}

// sifDoc describes a SIF file.
func sifDoc(t *testing.T, file string, norm normalizer) doc {
	t.Helper()
	launch, objs := readSIF(t, file)
	d := doc{"build": "ok", "sif/launch": launch}
	for i, o := range objs {
		k := fmt.Sprintf("sif/%d", i)
		d[k] = strings.TrimSpace(fmt.Sprintf("%s %q %s", o.dataType, o.name, o.partInfo))
		if o.partInfo == "" {
			d[k+"/data"] = norm.apply(string(o.data))
		}
	}
	treeDoc(d, sifRoot(t, file, objs), norm)
	return d
}

// sqshDoc describes an Enroot .sqsh file.
func sqshDoc(t *testing.T, file string, norm normalizer) doc {
	t.Helper()
	d := doc{"build": "ok"}
	treeDoc(d, readSquashfs(t, file, 0, 0), norm)
	return d
}
