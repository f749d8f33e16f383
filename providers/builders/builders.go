// Package builders maps a runtime name to its artifact builder.
package builders

import (
	"fmt"

	"github.com/cachectl/cachectl/providers"
	"github.com/cachectl/cachectl/providers/apptainer"
	"github.com/cachectl/cachectl/providers/enroot"
	"github.com/cachectl/cachectl/providers/podman"
)

// For returns the builder of a runtime: apptainer and singularity make SIF
// files, enroot .sqsh files, podman OCI archives.
func For(runtime string) (providers.Builder, error) {
	switch runtime {
	case "apptainer", "singularity":
		return apptainer.New(), nil
	case "enroot":
		return enroot.New(), nil
	case "podman":
		return podman.New(), nil
	}
	return nil, fmt.Errorf("no builder for runtime %q", runtime)
}
