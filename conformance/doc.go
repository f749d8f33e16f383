// Package conformance is the differential conformance suite of cachectl's
// artifacts (issue 10): every shape of the corpus (conformance/corpus) is
// pushed to the real docker-registry on loopback, built by `cachectl apply`
// into caches of the four runtimes, and compared with what the runtimes
// themselves make of the same image — Apptainer 1.5.3 (`apptainer build`),
// SingularityCE 4.5.1 (`singularity build`), Enroot 4.1.2 (`enroot import`)
// and Podman (`podman pull`/`podman save`/`podman run`):
//
//   - the root file system, every path with type, mode, owner, size,
//     content hash, link target, hard-link group and extended attributes
//     (read with squashfs-tools-ng's sqfs2tar);
//   - the runtime's metadata byte for byte: SIF descriptors and everything
//     under /.singularity.d; Enroot's /etc/rc, /etc/environment, /etc/fstab
//     and /etc/rc.local; the OCI archive's index, manifest and config;
//   - behaviour: arguments, environment, working directory and ids that a
//     process sees under `apptainer exec`/`run`, `singularity exec`/`run`,
//     `enroot start` and `podman run`.
//
// The runtimes' outputs are committed as goldens under testdata/golden, so
// that `make test` checks cachectl's artifacts against them on a machine
// without the runtimes. With /opt/peers/env.sh present (CI) the suite also
// builds with the runtimes live, checks that the goldens are current, and
// runs both artifacts. `make conformance-goldens` rewrites the goldens.
// docs/conformance.md lists what legitimately differs, and why.
//
// The suite lives at the top level, not under providers/, because it tests
// the product end to end: the real `cachectl apply` (built from cmd/cachectl)
// through the store and all four builders, against the real runtimes.
package conformance
