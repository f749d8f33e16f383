package views

import (
	"strings"
	"testing"

	"github.com/cachectl/cachectl/planner"
)

func TestRenderTextSummary(t *testing.T) {
	p := &planner.Plan{FormatVersion: planner.FormatVersion, Changes: []planner.Change{
		{Address: `cache.sif["a:1"]`, Action: planner.ActionCreate, Path: "/x/a:1", Reasons: []planner.Reason{{Code: planner.ReasonMissing, Message: "not in the cache"}}},
		{Address: `cache.sif["b:1"]`, Action: planner.ActionReplace, Path: "/x/b:1", Reasons: []planner.Reason{{Code: planner.ReasonTagMoved, Message: "tag moved"}}},
		{Address: `cache.sif["c:1"]`, Action: planner.ActionUpdate, Path: "/x/c:1"},
		{Address: `cache.sif["d:1"]`, Action: planner.ActionDelete, Path: "/x/d:1"},
	}}
	p.Summarize()
	var b strings.Builder
	if err := RenderText(&b, p, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"  + cache.sif[\"a:1\"]", "-/+ cache.sif[\"b:1\"]", "  ~ cache.sif[\"c:1\"]", "  - cache.sif[\"d:1\"]", "#   tag moved", "Plan: 2 to add, 1 to change, 2 to destroy."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	empty := &planner.Plan{}
	b.Reset()
	RenderText(&b, empty, RenderOptions{})
	if !strings.Contains(b.String(), "No changes. The cache matches the spec.") {
		t.Errorf("empty plan: %q", b.String())
	}
}
