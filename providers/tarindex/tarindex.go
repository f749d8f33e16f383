// Package tarindex finds where the members of an uncompressed tar file lie,
// in one pass over its headers, so that members can then be read in place
// by offset (io.NewSectionReader) without extracting anything. The bundle
// reader and the local-source reader (OCI and docker archives) share it;
// what members they accept and how they name them is theirs.
package tarindex

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
)

// Errors Scan wraps: ErrTruncated for a file that ends inside a header or
// inside a member's data (an interrupted copy), ErrInvalid for one whose
// headers are not tar headers.
var (
	ErrTruncated = errors.New("tar file is truncated")
	ErrInvalid   = errors.New("not a valid tar file")
)

// scanError is a structural problem of the file: its text says where, and
// it unwraps to ErrTruncated or ErrInvalid.
type scanError struct {
	kind error
	msg  string
}

func (e *scanError) Error() string { return e.msg }
func (e *scanError) Unwrap() error { return e.kind }

// Scan reads the headers of the tar file r from its start and calls fn for
// each member in file order with its header and the offset of its data in
// the file. Member data is not read: the tar reader seeks over it. A file
// that ends inside a header, or before the end of a member's data, fails
// with an error wrapping ErrTruncated; unreadable headers with one wrapping
// ErrInvalid. An error of fn stops the scan and is returned unchanged.
//
// Scan returns where the data of the last member ends, rounded up to whole
// 512-byte blocks: in a complete tar file the end-of-archive marker (two
// zero blocks) starts there.
func Scan(r io.ReadSeeker, fn func(h *tar.Header, offset int64) error) (end int64, err error) {
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("tar file size: %w", err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("tar file start: %w", err)
	}
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			return end, nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return end, &scanError{ErrTruncated, fmt.Sprintf("the tar headers end early (after %d members)", n)}
		}
		if err != nil {
			return end, &scanError{ErrInvalid, fmt.Sprintf("not a readable tar file (after %d members): %v", n, err)}
		}
		off, err := r.Seek(0, io.SeekCurrent)
		if err != nil {
			return end, fmt.Errorf("tar member %s: %w", h.Name, err)
		}
		if off+h.Size > size {
			return end, &scanError{ErrTruncated, fmt.Sprintf("member %s needs %d bytes at offset %d but the file ends at %d", h.Name, h.Size, off, size)}
		}
		end = off + (h.Size+511)/512*512
		if err := fn(h, off); err != nil {
			return end, err
		}
	}
}
