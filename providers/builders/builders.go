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
// files (what Apptainer 1.5.3 and SingularityCE 4.5.1 build), enroot .sqsh
// files, podman OCI archives.
func For(runtime string) (providers.Builder, error) {
	switch runtime {
	case "apptainer", "singularity":
		rt, err := apptainer.RuntimeNamed(runtime)
		if err != nil {
			return nil, err
		}
		return apptainer.New(rt), nil
	case "enroot":
		return enroot.New(), nil
	case "podman":
		return podman.New(), nil
	}
	return nil, fmt.Errorf("no builder for runtime %q", runtime)
}
