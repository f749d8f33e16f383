package planner

import (
	"context"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/source"
	"github.com/cachectl/cachectl/spec"
)

// assumedRatio bounds how far a layer whose unpacked size cannot be read
// (zstd, a registry without Range support) is taken to unpack: 4 times
// its compressed size. Only then is the plan's write estimate not a strict
// upper bound.
const assumedRatio = 4

// Fixed metadata of the formats, from the files cachectl writes
// (providers/apptainer, providers/enroot, providers/podman):
const (
	// squashfsOverhead covers the superblock, the inode, directory,
	// fragment, id and xattr tables beyond what the tar headers of the
	// same entries take, and the files the builders add to the root file
	// system (/.singularity.d, /etc/rc…). Metadata per entry in squashfs
	// (inode, directory entry) is smaller than the 512-byte tar header it
	// comes from, and data blocks are stored uncompressed when compression
	// does not help (mksquashfs 4.5), so a squashfs image of a tar stream
	// of T bytes stays below T + T/1024 (block lists) + this.
	squashfsOverhead = 128 << 10
	// sifOverhead covers the SIF header and descriptor table (sif v2: 48
	// descriptors), the definition file, and the alignment of the
	// partition; the inspect metadata and OCI config objects are bounded by
	// twice the image config on top.
	sifOverhead = 64 << 10
	// ociArchiveOverhead covers oci-layout, index.json, the manifest and
	// the directory entries of the OCI archive.
	ociArchiveOverhead = 16 << 10
	// blockSize rounds a bound up to whole file-system blocks.
	blockSize = 4096
)

// WriteBound returns an upper bound of the size of the artifact file of
// format ("sif", "sqsh", "oci-archive") built from an image with config and
// layers, where unpacked[i] is how many bytes layer i unpacks to (-1 when
// unknown: assumedRatio times its compressed size is taken). SIF and .sqsh
// hold a squashfs image of the flattened layers (bounded by their summed
// tar streams plus metadata, see squashfsOverhead); an OCI archive is a tar
// of the blobs as they are.
func WriteBound(format string, config v1.Descriptor, layers []v1.Descriptor, unpacked []int64) int64 {
	var n int64
	switch format {
	case "oci-archive":
		n = ociArchiveOverhead + tarMember(config.Size)
		for _, l := range layers {
			n += tarMember(l.Size)
		}
	default: // squashfs formats
		var t int64
		for i, l := range layers {
			u := int64(-1)
			if i < len(unpacked) {
				u = unpacked[i]
			}
			if u < 0 {
				u = l.Size * assumedRatio
			}
			t += u
		}
		n = t + t/1024 + squashfsOverhead
		if format == "sif" {
			n += sifOverhead + 2*config.Size
		}
	}
	return (n + blockSize - 1) / blockSize * blockSize
}

// tarMember is the size of a tar member of n bytes: header and padding.
func tarMember(n int64) int64 { return 512 + (n+511)/512*512 }

// boundWrites replaces the write estimate of every create and replace in
// changes with WriteBound of its image, reading the layers' unpacked sizes
// through sizer (when the resolver is one), each distinct layer once and
// several at a time.
func boundWrites(ctx context.Context, changes []Change, resolved map[source.ResolveKey]source.Resolution, sizer source.UnpackedSizer, builder func(spec.Runtime) BuilderInfo) {
	type key struct{ ref, digest string }
	var (
		mu   sync.Mutex
		seen = map[string]int64{}
		g    errgroup.Group
	)
	g.SetLimit(8)
	todo := map[key]v1.Descriptor{}
	for _, ch := range changes {
		if ch.Action != ActionCreate && ch.Action != ActionReplace {
			continue
		}
		for _, l := range resolved[source.ResolveKey{Ref: ch.Ref, Platform: ch.Platform}].Layers {
			k := key{ch.Ref, l.Digest.String()}
			if _, ok := todo[k]; !ok {
				todo[k] = l
			}
		}
	}
	for k, l := range todo {
		mu.Lock()
		_, done := seen[k.digest]
		if !done {
			seen[k.digest] = -1
		}
		mu.Unlock()
		if done {
			continue
		}
		g.Go(func() error {
			u, ok := int64(0), false
			if image.LayerCompression(l.MediaType) == image.CompressionNone {
				u, ok = l.Size, true
			} else if sizer != nil {
				u, ok = sizer.UnpackedSize(ctx, k.ref, l)
			}
			if ok {
				mu.Lock()
				seen[k.digest] = u
				mu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
	for i := range changes {
		ch := &changes[i]
		res, ok := resolved[source.ResolveKey{Ref: ch.Ref, Platform: ch.Platform}]
		if (ch.Action != ActionCreate && ch.Action != ActionReplace) || !ok || len(res.Layers) == 0 {
			continue
		}
		format := formatOf(spec.Runtime(ch.Runtime), builder)
		unpacked := make([]int64, len(res.Layers))
		for j, l := range res.Layers {
			unpacked[j] = seen[l.Digest.String()]
		}
		ch.WriteBytes = WriteBound(format, res.Config, res.Layers, unpacked)
	}
}

// formatOf is the artifact format of a runtime.
func formatOf(rt spec.Runtime, builder func(spec.Runtime) BuilderInfo) string {
	if builder != nil {
		if f := builder(rt).Format; f != "" {
			return f
		}
	}
	switch rt {
	case spec.RuntimeEnroot:
		return "sqsh"
	case spec.RuntimePodman:
		return "oci-archive"
	}
	return "sif"
}
