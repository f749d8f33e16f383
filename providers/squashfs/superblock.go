package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Superblock is the part of a squashfs 4.0 superblock that Verify checks.
type Superblock struct {
	Inodes      uint32
	MkfsTime    uint32
	BlockSize   uint32
	Compression uint16
	Major       uint16
	Minor       uint16
	BytesUsed   uint64
}

// Compressor names by superblock compression id.
var compressors = map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}

// CompressionName returns the name of the compressor ("gzip", "lzo", ...).
func (s Superblock) CompressionName() string {
	if n, ok := compressors[s.Compression]; ok {
		return n
	}
	return fmt.Sprintf("unknown(%d)", s.Compression)
}

// ErrNotSquashfs is returned by ReadSuperblock when the magic is missing.
var ErrNotSquashfs = errors.New("not a squashfs image (magic \"hsqs\" missing)")

const superblockSize = 96

// ReadSuperblock reads and checks the superblock at offset off of r: magic
// "hsqs", version 4.0, a power-of-two block size, and bytes_used within
// size-off when size >= 0.
func ReadSuperblock(r io.ReaderAt, off, size int64) (Superblock, error) {
	var b [superblockSize]byte
	if _, err := r.ReadAt(b[:], off); err != nil {
		return Superblock{}, fmt.Errorf("squashfs: read superblock: %w", err)
	}
	if string(b[0:4]) != "hsqs" {
		return Superblock{}, ErrNotSquashfs
	}
	le := binary.LittleEndian
	sb := Superblock{
		Inodes:      le.Uint32(b[4:]),
		MkfsTime:    le.Uint32(b[8:]),
		BlockSize:   le.Uint32(b[12:]),
		Compression: le.Uint16(b[20:]),
		Major:       le.Uint16(b[28:]),
		Minor:       le.Uint16(b[30:]),
		BytesUsed:   le.Uint64(b[40:]),
	}
	if sb.Major != 4 || sb.Minor != 0 {
		return sb, fmt.Errorf("squashfs: unsupported version %d.%d (want 4.0)", sb.Major, sb.Minor)
	}
	if sb.BlockSize < 4096 || sb.BlockSize > 1<<20 || sb.BlockSize&(sb.BlockSize-1) != 0 {
		return sb, fmt.Errorf("squashfs: bad block size %d", sb.BlockSize)
	}
	if size >= 0 && int64(sb.BytesUsed) > size-off {
		return sb, fmt.Errorf("squashfs: truncated: superblock says %d bytes, file has %d", sb.BytesUsed, size-off)
	}
	return sb, nil
}

// VerifyFile checks the superblock of the squashfs image stored at offset
// off of the file at path.
func VerifyFile(path string, off int64) (Superblock, error) {
	f, err := os.Open(path)
	if err != nil {
		return Superblock{}, fmt.Errorf("squashfs: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Superblock{}, fmt.Errorf("squashfs: %w", err)
	}
	return ReadSuperblock(f, off, fi.Size())
}

func statsOf(ps *os.ProcessState) ProcessStats {
	st := ProcessStats{
		UserSeconds:   ps.UserTime().Seconds(),
		SystemSeconds: ps.SystemTime().Seconds(),
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		st.MaxRSSKiB = ru.Maxrss
	}
	return st
}
