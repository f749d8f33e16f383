package adopt

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/apptainer/sif/v2/pkg/sif"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cachectl/cachectl/providers/apptainer"
	"github.com/cachectl/cachectl/spec"
)

// Formats of artifact files, as spec.Runtime.Format names them.
const (
	FormatSIF        = "sif"
	FormatSquashfs   = "sqsh"
	FormatOCIArchive = "oci-archive"
)

// sniff names the format of a file from its first bytes: a SIF header
// ("SIF_MAGIC" at offset 32, after the launch script), a squashfs
// superblock ("hsqs"), or a POSIX tar header ("ustar" at offset 257, what
// an OCI archive is). "" when none matches.
func sniff(f *os.File) string {
	var b [512]byte
	n, _ := f.ReadAt(b[:], 0)
	switch {
	case n >= 41 && string(b[32:41]) == "SIF_MAGIC":
		return FormatSIF
	case n >= 4 && string(b[:4]) == "hsqs":
		return FormatSquashfs
	case n >= 262 && string(b[257:262]) == "ustar":
		return FormatOCIArchive
	}
	return ""
}

// formatName is a format as people know it, for messages.
func formatName(f string) string {
	switch f {
	case FormatSIF:
		return "an Apptainer/Singularity SIF file"
	case FormatSquashfs:
		return "a squashfs image (Enroot .sqsh)"
	case FormatOCIArchive:
		return "a tar archive (Podman OCI archive)"
	}
	return "not a container image file cachectl knows"
}

// RuntimeOf returns the runtime whose artifacts have the format.
func RuntimeOf(format string) spec.Runtime {
	switch format {
	case FormatSIF:
		return spec.RuntimeApptainer
	case FormatSquashfs:
		return spec.RuntimeEnroot
	case FormatOCIArchive:
		return spec.RuntimePodman
	}
	return ""
}

// sifInfo is what a SIF file tells about itself.
type sifInfo struct {
	definition string
	bootstrap  string // the definition's "bootstrap:" value
	from       string // the definition's "from:" value
	labels     map[string]string
	arch       string
}

// Labels Apptainer 1.5 writes into inspect-metadata.json (SingularityCE
// writes the deffile.* and version labels only).
const (
	labelBaseName   = "org.opencontainers.image.base.name"
	labelBaseDigest = "org.opencontainers.image.base.digest"
	labelApptainer  = "org.label-schema.usage.apptainer.version"
	labelSingCE     = "org.label-schema.usage.singularity.version"
)

// readSIF reads the definition file, the inspect metadata's labels and the
// primary partition's architecture of the SIF at p (a /proc/self/fd path).
func readSIF(p string) (*sifInfo, error) {
	r, f, err := apptainer.OpenSIF(p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	defer f.UnloadContainer()
	info := &sifInfo{}
	if d, err := f.GetDescriptor(sif.WithDataType(sif.DataDeffile)); err == nil && d.Size() <= 1<<20 {
		if b, err := d.GetData(); err == nil {
			info.definition = string(b)
			for _, line := range strings.Split(info.definition, "\n") {
				k, v, ok := strings.Cut(line, ":")
				if !ok {
					continue
				}
				switch strings.ToLower(strings.TrimSpace(k)) {
				case "bootstrap":
					info.bootstrap = strings.TrimSpace(v)
				case "from":
					info.from = strings.TrimSpace(v)
				}
			}
		}
	}
	ds, _ := f.GetDescriptors(sif.WithDataType(sif.DataGenericJSON))
	for _, d := range ds {
		if d.Name() != "inspect-metadata.json" || d.Size() > 8<<20 {
			continue
		}
		b, err := d.GetData()
		if err != nil {
			continue
		}
		var md struct {
			Data struct {
				Attributes struct {
					Labels map[string]string `json:"labels"`
				} `json:"attributes"`
			} `json:"data"`
		}
		if json.Unmarshal(b, &md) == nil {
			info.labels = md.Data.Attributes.Labels
		}
	}
	if d, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys)); err == nil {
		if _, _, arch, err := d.PartitionMetadata(); err == nil {
			info.arch = arch
		}
	}
	return info, nil
}

