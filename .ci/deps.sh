#!/usr/bin/env bash
# Installs the programs cachectl's tests, benchmarks and demo use, when they
# are missing and we are root: squashfs-tools (mksquashfs/unsquashfs),
# docker-registry (distribution 2.8), skopeo, umoci, htpasswd (apache2-utils);
# for the tests of the shell completion scripts, the man page and the CI
# pipeline examples: zsh, fish, man (man-db, with groff-base), jq, curl;
# sqfs2tar (squashfs-tools-ng: the conformance suite reads squashfs images
# with owners, xattrs and hard links through it, without privileges); and
# Slurm with munge (slurmctld, slurmd, slurm-client, munge: the Slurm tests
# start their own cluster on loopback and stop it; no system service is
# started here).
set -euo pipefail
need=()
command -v mksquashfs      >/dev/null || need+=(squashfs-tools)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo          >/dev/null || need+=(skopeo)
command -v umoci           >/dev/null || need+=(umoci)
command -v htpasswd        >/dev/null || need+=(apache2-utils)
command -v zsh             >/dev/null || need+=(zsh)
command -v fish            >/dev/null || need+=(fish)
command -v man             >/dev/null || need+=(man-db)
command -v groff           >/dev/null || need+=(groff-base)
command -v jq              >/dev/null || need+=(jq)
command -v curl            >/dev/null || need+=(curl)
command -v sqfs2tar        >/dev/null || need+=(squashfs-tools-ng)
# Slurm is optional: without root or apt the Slurm tests skip with a message.
slurm=()
command -v slurmctld       >/dev/null || slurm+=(slurmctld)
command -v slurmd          >/dev/null || slurm+=(slurmd)
command -v sbatch          >/dev/null || slurm+=(slurm-client)
command -v munged          >/dev/null || slurm+=(munge)
[ ${#need[@]} -eq 0 ] && [ ${#slurm[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  if [ ${#slurm[@]} -gt 0 ]; then
    echo "deps: Slurm is not installed (${slurm[*]}); the Slurm tests will skip (install them as root: apt-get install ${slurm[*]})" >&2
  fi
  [ ${#need[@]} -eq 0 ] && exit 0
  echo "deps: missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
  exit 1
fi
echo "deps: installing ${need[*]} ${slurm[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# RUNLEVEL=1: invoke-rc.d starts no service (munge, slurmctld, slurmd,
# docker-registry) on a machine that would.
RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${need[@]}" "${slurm[@]}" >/dev/null
# Debian's docker-registry package may start a system service on :5000; the
# tests start their own on a free loopback port and do not need it.
