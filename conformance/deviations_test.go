package conformance

// deviations are the documented differences between cachectl's artifacts
// and the runtimes' own; docs/conformance.md gives each with its reason.
// Keys are globs over doc keys (see doc); "*" is any text.
var deviations = []deviation{
	// The runtime cannot build the image; cachectl builds it, following
	// the OCI image semantics.
	{"etc-symlink-abs", "apptainer", "*", "Apptainer 1.5.3 resolves /etc -> /ABS on the host, outside its build root: it fails here (the target is missing on the host) and writes the host's files where it exists; cachectl resolves the link inside the image"},
	{"etc-symlink-escape", "apptainer", "*", "Apptainer 1.5.3 resolves /etc -> ../../X relative to its build directory, outside the root: it fails (or writes outside the image); cachectl resolves the link inside the image"},
	{"etc-symlink-abs", "singularity", "*", "SingularityCE 4.5.1 refuses links that leave its root (\"path escapes from parent\"); cachectl resolves them inside the image"},
	{"etc-symlink-escape", "singularity", "*", "SingularityCE 4.5.1 refuses links that leave its root (\"path escapes from parent\"); cachectl resolves them inside the image"},
	{"dangling-meta-links", "apptainer", "*", "Apptainer 1.5.3 fails on a dangling /environment symlink (os.Stat follows it, then os.Symlink finds the path taken); cachectl keeps the image's link"},
	{"dangling-meta-links", "singularity", "*", "SingularityCE 4.5.1 fails to create /etc/resolv.conf through a dangling symlink; cachectl replaces the link with the empty file"},
	{"rootfs-mixed", "enroot", "*", "Enroot 4.1.2 extracts each layer into its own directory, so a hard link to a lower layer's file fails the import; cachectl links as the OCI layer format says"},
	{"rootfs-links", "enroot", "*", "Enroot 4.1.2 cannot import hard links to a lower layer's file (see rootfs-mixed)"},
	{"hardlinks-across-layers", "enroot", "*", "Enroot 4.1.2 cannot import hard links to a lower layer's file (see rootfs-mixed)"},
	{"whiteout-readd", "enroot", "*", "enroot-aufs2ovlfs 4.1.2 fails on a whiteout and an entry for the same path (a file or a directory) in one layer; OCI: the whiteout applies to lower layers, the entry stays"},

	// Enroot builds an image other than the OCI layers say.
	{"replace-kinds", "enroot", `tree/"lib*`, "Enroot 4.1.2 extracts each layer apart and merges them as overlayfs would: lib/libnew.so over a lower lib -> usr/lib replaces the link with a directory holding only libnew.so; umoci (Apptainer, SingularityCE), containerd, Docker and podman follow the link, as cachectl does"},
	{"replace-kinds", "enroot", `tree/"usr/lib/libnew.so"`, "see the same deviation for lib"},
	{"oci-layers", "enroot", `tree/"z/*`, "Enroot 4.1.2 takes every layer's compression from the first layer's media type: a tar+zstd layer above a gzip one passes `gzip -d -f` unchanged and is dropped without an error; cachectl applies it"},

	// The runtimes disagree; cachectl follows the OCI layer semantics.
	{"whiteouts", "apptainer", `tree/"o/sub"`, "a layer holds only o/sub/.wh..wh..opq while o/sub is gone: Apptainer 1.5.3 and SingularityCE 4.5.1 leave o/sub out, Enroot 4.1.2 (and tar-based unpackers) create it as the member's parent; cachectl creates it for every runtime"},
	{"whiteouts", "singularity", `tree/"o/sub"`, "see the same deviation for apptainer"},

	// podman's own OCI archive drops what OCI image configs do not have.
	{"config-extras", "podman", "run/*", "podman load reads an OCI archive's config as an OCI config, which has no Healthcheck: podman save --format oci-archive writes none, cachectl's archive keeps the image's config bytes but podman ignores it there; the image podman pulls keeps its Docker config, and podman run starts health check timers (failing here without systemd)"},

	// Enroot writes image text as shell code: cachectl writes it as data.
	{"workdir-odd", "enroot", `file/"etc/rc"`, "Enroot 4.1.2 pastes WORKDIR between double quotes in /etc/rc, so $(...) and `...` in it run at every start; cachectl single-quotes it"},
	{"workdir-odd", "enroot", `tree/"etc/rc"`, "the same /etc/rc (its size and hash)"},
	{"workdir-odd", "enroot", "run/*", "Enroot's artifact runs the WORKDIR's command substitutions and fails to cd; cachectl's starts in the literal WORKDIR"},
}
