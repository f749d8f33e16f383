package planner

import (
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cachectl/cachectl/planner/cacheroot"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/spec"
)

func testCache(t *testing.T, prune bool, refs ...string) *spec.Cache {
	t.Helper()
	c := &spec.Cache{Name: "sif", Runtime: spec.RuntimeApptainer, Root: "/nonexistent/sif", Platform: spec.DefaultPlatform,
		FileMode: 0o644, DirMode: 0o755, Prune: prune}
	for _, r := range refs {
		p, err := name.ParseReference(r)
		if err != nil {
			t.Fatal(err)
		}
		n, err := spec.FileName(c.Runtime, r)
		if err != nil {
			t.Fatal(err)
		}
		c.Artifacts = append(c.Artifacts, &spec.Artifact{Cache: c.Name, Ref: r, Parsed: p, Name: n, Path: spec.JoinRoot(c.Root, n), Platform: c.Platform})
	}
	return c
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func entry(ref, digest string) cacheroot.Entry {
	return cacheroot.Entry{Name: ref, Ref: ref, Digest: digest, Manifest: digest, Platform: "linux/amd64", Size: 100, SHA256: "sha256:aa",
		ModTime: t0, Mode: 0o644, Builder: "sif", BuilderVersion: "1"}
}

func okFile() cacheroot.FileState {
	return cacheroot.FileState{Exists: true, Regular: true, Size: 100, ModTime: t0, Mode: 0o644}
}

func TestDiff(t *testing.T) {
	const dA, dB = "sha256:aaaaaaaaaaaaaaaaaaaa", "sha256:bbbbbbbbbbbbbbbbbbbb"
	builder := BuilderInfo{Format: "sif", Version: "1"}
	tests := []struct {
		name      string
		prune     bool
		refs      []string
		entries   []cacheroot.Entry
		files     map[string]cacheroot.FileState
		resolved  map[source.ResolveKey]source.Resolution
		uid       int
		want      map[string]Action     // address → action
		wantCodes map[string]ReasonCode // address → first reason code
	}{
		{name: "missing is created", refs: []string{"alpine:3.20"},
			want: map[string]Action{`cache.sif["alpine:3.20"]`: ActionCreate}, wantCodes: map[string]ReasonCode{`cache.sif["alpine:3.20"]`: ReasonMissing}},
		{name: "in sync is a no-op", refs: []string{"alpine:3.20"}, entries: []cacheroot.Entry{entry("alpine:3.20", dA)},
			files:    map[string]cacheroot.FileState{"alpine:3.20": okFile()},
			resolved: map[source.ResolveKey]source.Resolution{{Ref: "alpine:3.20", Platform: "linux/amd64"}: {Digest: dA, Manifest: dA}},
			want:     map[string]Action{`cache.sif["alpine:3.20"]`: ActionNoop}},
		{name: "tag moved is replaced", refs: []string{"alpine:3.20"}, entries: []cacheroot.Entry{entry("alpine:3.20", dA)},
			files:     map[string]cacheroot.FileState{"alpine:3.20": okFile()},
			resolved:  map[source.ResolveKey]source.Resolution{{Ref: "alpine:3.20", Platform: "linux/amd64"}: {Digest: dB, Manifest: dB}},
			want:      map[string]Action{`cache.sif["alpine:3.20"]`: ActionReplace},
			wantCodes: map[string]ReasonCode{`cache.sif["alpine:3.20"]`: ReasonTagMoved}},
		{name: "file gone is created", refs: []string{"alpine:3.20"}, entries: []cacheroot.Entry{entry("alpine:3.20", dA)},
			want: map[string]Action{`cache.sif["alpine:3.20"]`: ActionCreate}, wantCodes: map[string]ReasonCode{`cache.sif["alpine:3.20"]`: ReasonFileMissing}},
		{name: "size changed is replaced", refs: []string{"alpine:3.20"}, entries: []cacheroot.Entry{entry("alpine:3.20", dA)},
			files: map[string]cacheroot.FileState{"alpine:3.20": {Exists: true, Regular: true, Size: 5, ModTime: t0, Mode: 0o644}},
			want:  map[string]Action{`cache.sif["alpine:3.20"]`: ActionReplace}, wantCodes: map[string]ReasonCode{`cache.sif["alpine:3.20"]`: ReasonFileChanged}},
		{name: "hash mismatch is corrupt", refs: []string{"alpine:3.20"}, entries: []cacheroot.Entry{entry("alpine:3.20", dA)},
			files: map[string]cacheroot.FileState{"alpine:3.20": {Exists: true, Regular: true, Size: 100, ModTime: t0, Mode: 0o644, SHA256: "sha256:bb"}},
			want:  map[string]Action{`cache.sif["alpine:3.20"]`: ActionReplace}, wantCodes: map[string]ReasonCode{`cache.sif["alpine:3.20"]`: ReasonCorrupt}},
		{name: "mode drift is updated", refs: []string{"alpine:3.20"}, entries: []cacheroot.Entry{entry("alpine:3.20", dA)},
			files: map[string]cacheroot.FileState{"alpine:3.20": {Exists: true, Regular: true, Size: 100, ModTime: t0, Mode: 0o600}},
			want:  map[string]Action{`cache.sif["alpine:3.20"]`: ActionUpdate}, wantCodes: map[string]ReasonCode{`cache.sif["alpine:3.20"]`: ReasonModeDrift}},
		{name: "owner drift is updated", refs: []string{"alpine:3.20"}, entries: []cacheroot.Entry{entry("alpine:3.20", dA)}, uid: 65534,
			files: map[string]cacheroot.FileState{"alpine:3.20": okFile()},
			want:  map[string]Action{`cache.sif["alpine:3.20"]`: ActionUpdate}, wantCodes: map[string]ReasonCode{`cache.sif["alpine:3.20"]`: ReasonOwnerDrift}},
		{name: "left the spec with prune is deleted", prune: true, entries: []cacheroot.Entry{entry("old:1", dA)},
			files: map[string]cacheroot.FileState{"old:1": okFile()},
			want:  map[string]Action{`cache.sif["old:1"]`: ActionDelete}, wantCodes: map[string]ReasonCode{`cache.sif["old:1"]`: ReasonLeftSpec}},
		{name: "left the spec without prune is orphaned", entries: []cacheroot.Entry{entry("old:1", dA)},
			files: map[string]cacheroot.FileState{"old:1": okFile()},
			want:  map[string]Action{`cache.sif["old:1"]`: ActionOrphan}},
		{name: "builder change is replaced", refs: []string{"alpine:3.20"},
			entries: []cacheroot.Entry{func() cacheroot.Entry { e := entry("alpine:3.20", dA); e.BuilderVersion = "0"; return e }()},
			files:   map[string]cacheroot.FileState{"alpine:3.20": okFile()},
			want:    map[string]Action{`cache.sif["alpine:3.20"]`: ActionReplace}, wantCodes: map[string]ReasonCode{`cache.sif["alpine:3.20"]`: ReasonBuilderChanged}},
		{name: "imported is not replaced on a moved tag", refs: []string{"alpine:3.20"},
			entries:  []cacheroot.Entry{func() cacheroot.Entry { e := entry("alpine:3.20", ""); e.Imported = true; e.Manifest = ""; return e }()},
			files:    map[string]cacheroot.FileState{"alpine:3.20": okFile()},
			resolved: map[source.ResolveKey]source.Resolution{{Ref: "alpine:3.20", Platform: "linux/amd64"}: {Digest: dB, Manifest: dB}},
			want:     map[string]Action{`cache.sif["alpine:3.20"]`: ActionNoop}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testCache(t, tc.prune, tc.refs...)
			st := &cacheroot.RootState{Root: c.Root, Index: &cacheroot.Index{Version: cacheroot.IndexVersion}, Files: map[string]cacheroot.FileState{}}
			for _, e := range tc.entries {
				st.Index.Put(e)
			}
			for k, v := range tc.files {
				st.Files[k] = v
			}
			uid := -1
			if tc.uid != 0 {
				uid = tc.uid
			}
			changes, errs := Diff(DiffInput{Caches: []CacheInput{{Cache: c, State: st, UID: uid, GID: -1, Builder: builder}}, Resolved: tc.resolved, Refreshed: tc.resolved != nil})
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			if len(changes) != len(tc.want) {
				t.Fatalf("got %d changes, want %d: %+v", len(changes), len(tc.want), changes)
			}
			for _, ch := range changes {
				if ch.Action != tc.want[ch.Address] {
					t.Errorf("%s: action %s, want %s (reasons %v)", ch.Address, ch.Action, tc.want[ch.Address], ch.Reasons)
				}
				if code, ok := tc.wantCodes[ch.Address]; ok && (len(ch.Reasons) == 0 || ch.Reasons[0].Code != code) {
					t.Errorf("%s: reasons %v, want first %s", ch.Address, ch.Reasons, code)
				}
			}
		})
	}
}

