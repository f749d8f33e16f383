package slurmexec

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/builders"
	"github.com/cachectl/cachectl/spec"
)

// simTask is one artifact in the scaling model.
type simTask struct {
	cpu    float64 // seconds of build on one node (no I/O limit)
	io     float64 // bytes the build moves over the shared file system (blobs read + artifact written)
	verify float64 // seconds the coordinator needs to verify, hash and place it
}

type simRun struct {
	i    int
	left float64 // fraction of the build left
	oh   float64 // overhead seconds left
}

// simulate returns the makespan of building tasks (in order: Slurm starts
// array elements in index order on the next free node) on n nodes, one
// task per node at a time, each task adding overhead seconds (scheduling,
// start-up). The running tasks share the shared file system's bandwidth
// bw (bytes/s; 0 = unlimited) by max-min fairness: a task whose share is
// below its demand (io/cpu bytes per second) slows down in proportion.
// Finished tasks queue for the coordinator (the apply process), which
// verifies, hashes and places up to slots of them at once (its CPU cores:
// each finished task is verified in its own goroutine). A fluid,
// event-driven model.
func simulate(tasks []simTask, n int, bw, overhead float64, slots int) float64 {
	var running []*simRun
	next, now := 0, 0.0
	coord := make([]float64, max(slots, 1)) // when each verify slot is free
	end := 0.0
	for next < len(tasks) || len(running) > 0 {
		for len(running) < n && next < len(tasks) {
			running = append(running, &simRun{i: next, left: 1, oh: overhead})
			next++
		}
		alloc := waterfill(running, tasks, bw)
		rate := make([]float64, len(running))
		dt := math.Inf(1)
		for k, r := range running {
			if r.oh > 0 {
				dt = math.Min(dt, r.oh)
				continue
			}
			t := tasks[r.i]
			rate[k] = 1 / t.cpu
			if bw > 0 && t.io > 0 {
				rate[k] = math.Min(rate[k], alloc[k]/t.io)
			}
			dt = math.Min(dt, r.left/rate[k])
		}
		now += dt
		keep := running[:0]
		for k, r := range running {
			if r.oh > 0 {
				if r.oh -= dt; r.oh < 1e-12 {
					r.oh = 0
				}
				keep = append(keep, r)
				continue
			}
			if r.left -= rate[k] * dt; r.left > 1e-9 {
				keep = append(keep, r)
				continue
			}
			k := 0
			for j := range coord {
				if coord[j] < coord[k] {
					k = j
				}
			}
			coord[k] = math.Max(coord[k], now) + tasks[r.i].verify
			end = math.Max(end, coord[k])
		}
		running = keep
	}
	return end
}

// waterfill shares bw among the running tasks past their overhead by
// max-min fairness on their demands (io/cpu bytes per second); the result
// is indexed like running.
func waterfill(running []*simRun, tasks []simTask, bw float64) []float64 {
	alloc := make([]float64, len(running))
	if bw <= 0 {
		return alloc
	}
	var idx []int
	for k, r := range running {
		if r.oh == 0 {
			idx = append(idx, k)
		}
	}
	demand := func(k int) float64 { t := tasks[running[k].i]; return t.io / t.cpu }
	sort.Slice(idx, func(a, b int) bool { return demand(idx[a]) < demand(idx[b]) })
	left := bw
	for j, k := range idx {
		share := left / float64(len(idx)-j)
		alloc[k] = math.Min(demand(k), share)
		left -= alloc[k]
	}
	return alloc
}

// The model's corner cases: one node is the sum of the builds plus the
// last verify; as many nodes as tasks and no bandwidth limit is the
// longest build; a bandwidth limit binds as the byte count says.
func TestSimulate(t *testing.T) {
	ts := []simTask{{cpu: 10, io: 100, verify: 1}, {cpu: 20, io: 100, verify: 1}, {cpu: 30, io: 300, verify: 1}}
	if got := simulate(ts, 1, 0, 0, 1); math.Abs(got-61) > 1e-6 {
		t.Errorf("1 node: %v, want 61", got)
	}
	if got := simulate(ts, 3, 0, 0, 1); math.Abs(got-31) > 1e-6 {
		t.Errorf("3 nodes: %v, want 31", got)
	}
	// 500 bytes at 10 B/s take at least 50 s whatever the nodes
	if got := simulate(ts, 3, 10, 0, 1); got < 50 || got > 52 {
		t.Errorf("3 nodes, 10 B/s: %v, want 50-52", got)
	}
	// the coordinator: 100 quick tasks with slow verification
	var many []simTask
	for range 100 {
		many = append(many, simTask{cpu: 1, verify: 0.5})
	}
	if got := simulate(many, 100, 0, 0, 1); math.Abs(got-51) > 1e-6 {
		t.Errorf("100 nodes, serial verify: %v, want 51", got)
	}
	if got := simulate(many, 100, 0, 0, 4); math.Abs(got-13.5) > 1e-6 {
		t.Errorf("100 nodes, 4 verify slots: %v, want 13.5", got)
	}
}

