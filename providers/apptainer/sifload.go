package apptainer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/apptainer/sif/v2/pkg/sif"
	"golang.org/x/sys/unix"
)

// sifHeader mirrors the global header of a SIF file (github.com/apptainer/
// sif/v2 pkg/sif, sif.go "header", format version 01), little endian.
type sifHeader struct {
	LaunchScript [32]byte
	Magic        [10]byte
	Version      [3]byte
	Arch         [3]byte
	ID           [16]byte

	CreatedAt  int64
	ModifiedAt int64

	DescriptorsFree   int64
	DescriptorsTotal  int64
	DescriptorsOffset int64
	DescriptorsSize   int64
	DataOffset        int64
	DataSize          int64
}

// sifDescriptorSize is the encoded size of one SIF descriptor (pkg/sif
// descriptor.go "rawDescriptor": 4+1+4+4+4 bytes, 7 int64s, a 128-byte
// name and 384 bytes of extra data).
const sifDescriptorSize = 585

// maxSIFDescriptors bounds the descriptor table cachectl reads (SIF files
// have 48 slots by default).
const maxSIFDescriptors = 1 << 16

// ErrBadSIF is returned (wrapped) for a file whose SIF header or
// descriptors do not fit the file.
var ErrBadSIF = errors.New("not a well-formed SIF file")

// LoadSIF loads the SIF file f (read-only; f stays open after
// UnloadContainer) after checking its global header and every descriptor
// against the file's size. The sif library trusts the counts and offsets a
// header claims — a crafted header makes it allocate 2^60 descriptors — and
// a SIF handed to import or adopt is input, not instructions.
func LoadSIF(f *os.File) (*sif.FileImage, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrBadSIF)
	}
	size := fi.Size()
	var h sifHeader
	if err := binary.Read(io.NewSectionReader(f, 0, int64(binary.Size(h))), binary.LittleEndian, &h); err != nil {
		return nil, fmt.Errorf("%w: reading the global header: %v", ErrBadSIF, err)
	}
	switch {
	case h.DescriptorsTotal < 0 || h.DescriptorsTotal > maxSIFDescriptors:
		return nil, fmt.Errorf("%w: the header claims %d descriptors", ErrBadSIF, h.DescriptorsTotal)
	case h.DescriptorsOffset < 0 || h.DescriptorsSize < 0 || h.DescriptorsSize < h.DescriptorsTotal*sifDescriptorSize ||
		h.DescriptorsOffset > size || h.DescriptorsTotal*sifDescriptorSize > size-h.DescriptorsOffset:
		return nil, fmt.Errorf("%w: the descriptor table (offset %d, %d descriptors) does not fit the file (%d bytes)", ErrBadSIF, h.DescriptorsOffset, h.DescriptorsTotal, size)
	}
	img, err := sif.LoadContainer(f, sif.OptLoadWithCloseOnUnload(false))
	if err != nil {
		return nil, err
	}
	var bad error
	img.WithDescriptors(func(d sif.Descriptor) bool {
		if d.Offset() < 0 || d.Size() < 0 || d.Offset() > size || d.Size() > size-d.Offset() {
			bad = fmt.Errorf("%w: descriptor %d (%s) claims bytes %d+%d of a %d-byte file", ErrBadSIF, d.ID(), d.Name(), d.Offset(), d.Size(), size)
			return true
		}
		return false
	})
	if bad != nil {
		img.UnloadContainer()
		return nil, bad
	}
	return img, nil
}

// OpenSIF opens the file at path read-only (not blocking on a FIFO, which
// is refused as not regular) and loads it with LoadSIF.
func OpenSIF(path string) (*os.File, *sif.FileImage, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	img, err := LoadSIF(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, img, nil
}