// ref returns the registry reference the SIF was built from, when it
// says: the org.opencontainers.image.base.name label (Apptainer 1.5), else
// the definition's "from:" of a docker bootstrap.
func (s *sifInfo) ref() string {
	if r := s.labels[labelBaseName]; r != "" {
		return strings.TrimPrefix(r, "docker://")
	}
	switch s.bootstrap {
	case "docker", "docker-daemon":
		return strings.TrimPrefix(s.from, "docker://")
	}
	return ""
}

// tool names the program that built the SIF, from its labels.
func (s *sifInfo) tool() string {
	if v := s.labels[labelApptainer]; v != "" {
		return "apptainer " + v
	}
	if v := s.labels[labelSingCE]; v != "" {
		return "singularity " + v
	}
	return ""
}

// archiveInfo is what an OCI archive's index tells.
type archiveInfo struct {
	images   int    // manifests index.json lists
	refName  string // org.opencontainers.image.ref.name of the first manifest
	manifest string // that manifest's digest
	platform string // os/arch[/variant] of its config
}

// maxSmallBlob bounds the blobs readArchive keeps to parse.
const maxSmallBlob = 1 << 20

// readArchive reads index.json of the OCI archive r and, through the first
// manifest, its config's platform.
func readArchive(r io.Reader) (*archiveInfo, error) {
	tr := tar.NewReader(r)
	small := map[string][]byte{}
	var index []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg || h.Size > maxSmallBlob {
			continue
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if name != "index.json" && !strings.HasPrefix(name, "blobs/sha256/") {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		if name == "index.json" {
			index = b
		} else {
			small["sha256:"+strings.TrimPrefix(name, "blobs/sha256/")] = b
		}
	}
	if index == nil {
		return nil, errors.New("no index.json")
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(index, &idx); err != nil || len(idx.Manifests) == 0 {
		return nil, errors.New("index.json lists no manifest")
	}
	d := idx.Manifests[0]
	info := &archiveInfo{images: len(idx.Manifests), refName: d.Annotations["org.opencontainers.image.ref.name"], manifest: d.Digest.String()}
	if m, err := v1.ParseManifest(bytes.NewReader(small[d.Digest.String()])); err == nil {
		if cf, err := v1.ParseConfigFile(bytes.NewReader(small[m.Config.Digest.String()])); err == nil && cf.OS != "" {
			info.platform = cf.OS + "/" + cf.Architecture
			if cf.Variant != "" {
				info.platform += "/" + cf.Variant
			}
		}
	}
	return info, nil
}

// fdPath names an open file by its descriptor, so that a reader that
// takes a path reads that very file whatever its name becomes.
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()) }

// Description is what an artifact file says about the image it was made
// from.
type Description struct {
	// Format is FormatSIF, FormatSquashfs, FormatOCIArchive or "".
	Format string
	// Ref is the reference the file records (a SIF's base.name label or
	// its definition's "from:", an OCI archive's ref.name; "" when it
	// records none: a .sqsh never does).
	Ref string
	// Images counts the images the file holds (an OCI archive may hold
	// several; 1 otherwise).
	Images int
}

// Describe reads what the open file f says about its image (for import,
// which checks it against the reference it is given).
func Describe(f *os.File) (Description, error) {
	d := Description{Format: sniff(f), Images: 1}
	switch d.Format {
	case FormatSIF:
		info, err := readSIF(fdPath(f))
		if err != nil {
			return d, err
		}
		d.Ref = info.ref()
	case FormatOCIArchive:
		info, err := readArchive(io.NewSectionReader(f, 0, 1<<62))
		if err != nil {
			return d, err
		}
		d.Ref, d.Images = info.refName, info.images
	}
	return d, nil
}

// SameImageAnyHost is SameImage, or the same repository path and tag or
// digest on another host: a file built through a registry's mirror records
// the mirror's host (adopt then keeps the reference the launcher's path or
// the spec gives; import accepts the file for it).
func SameImageAnyHost(a, b string) bool {
	if SameImage(a, b) {
		return true
	}
	ra, err1 := name.ParseReference(a)
	rb, err2 := name.ParseReference(b)
	return err1 == nil && err2 == nil && ra.Context().RepositoryStr() == rb.Context().RepositoryStr() && ra.Identifier() == rb.Identifier()
}