// mixedLayer is a gzip layer of files like an image's: half text-like,
// a quarter random, a quarter structured binary (1-64 KiB, some 1 MiB).
func mixedLayer(t testing.TB, size int64, seed int64) v1.Layer {
	rng := rand.New(rand.NewSource(seed))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	words := strings.Fields("the quick brown fox jumps over the lazy dog lorem ipsum dolor sit amet import numpy as np def main return")
	for i, n := 0, int64(0); n < size; i++ {
		sz := int64(1024 + rng.Intn(63*1024))
		if i%20 == 0 {
			sz = 1 << 20
		}
		data := make([]byte, sz)
		switch i % 4 {
		case 0, 1:
			var b strings.Builder
			for int64(b.Len()) < sz {
				b.WriteString(words[rng.Intn(len(words))])
				b.WriteByte(' ')
			}
			copy(data, b.String())
		case 2:
			rng.Read(data)
		case 3:
			for j := range data {
				data[j] = byte(j*i) ^ byte(j>>8)
			}
		}
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/lib/s%d/f%d", seed, i), Mode: 0o644, Size: sz, Typeflag: tar.TypeReg})
		tw.Write(data)
		n += sz
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// measured is one real build of the scaling benchmark.
type measured struct {
	runtime    string
	content    int64 // bytes of file content in the image
	compressed int64 // bytes of the image's blobs
	artifact   int64
	build      float64 // seconds (wall)
	verify     float64 // CPU seconds of the coordinator's format check and hash
	cpu        float64 // CPU seconds of the build (this process and mksquashfs)
}

// cpuSeconds is the user+system CPU time of this process and its waited-for
// children so far.
func cpuSeconds() float64 {
	u, s, _ := usage()
	return u + s
}

// TestScalingBench measures real per-artifact build times and the
// coordinator's verify-and-place cost on this host, then feeds them to the
// N-node model (BENCHMARKS.md, "Conversions on Slurm"). Opt-in:
//
//	CACHECTL_BENCH=1 go test -count=1 -run '^TestScalingBench$' -v -timeout 30m ./planner/slurmexec/
func TestScalingBench(t *testing.T) {
	if os.Getenv("CACHECTL_BENCH") == "" {
		t.Skip("benchmark: set CACHECTL_BENCH=1")
	}
	procs := 2
	var ms []measured
	dir := t.TempDir()
	for _, mib := range []int64{256} {
		var layers []v1.Layer
		for i := range 4 {
			layers = append(layers, mixedLayer(t, mib<<20/4, mib*10+int64(i)))
		}
		img, err := mutate.AppendLayers(empty.Image, layers...)
		if err != nil {
			t.Fatal(err)
		}
		var comp int64
		for _, l := range layers {
			s, _ := l.Size()
			comp += s
		}
		for _, rt := range []string{"apptainer", "enroot", "podman"} {
			b, err := builders.For(rt)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, fmt.Sprintf("%s-%d", rt, mib))
			req := providers.BuildRequest{Ref: "bench:1", NormalizedName: "docker.io/library/bench:1",
				Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Processors: procs, TempDir: dir}
			start, cpu0 := time.Now(), cpuSeconds()
			if err := b.Build(context.Background(), img, req, out); err != nil {
				t.Fatal(err)
			}
			build, cpu := time.Since(start).Seconds(), cpuSeconds()-cpu0
			// what the coordinator does per artifact: the format check,
			// then a hash with fsync (cacheroot's Finish)
			cpu0 = cpuSeconds()
			if err := b.Verify(context.Background(), out); err != nil {
				t.Fatal(err)
			}
			f, _ := os.Open(out)
			h := sha256.New()
			n, _ := io.Copy(h, f)
			f.Sync()
			f.Close()
			verify := cpuSeconds() - cpu0 // CPU: the wall time on this shared machine is noise
			os.Remove(out)
			ms = append(ms, measured{runtime: rt, content: mib << 20, compressed: comp, artifact: n, build: build, verify: verify, cpu: cpu})
			t.Logf("%-9s %4d MiB content, %4d MiB blobs: build %6.2f s wall, %6.2f s CPU (%5.1f ms CPU/MiB), artifact %4d MiB, verify+hash %5.2f s CPU",
				rt, mib, comp>>20, build, cpu, cpu*1000/float64(mib), n>>20, verify)
		}
	}
	// Per-runtime rates: build seconds per MiB of content on one node of
	// this VM's two vCPUs unloaded (its CPU time / 2 × 1.1, the overlap
	// measured for the builders in BENCHMARKS.md; the wall times above are
	// inflated by other processes on this shared machine), artifact bytes
	// and blob bytes per content byte, verify seconds per MiB of artifact.
	type rate struct{ build, artRatio, verify, compRatio float64 }
	rates := map[string]rate{}
	for _, m := range ms {
		c := float64(m.content >> 20)
		rates[m.runtime] = rate{build: m.cpu / 2 * 1.1 / c, artRatio: float64(m.artifact) / float64(m.content),
			verify: m.verify / float64(max(m.artifact>>20, 1)), compRatio: float64(m.compressed) / float64(m.content)}
	}
	// A site's image set: 24 NGC-style images of 10-20 GiB (content),
	// each in apptainer, enroot and podman caches: 72 artifacts.
	rng := rand.New(rand.NewSource(1))
	sizes := make([]float64, 24)
	for i := range sizes {
		sizes[i] = float64(10+rng.Intn(11)) * 1024 // MiB
	}
	model := func(speed float64) (address, largest []simTask, moved float64) {
		for _, rt := range []string{"apptainer", "enroot", "podman"} {
			r := rates[rt]
			for _, s := range sizes {
				art := s * r.artRatio
				tk := simTask{cpu: s * r.build / speed, io: (s*r.compRatio + art) * (1 << 20), verify: art * r.verify}
				address = append(address, tk)
				moved += tk.io
			}
		}
		largest = append([]simTask(nil), address...)
		sort.SliceStable(largest, func(i, j int) bool { return largest[i].cpu > largest[j].cpu })
		return address, largest, moved
	}
	// Per task: sbatch → running on a free node ≈ 1 s on the test cluster,
	// plus half a poll interval (5 s) until the coordinator sees the record.
	overhead := 1 + spec.DefaultPollInterval.Seconds()/2
	for _, node := range []struct {
		name  string
		speed float64
		slots int
	}{
		{"2-vCPU nodes (this VM, unloaded), coordinator with 2 cores", 1, 2},
		{"32-core nodes (16× this VM; mksquashfs -processors 32), coordinator with 2 cores", 16, 2},
		{"32-core nodes, coordinator with 16 cores", 16, 16},
	} {
		address, largest, moved := model(node.speed)
		sim := func(ts []simTask, n int, bw float64) float64 { return simulate(ts, n, bw, overhead, node.slots) }
		t1 := sim(largest, 1, 0)
		var verifySum, longest float64
		for _, tk := range largest {
			verifySum += tk.verify
			longest = max(longest, tk.cpu)
		}
		t.Logf("%s: %d artifacts, %.0f GiB over the shared file system, T(1 node) = %.0f min, longest build %.1f min (bound: %.1f×), coordinator's verify+place %.1f min of CPU (bound: %.1f×)",
			node.name, len(largest), moved/(1<<30), t1/60, longest/60, t1/longest, verifySum/60, t1/(verifySum/float64(node.slots)))
		var b strings.Builder
		fmt.Fprintf(&b, "| nodes | unlimited | 10 GB/s | 5 GB/s | 2 GB/s | 1 GB/s | unlimited, address order |\n|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, n := range []int{1, 2, 4, 8, 16, 24, 32, 48, 64, 72} {
			fmt.Fprintf(&b, "| %d |", n)
			cell := func(s float64) {
				mark := ""
				if s >= 0.8*float64(n) {
					mark = " ✓"
				}
				fmt.Fprintf(&b, " %.1f× (%.2f)%s |", s, s/float64(n), mark)
			}
			for _, bw := range []float64{0, 10e9, 5e9, 2e9, 1e9} {
				cell(t1 / sim(largest, n, bw))
			}
			cell(t1 / sim(address, n, 0))
			b.WriteString("\n")
		}
		t.Logf("speed-up against one node, largest first (efficiency = speed-up / N; ✓ = at least 0.8·N):\n%s", b.String())
	}
}
