package spec

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// benchSpec generates a spec of n images in one flavor, used by three
// caches (apptainer, enroot, podman): 3n artifacts.
func benchSpec(n int) []byte {
	var b strings.Builder
	b.WriteString("variable \"registry\" {\n  default = \"registry.example.com:5000\"\n}\n\n")
	b.WriteString("flavor \"all\" {\n  images = [\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    \"${var.registry}/team%d/image%d:1.%d.%d\",\n", i%50, i, i%7, i)
	}
	b.WriteString("  ]\n}\n\n")
	for _, rt := range []string{"apptainer", "enroot", "podman"} {
		fmt.Fprintf(&b, "cache %q {\n  runtime = %q\n  root    = \"/shared/%s\"\n  flavors = [\"all\"]\n  owner   = \"root\"\n  group   = \"hpc\"\n}\n\n", rt, rt, rt)
	}
	return []byte(b.String())
}

// BenchmarkLoad loads and validates a spec of 2,000 images x 3 caches.
//
//	go test ./spec/ -run '^$' -bench BenchmarkLoad -benchmem
func BenchmarkLoad(b *testing.B) {
	src := benchSpec(2000)
	srcs := []Source{{Filename: "bench.hcl", Bytes: src}}
	m, d := LoadSources(srcs, Options{})
	if d.HasErrors() {
		b.Fatal(d.Error())
	}
	n := 0
	for _, c := range m.Caches {
		n += len(c.Artifacts)
	}
	if n != 6000 {
		b.Fatalf("%d artifacts, want 6000", n)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, d := LoadSources(srcs, Options{}); d.HasErrors() {
			b.Fatal(d.Error())
		}
	}
	// CPU time of the process (GC included) per load: less sensitive than
	// wall time to other processes on a shared machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkParseOnly is the HCL parse of the BenchmarkLoad spec alone: the
// floor under BenchmarkLoad.
func BenchmarkParseOnly(b *testing.B) {
	src := benchSpec(2000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, d := hclsyntax.ParseConfig(src, "bench.hcl", hcl.InitialPos); d.HasErrors() {
			b.Fatal(d.Error())
		}
	}
}