func TestDiffTargets(t *testing.T) {
	c := testCache(t, false, "alpine:3.20", "busybox:1")
	st := &cacheroot.RootState{Root: c.Root, Index: &cacheroot.Index{Version: cacheroot.IndexVersion}, Files: map[string]cacheroot.FileState{}}
	changes, _ := Diff(DiffInput{Caches: []CacheInput{{Cache: c, State: st, UID: -1, GID: -1}}, Targets: []string{`cache.sif["busybox:1"]`}})
	if len(changes) != 1 || changes[0].Ref != "busybox:1" {
		t.Fatalf("targets not honoured: %+v", changes)
	}
}

// -target cache.NAME plans the whole cache: every artifact (one that left
// the spec too) and the root's directory changes; another cache is left
// alone, and an artifact address alone plans no directory.
func TestDiffTargetCache(t *testing.T) {
	c := testCache(t, true, "alpine:3.20", "busybox:1")
	other := testCache(t, false, "alpine:3.20")
	other.Name, other.Root = "other", "/nonexistent/other"
	for _, a := range other.Artifacts {
		a.Cache = other.Name
	}
	st := func(root string) *cacheroot.RootState {
		return &cacheroot.RootState{Root: root, Files: map[string]cacheroot.FileState{"gone:1": okFile()},
			Dirs:  map[string]cacheroot.FileState{".": {Exists: true, Dir: true, Mode: 0o700}},
			Index: &cacheroot.Index{Version: cacheroot.IndexVersion, Entries: []cacheroot.Entry{entry("gone:1", "sha256:cc")}, Dirs: []string{"."}}}
	}
	in := DiffInput{Caches: []CacheInput{{Cache: c, State: st(c.Root), UID: -1, GID: -1}, {Cache: other, State: st(other.Root), UID: -1, GID: -1}}}
	addrs := func(targets ...string) map[string]Action {
		in.Targets = targets
		changes, errs := Diff(in)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		out := map[string]Action{}
		for _, ch := range changes {
			out[ch.Address] = ch.Action
		}
		return out
	}
	got := addrs("cache.sif")
	want := map[string]Action{`cache.sif["alpine:3.20"]`: ActionCreate, `cache.sif["busybox:1"]`: ActionCreate,
		`cache.sif["gone:1"]`: ActionDelete, DirAddress("sif", "."): ActionUpdate}
	if len(got) != len(want) {
		t.Errorf("-target cache.sif: %v, want %v", got, want)
	}
	for a, act := range want {
		if got[a] != act {
			t.Errorf("-target cache.sif: %s is %q, want %q (all: %v)", a, got[a], act, got)
		}
	}
	if got := addrs(`cache.sif["busybox:1"]`, "cache.other"); len(got) != 4 || got[`cache.sif["busybox:1"]`] != ActionCreate ||
		got[`cache.other["gone:1"]`] != ActionOrphan || got[DirAddress("other", ".")] != ActionUpdate || got[DirAddress("sif", ".")] != "" {
		t.Errorf("an artifact of sif and the whole of other: %v", got)
	}
	for _, tc := range []struct {
		addr string
		name string
		ok   bool
	}{{"cache.sif", "sif", true}, {"cache.my-cache_2", "my-cache_2", true}, {`cache.sif["a:1"]`, "", false}, {`cache.sif.dir["."]`, "", false}, {"cache.", "", false}, {"sif", "", false}} {
		if name, ok := CacheAddress(tc.addr); name != tc.name || ok != tc.ok {
			t.Errorf("CacheAddress(%q) = %q, %v", tc.addr, name, ok)
		}
	}
}
