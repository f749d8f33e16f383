package registrytest

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// NGCShape describes an image shaped like NVIDIA's NGC images (PyTorch,
// Determined's pytorch-ngc): a base OS layer, many layers of packages
// that hold a great many small files (text like Python sources and
// headers, binary-like like .pyc files and small libraries), a few layers
// of large incompressible shared libraries (CUDA, cuDNN, NCCL, PyTorch),
// small configuration layers and empty ones; later layers overwrite some
// files of earlier ones (the dpkg status, ld.so.cache, upgraded
// packages), delete others (whiteouts of files and directories), replace
// directories (opaque directories: a reinstalled package), and add hard
// links and symlinks. The full shape (NGCFull) has about 250,000 files in
// 40 gzip layers and makes a SIF of about 5 GB.
type NGCShape struct {
	// Files is the number of small regular files over all layers (the
	// large ones, hard links, symlinks, whiteouts and directories come on
	// top).
	Files int `json:"files"`
	// Layers is the number of layers (at least 4).
	Layers int `json:"layers"`
	// BigFiles is the number of large incompressible files, and BigBytes
	// their total size.
	BigFiles int   `json:"big_files"`
	BigBytes int64 `json:"big_bytes"`
	// SmallMean is the mean size of the small files (exponentially
	// distributed, at most 64 times the mean; about 2 % are empty).
	SmallMean int64 `json:"small_mean"`
	// Seed makes another image of the same shape.
	Seed uint64 `json:"seed"`
}

// NGCFull is the shape of the benchmarks' full-size image: 250,000 small
// files (8 KiB on average) and 320 large ones (3.75 GiB) in 40 layers:
// about 6 GiB of content, 4.9 GB of gzip layers, a 5 GB SIF.
func NGCFull() NGCShape {
	return NGCShape{Files: 250_000, Layers: 40, BigFiles: 320, BigBytes: 3840 << 20, SmallMean: 8 << 10, Seed: 1}
}

// Scale returns s with its file count and big bytes multiplied by f (the
// number of layers stays; at least 100 small files and 4 big ones).
func (s NGCShape) Scale(f float64) NGCShape {
	s.Files = max(100, int(float64(s.Files)*f))
	s.BigFiles = max(4, int(float64(s.BigFiles)*f))
	s.BigBytes = max(4<<20, int64(float64(s.BigBytes)*f))
	return s
}

// NGCStats counts what an NGC image holds, over all layers.
type NGCStats struct {
	// Entries per kind, as written in the layers (an overwritten file
	// counts in every layer that writes it).
	Regular, Big, Dirs, Symlinks, HardLinks, Whiteouts, Opaques int
	// Overwrites are regular files written again by a later layer.
	Overwrites int
	// Content is the bytes of regular file content; Uncompressed the
	// layers' tar bytes; Compressed the gzip layers' bytes.
	Content, Uncompressed, Compressed int64
}

// ngcManifest is what NGC keeps next to the layers, to reuse them.
type ngcManifest struct {
	Version int          `json:"version"`
	Shape   NGCShape     `json:"shape"`
	Stats   NGCStats     `json:"stats"`
	Layers  []ngcLayerID `json:"layers"`
}

type ngcLayerID struct {
	File   string `json:"file"`
	Digest string `json:"digest"`
	DiffID string `json:"diff_id"`
	Size   int64  `json:"size"`
}

// ngcVersion changes whenever the generator's output changes.
const ngcVersion = 3

