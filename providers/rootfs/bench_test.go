package rootfs

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fileLayer is a gzip-compressed layer in a file, as the blob store keeps them.
type fileLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}

// benchSize is the uncompressed size of the generated image:
// CACHECTL_BENCH_SIZE (bytes, or with a MiB/GiB suffix), default 256 MiB.
func benchSize(b *testing.B) int64 {
	s := os.Getenv("CACHECTL_BENCH_SIZE")
	if s == "" {
		return 256 << 20
	}
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "GiB"):
		mult, s = 1<<30, strings.TrimSuffix(s, "GiB")
	case strings.HasSuffix(s, "MiB"):
		mult, s = 1<<20, strings.TrimSuffix(s, "MiB")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		b.Fatalf("CACHECTL_BENCH_SIZE=%q: %v", os.Getenv("CACHECTL_BENCH_SIZE"), err)
	}
	return n * mult
}

// genImage writes an 8-layer image of about total bytes of file content:
// a distribution-like mix of many small and a few large files, half
// compressible text, with later layers overwriting and whiting out files
// of earlier ones and adding hard links.
func genImage(b *testing.B, dir string, total int64) (v1.Image, int64) {
	const nlayers = 8
	rng := rand.New(rand.NewPCG(1, 2))
	text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog 0123456789\n", 64))
	var layers []v1.Layer
	var uncompressed int64
	buf := make([]byte, 16<<20)
	for li := 0; li < nlayers; li++ {
		path := filepath.Join(dir, fmt.Sprintf("layer%d.tar.gz", li))
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		dig := sha256.New()
		zw, _ := gzip.NewWriterLevel(io.MultiWriter(f, dig), gzip.BestSpeed)
		diff := sha256.New()
		cw := &countWriter{}
		tw := tar.NewWriter(io.MultiWriter(zw, diff, cw))
		budget := total / nlayers
		d := 0
		for n := 0; budget > 0; n++ {
			if n%200 == 0 {
				d++
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: fmt.Sprintf("usr/lib/l%d/d%d/", li, d), Mode: 0o755, ModTime: time.Unix(1e9, 0)}); err != nil {
					b.Fatal(err)
				}
			}
			size := int64(rng.ExpFloat64() * (24 << 10))
			if rng.IntN(200) == 0 {
				size = int64(rng.IntN(16 << 20))
			}
			size = min(size, budget, int64(len(buf)))
			for i := int64(0); i < size; {
				if rng.IntN(2) == 0 {
					i += int64(copy(buf[i:size], text))
				} else {
					for j := i; j < min(i+4096, size); j += 8 {
						v := rng.Uint64()
						for k := j; k < min(j+8, size); k++ {
							buf[k] = byte(v)
							v >>= 8
						}
					}
					i = min(i+4096, size)
				}
			}
			name := fmt.Sprintf("usr/lib/l%d/d%d/f%d", li, d, n)
			if li > 0 && n%10 == 0 {
				// Overwrite a file of the previous layer.
				name = fmt.Sprintf("usr/lib/l%d/d%d/f%d", li-1, 1+n/200, n)
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: time.Unix(1e9, 0)}); err != nil {
				b.Fatal(err)
			}
			if _, err := tw.Write(buf[:size]); err != nil {
				b.Fatal(err)
			}
			if n%50 == 1 {
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: name + ".link", Linkname: name, ModTime: time.Unix(1e9, 0)}); err != nil {
					b.Fatal(err)
				}
			}
			if li > 0 && n%97 == 0 {
				wo := fmt.Sprintf("usr/lib/l%d/d%d/.wh.f%d", li-1, 1+n/200, n+1)
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: wo, ModTime: time.Unix(1e9, 0)}); err != nil {
					b.Fatal(err)
				}
			}
			budget -= size
		}
		if err := tw.Close(); err != nil {
			b.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			b.Fatal(err)
		}
		st, _ := f.Stat()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		uncompressed += cw.n
		layers = append(layers, &fileLayer{
			path:   path,
			size:   st.Size(),
			digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", dig.Sum(nil))},
			diffID: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", diff.Sum(nil))},
		})
	}
	return imageOf(b, layers...), uncompressed
}

// cpuTime is the user+system CPU time of the process so far; on a shared
// machine it is steadier than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// peakRSS returns the process's peak resident set size in bytes (VmHWM).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// BenchmarkFlattenWriteTar flattens a generated 8-layer image (256 MiB of
// layer tar by default; CACHECTL_BENCH_SIZE=1GiB for 1 GiB) and writes the
// tar stream to io.Discard. MB/s counts the layers' uncompressed bytes;
// peak-RSS-MiB is the process's peak RSS during the measured loop (reset
// through /proc/self/clear_refs after generating the image).
func BenchmarkFlattenWriteTar(b *testing.B) {
	img, size := genImage(b, b.TempDir(), benchSize(b))
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	b.SetBytes(size)
	b.ResetTimer()
	var flattenTime time.Duration
	var files, dirs int
	cpu0 := cpuTime()
	for b.Loop() {
		start := time.Now()
		tree, err := Flatten(context.Background(), img, Options{})
		if err != nil {
			b.Fatal(err)
		}
		flattenTime += time.Since(start)
		files, dirs, _ = tree.Stats()
		if err := tree.WriteTar(context.Background(), io.Discard, TarOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(files), "files")
	b.ReportMetric(float64(dirs), "dirs")
	b.ReportMetric(flattenTime.Seconds()/float64(b.N), "flatten-s/op")
}

// BenchmarkFlattenManyFiles flattens one layer of N small files in N/100
// directories (a package-heavy image) and reports the live heap the Tree
// keeps per path and the peak RSS of Flatten + WriteTar (flatten/) and of
// Stream (stream/), for N = 100,000, 250,000 and 500,000.
func BenchmarkFlattenManyFiles(b *testing.B) {
	for _, nfiles := range []int{100_000, 250_000, 500_000} {
		path := filepath.Join(b.TempDir(), "many.tar.gz")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
		tw := tar.NewWriter(zw)
		body := []byte("#!/bin/sh\necho hello\n")
		for i := 0; i < nfiles; i++ {
			name := fmt.Sprintf("usr/share/pkg%04d/some/longer/path/file-%06d.txt", i%(nfiles/100), i)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(body)), Mode: 0o644, ModTime: time.Unix(1e9, 0)}); err != nil {
				b.Fatal(err)
			}
			if _, err := tw.Write(body); err != nil {
				b.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			b.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		img := imageOf(b, &fileLayer{path: path, digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}})
		b.Run(fmt.Sprintf("flatten/paths=%d", nfiles), func(b *testing.B) {
			runtime.GC()
			_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
			var perPath float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				tree, err := Flatten(context.Background(), img, Options{})
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				files, dirs, _ := tree.Stats()
				perPath = float64(after.HeapAlloc-before.HeapAlloc) / float64(files+dirs)
				if err := tree.WriteTar(context.Background(), io.Discard, TarOptions{}); err != nil {
					b.Fatal(err)
				}
				runtime.KeepAlive(tree)
			}
			b.ReportMetric(perPath, "heap-B/path")
			b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
		})
		b.Run(fmt.Sprintf("stream/paths=%d", nfiles), func(b *testing.B) {
			runtime.GC()
			_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
			for b.Loop() {
				c := &Consumer{W: io.Discard}
				if _, err := Stream(context.Background(), img, Options{}, c); err != nil || c.Err() != nil {
					b.Fatal(err, c.Err())
				}
			}
			b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
		})
	}
}
