package apptainer

import (
	"context"
	"fmt"

	"github.com/apptainer/sif/v2/pkg/sif"

	"github.com/cachectl/cachectl/providers/squashfs"
)

// Verify checks that path is a SIF file with a primary system partition
// holding a squashfs 4.0 image whose superblock fits in the partition.
func (*Builder) Verify(ctx context.Context, path string) error {
	r, f, err := OpenSIF(path)
	if err != nil {
		return fmt.Errorf("apptainer: %s: not a SIF file: %w", path, err)
	}
	defer r.Close()
	defer f.UnloadContainer()
	d, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		return fmt.Errorf("apptainer: %s: no primary system partition: %w", path, err)
	}
	fs, _, _, err := d.PartitionMetadata()
	if err != nil {
		return fmt.Errorf("apptainer: %s: %w", path, err)
	}
	if fs != sif.FsSquash {
		return fmt.Errorf("apptainer: %s: primary partition is %v, not squashfs", path, fs)
	}
	if _, err := squashfs.ReadSuperblock(r, d.Offset(), d.Offset()+d.Size()); err != nil {
		return fmt.Errorf("apptainer: %s: partition: %w", path, err)
	}
	return ctx.Err()
}
