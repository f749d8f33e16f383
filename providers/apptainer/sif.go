package apptainer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/apptainer/sif/v2/pkg/sif"
)

// The SIF is assembled in place: mksquashfs writes the partition directly at
// its final offset inside the output file (-offset), and the sif library then
// writes the header, the descriptors and the small data objects around it.
// Apptainer instead builds the squashfs in a temporary file and copies it
// into the SIF; the result has the same layout, without the extra write and
// read of the whole partition.

// launchScript is the SIF header's launch script, as Apptainer writes it.
const launchScript = "#!/usr/bin/env run-singularity\n"

// sifObjects are the data objects before the partition, in order.
type sifObjects struct {
	deffile        []byte
	inspectJSON    []byte
	ociConfigJSON  []byte
	arch           string
	partitionBytes int64
}

func (o *sifObjects) inputs(part io.Reader) ([]sif.DescriptorInput, error) {
	def, err := sif.NewDescriptorInput(sif.DataDeffile, bytes.NewReader(o.deffile))
	if err != nil {
		return nil, err
	}
	// Apptainer adds its JSON objects sorted by name.
	insp, err := sif.NewDescriptorInput(sif.DataGenericJSON, bytes.NewReader(o.inspectJSON), sif.OptObjectName("inspect-metadata.json"))
	if err != nil {
		return nil, err
	}
	cfg, err := sif.NewDescriptorInput(sif.DataGenericJSON, bytes.NewReader(o.ociConfigJSON), sif.OptObjectName("oci-config.json"))
	if err != nil {
		return nil, err
	}
	p, err := sif.NewDescriptorInput(sif.DataPartition, part, sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, o.arch))
	if err != nil {
		return nil, err
	}
	return []sif.DescriptorInput{def, insp, cfg, p}, nil
}

// partitionOffset lays the SIF out in memory with an empty partition and
// returns where the partition starts.
func (o *sifObjects) partitionOffset() (int64, error) {
	dis, err := o.inputs(bytes.NewReader(nil))
	if err != nil {
		return 0, err
	}
	var buf sif.Buffer
	f, err := sif.CreateContainer(&buf, sif.OptCreateWithDescriptors(dis...), sif.OptCreateDeterministic())
	if err != nil {
		return 0, fmt.Errorf("apptainer: lay out SIF: %w", err)
	}
	defer f.UnloadContainer()
	d, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		return 0, fmt.Errorf("apptainer: lay out SIF: %w", err)
	}
	return d.Offset(), nil
}

// writeAround writes the SIF header, descriptors and small objects into
// file, whose bytes [off, off+o.partitionBytes) already hold the partition.
func (o *sifObjects) writeAround(file *os.File, off int64, createOpts ...sif.CreateOpt) error {
	rw := &skipWriter{f: file, skipFrom: off, skipTo: off + o.partitionBytes}
	dis, err := o.inputs(&inPlace{rw: rw, n: o.partitionBytes})
	if err != nil {
		return err
	}
	opts := append([]sif.CreateOpt{
		sif.OptCreateWithDescriptors(dis...),
		sif.OptCreateWithLaunchScript(launchScript),
		sif.OptCreateWithCloseOnUnload(false),
	}, createOpts...)
	f, err := sif.CreateContainer(rw, opts...)
	if err != nil {
		return fmt.Errorf("apptainer: write SIF: %w", err)
	}
	defer f.UnloadContainer()
	d, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		return fmt.Errorf("apptainer: write SIF: %w", err)
	}
	if d.Offset() != off || d.Size() != o.partitionBytes {
		return fmt.Errorf("apptainer: write SIF: partition at %d+%d, want %d+%d", d.Offset(), d.Size(), off, o.partitionBytes)
	}
	return nil
}

// skipWriter is the sif.ReadWriter over the output file; the partition's
// range is never written through it.
type skipWriter struct {
	f                *os.File
	pos              int64
	skipFrom, skipTo int64
}

var errWriteIntoPartition = errors.New("write into the squashfs partition")

func (w *skipWriter) Write(p []byte) (int, error) {
	if w.pos < w.skipTo && w.pos+int64(len(p)) > w.skipFrom {
		return 0, errWriteIntoPartition
	}
	n, err := w.f.WriteAt(p, w.pos)
	w.pos += int64(n)
	return n, err
}

func (w *skipWriter) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		w.pos = offset
	case io.SeekCurrent:
		w.pos += offset
	case io.SeekEnd:
		fi, err := w.f.Stat()
		if err != nil {
			return 0, err
		}
		w.pos = fi.Size() + offset
	}
	return w.pos, nil
}

func (w *skipWriter) ReadAt(p []byte, off int64) (int, error) { return w.f.ReadAt(p, off) }

func (w *skipWriter) Truncate(n int64) error {
	if n < w.skipTo {
		return errWriteIntoPartition
	}
	return w.f.Truncate(n)
}

// inPlace is the partition's data: when the sif library copies it into the
// skipWriter it only moves past the bytes already there.
type inPlace struct {
	rw *skipWriter
	n  int64
}

func (p *inPlace) Read([]byte) (int, error) {
	return 0, errors.New("apptainer: in-place partition read outside of SIF creation")
}

func (p *inPlace) WriteTo(w io.Writer) (int64, error) {
	if w != io.Writer(p.rw) || p.rw.pos != p.rw.skipFrom {
		return 0, fmt.Errorf("apptainer: in-place partition written at %d, expected %d", p.rw.pos, p.rw.skipFrom)
	}
	p.rw.pos += p.n
	return p.n, nil
}