// NGC returns the image of shape s, generating its gzip layers into dir
// (created if missing) or reusing those a previous call with the same
// shape left there. The output is deterministic: the same shape gives
// the same layer digests. The image has Docker schema 2 media types
// (Enroot pulls only those from Debian's docker-registry) and its layers
// are read from the files, so pushing it costs no memory. Layers are
// generated in parallel, one per CPU.
func NGC(dir string, s NGCShape) (v1.Image, NGCStats, error) {
	if s.Layers < 4 || s.Files <= 0 || s.BigFiles <= 0 || s.BigBytes <= 0 {
		return nil, NGCStats{}, fmt.Errorf("ngc: shape %+v: want at least 4 layers, files and big files", s)
	}
	if s.SmallMean <= 0 {
		s.SmallMean = 8 << 10
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, NGCStats{}, err
	}
	mpath := filepath.Join(dir, "ngc.json")
	var m ngcManifest
	if b, err := os.ReadFile(mpath); err == nil && json.Unmarshal(b, &m) == nil && m.Version == ngcVersion && m.Shape == s && ngcLayersPresent(dir, m.Layers) {
		img, err := ngcImage(dir, s, m.Layers)
		return img, m.Stats, err
	}
	plan := planNGC(s)
	ids := make([]ngcLayerID, len(plan.layers))
	stats := make([]NGCStats, len(plan.layers))
	errs := make([]error, len(plan.layers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for i := range plan.layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ids[i], stats[i], errs[i] = writeNGCLayer(dir, i, plan, s)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, NGCStats{}, err
	}
	m = ngcManifest{Version: ngcVersion, Shape: s, Layers: ids, Stats: plan.stats}
	for _, st := range stats {
		m.Stats.Uncompressed += st.Uncompressed
		m.Stats.Compressed += st.Compressed
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(mpath, b, 0o644); err != nil {
		return nil, NGCStats{}, err
	}
	img, err := ngcImage(dir, s, ids)
	return img, m.Stats, err
}

func ngcLayersPresent(dir string, ls []ngcLayerID) bool {
	for _, l := range ls {
		fi, err := os.Stat(filepath.Join(dir, l.File))
		if err != nil || fi.Size() != l.Size {
			return false
		}
	}
	return true
}

// ngcImage assembles the image from the layer files.
func ngcImage(dir string, s NGCShape, ids []ngcLayerID) (v1.Image, error) {
	var layers []v1.Layer
	for _, id := range ids {
		d, err := v1.NewHash(id.Digest)
		if err != nil {
			return nil, err
		}
		diff, err := v1.NewHash(id.DiffID)
		if err != nil {
			return nil, err
		}
		layers = append(layers, &ngcLayer{path: filepath.Join(dir, id.File), digest: d, diffID: diff, size: id.Size})
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	cf.Config = v1.Config{
		Env: []string{
			"PATH=/usr/local/lib/python3.10/dist-packages/torch_tensorrt/bin:/usr/local/mpi/bin:/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"CUDA_VERSION=12.4.0.041", "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility,video",
			"LD_LIBRARY_PATH=/usr/local/cuda/compat/lib:/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
			fmt.Sprintf("NGC_SHAPE=%d-files-%d-layers-seed-%d", s.Files, s.Layers, s.Seed),
		},
		Entrypoint: []string{"/opt/nvidia/nvidia_entrypoint.sh"},
		WorkingDir: "/workspace",
		Labels:     map[string]string{"com.nvidia.build.ref": "generated", "com.nvidia.volumes.needed": "nvidia_driver"},
	}
	return mutate.ConfigFile(img, cf)
}

// ngcLayer is a gzip layer in a file whose digests are known.
type ngcLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
}

func (l *ngcLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *ngcLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *ngcLayer) Size() (int64, error)                { return l.size, nil }
func (l *ngcLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }
func (l *ngcLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
func (l *ngcLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}

// Content kinds of generated files.
const (
	ngcEmpty  = iota
	ngcText   // source-like text (about 3:1 with gzip)
	ngcBinary // structured records with noise (.pyc, small libraries; about 2:1)
	ngcRandom // incompressible
)

// ngcEntry is one member of a generated layer.
type ngcEntry struct {
	name     string
	typ      byte
	mode     int64
	size     int64
	kind     uint8
	seed     uint64
	link     string
	uid, gid int
	xattr    string // a security.capability value, when set
}

type ngcPlan struct {
	layers [][]ngcEntry
	stats  NGCStats
}

// ngcPlanner lays out the members of every layer (names, types, sizes,
// content seeds) before any content is written, so that layers can then
// be written in parallel.
type ngcPlanner struct {
	s   NGCShape
	rng *rand.Rand
	// files are the regular files written so far and dead those deleted
	// since (overwrite and whiteout candidates: the live ones), pkgDirs
	// the package directories (whole-directory whiteouts and opaque
	// reinstalls).
	files   []string
	dead    map[string]bool
	pkgDirs []string
	layer   []ngcEntry
	dirs    map[string]bool // directories written in the current layer
	written map[string]bool // files written or whited out by the current layer
	pkgs    map[string]bool // package directories made so far
	plan    ngcPlan
	seq     uint64
}

var ngcSyllables = strings.Fields(`ab ac ad al am an ar as at ba be bi bo bu ca ce ci co cu da de di do du
el em en er es et fa fe fi fo ga ge gi go ha he hi ho il im in io ir is it ka ke ki ko la le li lo lu ma me mi mo mu
na ne ni no nu ob oc od ol om on op or os ot pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu ul um un ur us
va ve vi vo xa xe ya yo za ze zo`)

func (p *ngcPlanner) word(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(ngcSyllables[p.rng.IntN(len(ngcSyllables))])
	}
	return b.String()
}

func (p *ngcPlanner) nextSeed() uint64 { p.seq++; return p.s.Seed<<40 ^ p.seq }

// dir adds the directory d and its parents to the current layer (once).
func (p *ngcPlanner) dir(d string) {
	if d == "" || d == "." || p.dirs[d] {
		return
	}
	p.dir(path.Dir(d))
	p.dirs[d] = true
	mode := int64(0o755)
	if d == "root" {
		mode = 0o700
	}
	p.layer = append(p.layer, ngcEntry{name: d + "/", typ: tar.TypeDir, mode: mode})
	p.plan.stats.Dirs++
}

// taken reports whether the current layer has a member at name already
// (image builders write each path of a layer once).
func (p *ngcPlanner) taken(name string) bool { return p.written[name] || p.dirs[name] }

// file adds a regular file (its directories first).
func (p *ngcPlanner) file(name string, size int64, kind uint8, mode int64) {
	if p.taken(name) {
		return
	}
	p.dir(path.Dir(name))
	if size == 0 {
		kind = ngcEmpty
	}
	p.layer = append(p.layer, ngcEntry{name: name, typ: tar.TypeReg, mode: mode, size: size, kind: kind, seed: p.nextSeed()})
	p.files = append(p.files, name)
	delete(p.dead, name)
	p.written[name] = true
	p.plan.stats.Regular++
	if kind == ngcRandom {
		p.plan.stats.Big++
	}
	p.plan.stats.Content += size
}

func (p *ngcPlanner) symlink(name, target string) {
	if p.taken(name) {
		return
	}
	p.written[name] = true
	p.dir(path.Dir(name))
	p.layer = append(p.layer, ngcEntry{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target})
	p.plan.stats.Symlinks++
}

func (p *ngcPlanner) hardlink(name, target string) {
	if p.taken(name) {
		return
	}
	p.written[name] = true
	p.dir(path.Dir(name))
	p.layer = append(p.layer, ngcEntry{name: name, typ: tar.TypeLink, mode: 0o644, link: target})
	p.plan.stats.HardLinks++
}

func (p *ngcPlanner) whiteout(victim string) {
	p.dir(path.Dir(victim))
	p.layer = append(p.layer, ngcEntry{name: path.Join(path.Dir(victim), ".wh."+path.Base(victim)), typ: tar.TypeReg, mode: 0o644})
	p.written[victim] = true
	p.kill(victim)
	p.plan.stats.Whiteouts++
}

// kill marks the file or directory p and everything below it deleted.
func (p *ngcPlanner) kill(victim string) {
	p.dead[victim] = true
	for _, f := range p.files {
		if strings.HasPrefix(f, victim+"/") {
			p.dead[f] = true
		}
	}
}

// smallSize draws the size of a small file.
func (p *ngcPlanner) smallSize() int64 {
	if p.rng.IntN(50) == 0 {
		return 0
	}
	return min(int64(p.rng.ExpFloat64()*float64(p.s.SmallMean))+1, 64*p.s.SmallMean)
}

// pkg writes one package of about n small files below root: a tree of
// directories of Python-like sources, byte-compiled files, headers and
// small libraries, with some symlinks and hard links.
func (p *ngcPlanner) pkg(root string, n int) {
	base := path.Join(root, p.word(2+p.rng.IntN(3)))
	for p.pkgs[base] {
		base += "-" + p.word(1)
	}
	p.pkgs[base] = true
	p.pkgDirs = append(p.pkgDirs, base)
	dirs := []string{base}
	for written := 0; written < n; {
		d := dirs[p.rng.IntN(len(dirs))]
		if p.rng.IntN(4) == 0 && strings.Count(d, "/") < 12 {
			sub := path.Join(d, p.word(1+p.rng.IntN(3)))
			dirs = append(dirs, sub)
			d = sub
		}
		for k := 1 + p.rng.IntN(24); k > 0 && written < n; k-- {
			stem := p.word(1+p.rng.IntN(3)) + "_" + p.word(1+p.rng.IntN(2))
			switch r := p.rng.IntN(20); {
			case r < 8:
				p.file(path.Join(d, stem+".py"), p.smallSize(), ngcText, 0o644)
				written++
				if written < n && p.rng.IntN(2) == 0 {
					p.file(path.Join(d, "__pycache__", stem+".cpython-310.pyc"), p.smallSize(), ngcBinary, 0o644)
					written++
				}
			case r < 11:
				p.file(path.Join(d, stem+".h"), p.smallSize(), ngcText, 0o644)
				written++
			case r < 13:
				lib := path.Join(d, "lib"+stem+".so.1.0")
				p.file(lib, p.smallSize()*4, ngcBinary, 0o755)
				p.symlink(path.Join(d, "lib"+stem+".so"), path.Base(lib))
				written++
			case r < 14:
				p.file(path.Join(d, "__init__.py"), 0, ngcEmpty, 0o644)
				written++
			case r < 15:
				f := path.Join(d, stem+".json")
				p.file(f, p.smallSize(), ngcText, 0o644)
				written++
				if p.rng.IntN(3) == 0 {
					p.hardlink(path.Join(d, stem+".orig.json"), f)
				}
			default:
				p.file(path.Join(d, stem+".txt"), p.smallSize(), ngcText, 0o644)
				written++
			}
		}
	}
}

// bigSizes splits total into n sizes (log-normal, at least 64 KiB).
func (p *ngcPlanner) bigSizes(n int, total int64) []int64 {
	w := make([]float64, n)
	sum := 0.0
	for i := range w {
		w[i] = math.Exp(p.rng.NormFloat64() * 1.2)
		sum += w[i]
	}
	out := make([]int64, n)
	for i := range w {
		out[i] = max(64<<10, int64(w[i]/sum*float64(total)))
	}
	return out
}

var ngcLibNames = strings.Fields(`cublas cublasLt cudnn cudnn_ops cudnn_cnn cudnn_adv cufft curand cusolver cusparse
nccl nvrtc nvjpeg npp nvinfer nvinfer_plugin nvonnxparser torch_cuda torch_cpu c10_cuda dnnl magma cutlass
triton nvToolsExt cupti nvJitLink cusparseLt nvblas`)

// planNGC lays out every layer of shape s.
func planNGC(s NGCShape) ngcPlan {
	p := &ngcPlanner{s: s, rng: rand.New(rand.NewPCG(s.Seed, 0x6e6763)), pkgs: map[string]bool{}, dead: map[string]bool{}}
	L := s.Layers
	const (
		kindBase = iota
		kindSmall
		kindBig
		kindTiny
		kindEmpty
	)
	kinds := make([]int, L)
	nbig := max(1, L/6)
	for i := range kinds {
		kinds[i] = kindSmall
		switch {
		case i == 0:
			kinds[i] = kindBase
		case i == L-1:
			kinds[i] = kindTiny
		case i%7 == 6:
			kinds[i] = kindEmpty
		case i%5 == 4:
			kinds[i] = kindTiny
		}
	}
	var bigLayers []int
	for k := 1; k <= nbig; k++ {
		i := k * L / (nbig + 1)
		for kinds[i] != kindSmall && i < L-2 {
			i++
		}
		kinds[i] = kindBig
		bigLayers = append(bigLayers, i)
	}
	nsmall := 0
	for _, k := range kinds {
		if k == kindSmall {
			nsmall++
		}
	}
	baseFiles := max(20, s.Files*3/100)
	bigLayerFiles := s.Files * 4 / 100 / max(1, len(bigLayers))
	smallFiles := (s.Files - baseFiles - bigLayerFiles*len(bigLayers)) / max(1, nsmall)
	bigSizes := p.bigSizes(s.BigFiles, s.BigBytes)
	areas := []string{"usr/lib/python3/dist-packages", "usr/local/lib/python3.10/dist-packages", "usr/share", "usr/include", "opt/hpcx", "usr/lib/x86_64-linux-gnu", "opt/pytorch/pytorch/third_party"}
	for i, kind := range kinds {
		p.layer = nil
		p.dirs = map[string]bool{}
		p.written = map[string]bool{}
		switch kind {
		case kindBase:
			for _, l := range []string{"bin", "lib", "lib64", "sbin"} {
				p.dir("usr/" + l)
				p.symlink(l, "usr/"+l)
			}
			for _, d := range []string{"etc", "root", "tmp", "var/tmp", "home", "dev", "proc", "sys", "run", "opt", "workspace"} {
				p.dir(d)
			}
			p.file("etc/passwd", 900, ngcText, 0o644)
			p.file("etc/group", 500, ngcText, 0o644)
			p.file("etc/hosts", 0, ngcEmpty, 0o644)
			p.file("var/lib/dpkg/status", 64<<10, ngcText, 0o644)
			p.file("etc/ld.so.cache", 32<<10, ngcBinary, 0o644)
			p.file("usr/bin/python3.10", 5<<20, ngcBinary, 0o755)
			p.hardlink("usr/bin/python3", "usr/bin/python3.10")
			p.file("usr/bin/ping", 72<<10, ngcBinary, 0o755)
			p.layer[len(p.layer)-1].xattr = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
			p.file("workspace/.profile", 300, ngcText, 0o644)
			p.layer[len(p.layer)-1].uid, p.layer[len(p.layer)-1].gid = 1000, 1000
			for written := 0; written < baseFiles; {
				k := min(baseFiles-written, 30+p.rng.IntN(150))
				p.pkg([]string{"usr/share/doc", "usr/lib/x86_64-linux-gnu", "usr/share/locale", "etc"}[p.rng.IntN(4)], k)
				written += k
			}
		case kindSmall:
			n := smallFiles/2 + p.rng.IntN(smallFiles+1)
			for written := 0; written < n; {
				k := min(n-written, 20+p.rng.IntN(400))
				p.pkg(areas[p.rng.IntN(len(areas))], k)
				written += k
			}
			p.file("var/lib/dpkg/status", int64(64<<10+i*2<<10), ngcText, 0o644) // apt rewrites it
			p.changeEarlier(n)
		case kindBig:
			root := fmt.Sprintf("usr/local/cuda-12.%d/targets/x86_64-linux/lib", i%10)
			var mine []int64
			for j, sz := range bigSizes {
				if j%len(bigLayers) == indexOf(bigLayers, i) {
					mine = append(mine, sz)
				}
			}
			for j, sz := range mine {
				lib := ngcLibNames[(i+j)%len(ngcLibNames)]
				full := path.Join(root, fmt.Sprintf("lib%s_%d.so.12.%d.%d", lib, j, i%10, j%7))
				p.file(full, sz, ngcRandom, 0o755)
				p.symlink(path.Join(root, fmt.Sprintf("lib%s_%d.so.12", lib, j)), path.Base(full))
				p.symlink(path.Join(root, fmt.Sprintf("lib%s_%d.so", lib, j)), fmt.Sprintf("lib%s_%d.so.12", lib, j))
			}
			p.pkg(fmt.Sprintf("usr/local/cuda-12.%d/targets/x86_64-linux/include", i%10), bigLayerFiles)
			p.file("etc/ld.so.cache", int64(32<<10+i<<10), ngcBinary, 0o644)
		case kindTiny:
			p.file(fmt.Sprintf("etc/ld.so.conf.d/%02d-%s.conf", i, p.word(2)), 40, ngcText, 0o644)
			p.file("opt/nvidia/nvidia_entrypoint.sh", int64(2000+i), ngcText, 0o755)
			if i == L-1 {
				p.file("workspace/README.md", 4000, ngcText, 0o644)
			}
		case kindEmpty:
			// ENV, WORKDIR and the like: a layer with nothing in it.
		}
		p.plan.layers = append(p.plan.layers, p.layer)
	}
	return p.plan
}

func indexOf(xs []int, x int) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// changeEarlier makes the current layer delete a package of an earlier
// layer (a whiteout of its directory), reinstall another (an opaque
// directory with new files), delete and upgrade some earlier files, in
// proportion to its own n files; never two changes of one path in a layer.
func (p *ngcPlanner) changeEarlier(n int) {
	earlier := len(p.files) - n
	if earlier <= 0 || len(p.pkgDirs) < 4 {
		return
	}
	var gone []string // directories this layer deletes or replaces
	below := func(f string) bool {
		for _, d := range gone {
			if f == d || strings.HasPrefix(f, d+"/") || strings.HasPrefix(d, f+"/") {
				return true
			}
		}
		return p.written[f] || p.dead[f]
	}
	if p.rng.IntN(3) == 0 { // a removed package
		d := p.pkgDirs[p.rng.IntN(len(p.pkgDirs)/2)]
		if !below(d) && !p.dirs[d] {
			p.whiteout(d)
			gone = append(gone, d)
		}
	}
	if p.rng.IntN(3) == 0 { // a reinstalled package
		d := p.pkgDirs[p.rng.IntN(len(p.pkgDirs)/2)]
		if !below(d) && !p.dirs[d] {
			gone = append(gone, d)
			p.kill(d)
			delete(p.dead, d)
			p.dir(d)
			p.layer = append(p.layer, ngcEntry{name: d + "/.wh..wh..opq", typ: tar.TypeReg, mode: 0o644})
			p.plan.stats.Opaques++
			for k := 0; k < 20; k++ {
				p.file(path.Join(d, fmt.Sprintf("reinstalled_%d.py", k)), p.smallSize(), ngcText, 0o644)
			}
		}
	}
	for k := n / 200; k > 0; k-- { // removed files
		if f := p.files[p.rng.IntN(earlier)]; !below(f) {
			p.whiteout(f)
		}
	}
	for k := n / 100; k > 0; k-- { // upgraded files
		if f := p.files[p.rng.IntN(earlier)]; !below(f) {
			p.file(f, p.smallSize(), ngcText, 0o644)
			p.plan.stats.Overwrites++
		}
	}
}

// ngcCorpusSize is the size of the per-layer text and binary corpora that
// small files are cut from (at random offsets, so that no two files are
// equal and gzip sees text-like redundancy inside each file only).
const ngcCorpusSize = 4 << 20

var ngcWords = strings.Fields(`def return self import from class if else elif for while in not and or None True False
try except raise with as yield lambda pass break continue torch tensor cuda device dtype shape numpy array config
value error result data input output layer weight bias grad module forward backward optimizer step batch size index
count buffer stream kernel launch block thread memory alloc free const static void int float double char struct
include define ifdef endif namespace template typename std vector string map size_t uint32_t uint64_t`)

func ngcTextCorpus(rng *rand.Rand) []byte {
	b := make([]byte, 0, ngcCorpusSize+256)
	indent := 0
	for len(b) < ngcCorpusSize {
		for i := 0; i < indent; i++ {
			b = append(b, "    "...)
		}
		for w := 2 + rng.IntN(9); w > 0; w-- {
			b = append(b, ngcWords[rng.IntN(len(ngcWords))]...)
			switch rng.IntN(6) {
			case 0:
				b = append(b, '(')
			case 1:
				b = append(b, ", "...)
			case 2:
				b = append(b, '_')
				b = append(b, byte('a'+rng.IntN(26)), byte('0'+rng.IntN(10)))
				b = append(b, ' ')
			default:
				b = append(b, ' ')
			}
		}
		b = append(b, '\n')
		indent = max(0, min(4, indent+rng.IntN(3)-1))
	}
	return b[:ngcCorpusSize]
}

func ngcBinaryCorpus(rng *rand.Rand) []byte {
	b := make([]byte, ngcCorpusSize)
	rec := make([]byte, 64)
	for i := range rec {
		rec[i] = byte(rng.IntN(256))
	}
	for off := 0; off < len(b); off += len(rec) {
		for k := 0; k < 6; k++ {
			rec[rng.IntN(len(rec))] = byte(rng.Uint32())
		}
		copy(b[off:], rec)
	}
	return b
}

// writeNGCLayer writes layer i of the plan as a gzip file in dir.
func writeNGCLayer(dir string, i int, plan ngcPlan, s NGCShape) (id ngcLayerID, st NGCStats, err error) {
	id.File = fmt.Sprintf("layer%02d.tar.gz", i)
	tmp := filepath.Join(dir, id.File+".partial")
	f, err := os.Create(tmp)
	if err != nil {
		return id, st, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	rng := rand.New(rand.NewPCG(s.Seed, uint64(i)+1))
	text, bin := ngcTextCorpus(rng), ngcBinaryCorpus(rng)
	digest, diff := sha256.New(), sha256.New()
	counter := &ngcCounter{}
	fileCount := &ngcCounter{w: io.MultiWriter(f, digest)}
	zw, err := gzip.NewWriterLevel(fileCount, gzip.BestSpeed)
	if err != nil {
		return id, st, err
	}
	counter.w = io.MultiWriter(zw, diff)
	tw := tar.NewWriter(counter)
	mt := time.Date(2024, 1, 1, i, 0, 0, 0, time.UTC)
	buf := make([]byte, 1<<20)
	for _, e := range plan.layers[i] {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Size: e.size, Linkname: e.link, Uid: e.uid, Gid: e.gid, ModTime: mt, Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if e.xattr != "" {
			h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": e.xattr}
		}
		if err := tw.WriteHeader(h); err != nil {
			return id, st, fmt.Errorf("ngc: layer %d: %s: %w", i, e.name, err)
		}
		if e.typ != tar.TypeReg || e.size == 0 {
			continue
		}
		frng := rand.New(rand.NewPCG(e.seed, uint64(i)))
		var cc *rand.ChaCha8
		if e.kind == ngcRandom {
			var key [32]byte
			for k := range key {
				key[k] = byte(frng.Uint32())
			}
			cc = rand.NewChaCha8(key)
		}
		for left := e.size; left > 0; {
			n := min(left, int64(len(buf)))
			chunk := buf[:n]
			switch e.kind {
			case ngcRandom:
				cc.Read(chunk)
			case ngcBinary:
				fillFrom(chunk, bin, frng)
			default:
				fillFrom(chunk, text, frng)
			}
			if _, err := tw.Write(chunk); err != nil {
				return id, st, err
			}
			left -= n
		}
		st.Content += e.size
	}
	if err := tw.Close(); err != nil {
		return id, st, err
	}
	if err := zw.Close(); err != nil {
		return id, st, err
	}
	if err := f.Close(); err != nil {
		return id, st, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, id.File)); err != nil {
		return id, st, err
	}
	st.Uncompressed, st.Compressed = counter.n, fileCount.n
	id.Digest = "sha256:" + hex.EncodeToString(digest.Sum(nil))
	id.DiffID = "sha256:" + hex.EncodeToString(diff.Sum(nil))
	id.Size = fileCount.n
	return id, st, nil
}

// fillFrom fills b with pieces of corpus from random offsets.
func fillFrom(b, corpus []byte, rng *rand.Rand) {
	for len(b) > 0 {
		off := rng.IntN(len(corpus) - 1)
		n := copy(b, corpus[off:min(len(corpus), off+4096+rng.IntN(64<<10))])
		b = b[n:]
	}
}

type ngcCounter struct {
	w io.Writer
	n int64
}

func (c *ngcCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
