package conformance

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// deviation is a documented difference between cachectl's artifact and the
// runtime's own (docs/conformance.md): differences at matching keys are
// accepted. A deviation that matches no difference in a run that compared
// its keys fails the suite: it is stale and must go, with its line in the
// docs.
type deviation struct {
	shapes  string // glob over shape names
	runtime string // "apptainer", "singularity", "enroot", "podman" or "*"
	keys    string // glob over doc keys
	reason  string
}

func glob(pattern, s string) bool {
	re := "^" + strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, ".*") + "$"
	return regexp.MustCompile(re).MatchString(s)
}

func (d deviation) matches(shape, runtime, key string) bool {
	return glob(d.shapes, shape) && (d.runtime == "*" || d.runtime == runtime) && glob(d.keys, key)
}

// ledger counts the differences each deviation accepted.
type ledger struct {
	mu   sync.Mutex
	devs []deviation
	seen []int
	// compared records which kinds of keys ("build", "tree", "run", ...)
	// were compared for which shape and runtime ("SHAPE RUNTIME KIND").
	compared map[string]bool
}

func newLedger(devs []deviation) *ledger {
	return &ledger{devs: devs, seen: make([]int, len(devs)), compared: map[string]bool{}}
}

func kind(key string) string {
	k, _, _ := strings.Cut(key, "/")
	return k
}

// compare reports every difference between got (cachectl's) and want (the
// runtime's) that no deviation accepts.
func (l *ledger) compare(t *testing.T, shape, runtime, what string, got, want doc) {
	t.Helper()
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var bad []string
	l.mu.Lock()
	for _, k := range sorted {
		l.compared[shape+" "+runtime+" "+kind(k)] = true
		g, gok := got[k]
		w, wok := want[k]
		if g == w && gok == wok {
			continue
		}
		accepted := false
		for i, d := range l.devs {
			if d.matches(shape, runtime, k) {
				l.seen[i]++
				accepted = true
				break
			}
		}
		if !accepted {
			bad = append(bad, fmt.Sprintf("  %s:\n    cachectl: %s\n    %-9s %s", k, show(g, gok), runtime+":", show(w, wok)))
		}
	}
	l.mu.Unlock()
	if len(bad) > 0 {
		if len(bad) > 25 {
			bad = append(bad[:25], fmt.Sprintf("  ... and %d more", len(bad)-25))
		}
		t.Errorf("%s, %s: %s differs from %s in %d places no deviation accepts (docs/conformance.md):\n%s",
			shape, runtime, "cachectl's artifact", what, len(bad), strings.Join(bad, "\n"))
	}
}

func show(s string, ok bool) string {
	if !ok {
		return "(absent)"
	}
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// checkStale fails for deviations that accepted nothing although their
// shape's and runtime's keys were compared.
func (l *ledger) checkStale(t *testing.T) {
	t.Helper()
	for i, d := range l.devs {
		if l.seen[i] > 0 {
			continue
		}
		k := kind(d.keys)
		if strings.Contains(k, "*") {
			k = "build"
		}
		rt := d.runtime
		compared := false
		for key := range l.compared {
			f := strings.SplitN(key, " ", 3)
			if glob(d.shapes, f[0]) && (rt == "*" || f[1] == rt) && glob(k, f[2]) {
				compared = true
			}
		}
		if compared {
			t.Errorf("deviation {%q, %q, %q} accepted no difference: it is stale; remove it here and in docs/conformance.md (%s)",
				d.shapes, d.runtime, d.keys, d.reason)
		}
	}
}
