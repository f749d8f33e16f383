package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/rootfs"
	"github.com/cachectl/cachectl/spec"
)

// streamBuilder writes the tar stream of its shared flattening to out,
// recording the streams it joined; with fail, the second build of a
// shared stream fails before it joins.
type streamBuilder struct {
	textBuilder
	fail    bool
	mu      sync.Mutex
	members map[*rootfs.Member]bool
	shared  int
	alone   int
}

func (b *streamBuilder) Build(ctx context.Context, img v1.Image, req providers.BuildRequest, out string) error {
	b.mu.Lock()
	b.alone++
	b.mu.Unlock()
	return b.BuildShared(ctx, rootfs.NewShared(rootfs.Options{}, 1).Member(), img, req, out)
}

func (b *streamBuilder) BuildTree(ctx context.Context, t *rootfs.Tree, img v1.Image, req providers.BuildRequest, out string) error {
	return errors.New("not used")
}

func (b *streamBuilder) BuildShared(ctx context.Context, m *rootfs.Member, img v1.Image, req providers.BuildRequest, out string) error {
	defer m.Leave(ctx)
	b.mu.Lock()
	b.members[m] = true
	if !strings.HasPrefix(req.Ref, "b:") {
		b.shared++
	}
	second := b.shared == 2
	b.mu.Unlock()
	if b.fail && second {
		return errors.New("injected failure before joining")
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	return m.Write(ctx, img, &rootfs.Consumer{W: f})
}

// TestApplySharesOneStreamPerImage: the SIF-like and .sqsh-like builds
// of one image join one shared stream although only one build runs at a
// time (they share its slot; with a slot each they would wait for each
// other forever); when one of them fails before joining, the other still
// finishes.
func TestApplySharesOneStreamPerImage(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			dir := t.TempDir()
			src := newFake(t, "a:1", "b:1")
			c1 := model(t, filepath.Join(dir, "one"), true, "a:1", "b:1").Caches[0]
			c2 := model(t, filepath.Join(dir, "two"), true, "a:1").Caches[0]
			c2.Name = "two"
			for _, a := range c2.Artifacts {
				a.Cache = "two"
			}
			m := &spec.Model{Caches: []*spec.Cache{c1, c2}}
			p, err := planner.MakePlan(context.Background(), m, src, planner.Options{Refresh: true, Builder: func(spec.Runtime) planner.BuilderInfo { return planner.BuilderInfo{Format: "txt", Version: "1"} }})
			if err != nil {
				t.Fatal(err)
			}
			sb := &streamBuilder{members: map[*rootfs.Member]bool{}, fail: fail}
			_, err = Run(context.Background(), p, Deps{Fetcher: src, Builder: func(spec.Runtime) (providers.Builder, error) { return sb, nil }},
				Options{Spec: m, BuilderInfo: txtInfo, BuildParallelism: 1})
			if !fail && err != nil {
				t.Fatal(err)
			}
			if fail && (err == nil || !strings.Contains(err.Error(), "injected")) {
				t.Fatalf("err = %v, want the injected failure", err)
			}
			// a:1 twice (one stream, two members), b:1 alone.
			if len(sb.members) != 3 || sb.alone != 1 {
				t.Fatalf("%d members, %d builds alone", len(sb.members), sb.alone)
			}
			placed := 0
			for _, root := range []string{"one", "two"} {
				if _, err := os.Stat(filepath.Join(dir, root, "a:1")); err == nil {
					placed++
				}
			}
			if want := map[bool]int{false: 2, true: 1}[fail]; placed != want {
				t.Errorf("a:1 placed %d times, want %d", placed, want)
			}
		})
	}
}
