package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestUnifiedDiff(t *testing.T) {
	a := "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n"
	b := "a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nK\nl\n"
	var out bytes.Buffer
	writeUnifiedDiff(&out, "x.hcl", []byte(a), []byte(b))
	want := `--- x.hcl
+++ x.hcl (formatted)
@@ -1,5 +1,5 @@
 a
-b
+B
 c
 d
 e
@@ -8,4 +8,5 @@
 h
 i
 j
-k
+K
+l
`
	if out.String() != want {
		t.Errorf("diff:\n%s\nwant:\n%s", out.String(), want)
	}
	// Changes close together share one hunk; identical inputs give no hunk.
	out.Reset()
	writeUnifiedDiff(&out, "y", []byte("1\n2\n3\n"), []byte("1\n2\n3\n"))
	if strings.Contains(out.String(), "@@") {
		t.Errorf("diff of equal inputs: %q", out.String())
	}
	out.Reset()
	writeUnifiedDiff(&out, "z", nil, []byte("new\n"))
	if !strings.Contains(out.String(), "@@ -0,0 +1 @@\n+new\n") {
		t.Errorf("diff from empty: %q", out.String())
	}
}
