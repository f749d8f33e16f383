package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestApplyPrefetch: with Prefetch, images that cannot be fetched stop the
// apply before anything changes, all of them named in one error; with
// PrefetchOnly, only the images it accepts are fetched first, and the
// others fail on their own as without Prefetch.
func TestApplyPrefetch(t *testing.T) {
	refs := []string{"a:1", "b:1", "c:1"}
	run := func(t *testing.T, only func(string) bool) (string, error) {
		root := filepath.Join(t.TempDir(), "sif")
		src := newFake(t, refs...)
		src.fail["b:1"], src.fail["c:1"] = true, true
		m := model(t, root, false, refs...)
		p := replan(t, m, src)
		_, err := Run(context.Background(), p, Deps{Resolver: src, Fetcher: src, Builder: textBuilders},
			Options{Spec: m, BuilderInfo: txtInfo, Prefetch: true, PrefetchOnly: only})
		return root, err
	}
	placed := func(root, ref string) bool {
		_, err := os.Lstat(filepath.Join(root, ref))
		return err == nil
	}

	root, err := run(t, nil)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed: the plan names an image that cannot be fetched") ||
		!strings.Contains(err.Error(), `cache.sif["b:1"]: pull b:1: injected failure`) || !strings.Contains(err.Error(), `cache.sif["c:1"]: pull c:1: injected failure`) {
		t.Fatalf("prefetch: %v", err)
	}
	if placed(root, "a:1") {
		t.Error("a:1 placed although the prefetch failed")
	}

	root, err = run(t, func(ref string) bool { return ref == "b:1" })
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") || strings.Contains(err.Error(), "c:1") || placed(root, "a:1") {
		t.Fatalf("prefetch of b:1 only: %v (a:1 placed: %v)", err, placed(root, "a:1"))
	}

	root, err = run(t, func(ref string) bool { return ref == "a:1" })
	if err == nil || strings.Contains(err.Error(), "nothing was changed") || !strings.Contains(err.Error(), `cache.sif["b:1"]`) || !strings.Contains(err.Error(), `cache.sif["c:1"]`) {
		t.Fatalf("prefetch of a:1 only: %v", err)
	}
	if !placed(root, "a:1") {
		t.Error("a:1 not placed: the failures of images not prefetched stopped it")
	}
}
