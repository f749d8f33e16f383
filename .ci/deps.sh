#!/usr/bin/env bash
# Installs the programs cachectl's tests, benchmarks and demo use, when they
# are missing and we are root: squashfs-tools (mksquashfs/unsquashfs),
# docker-registry (distribution 2.8), skopeo, umoci, htpasswd (apache2-utils),
# and for the tests of the shell completion scripts, the man page and the CI
# pipeline examples: zsh, fish, man (man-db, with groff-base), jq, curl;
# sqfs2tar (squashfs-tools-ng: the conformance suite reads squashfs images
# with owners, xattrs and hard links through it, without privileges).
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
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
  exit 1
fi
echo "deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's docker-registry package may start a system service on :5000; the
# tests start their own on a free loopback port and do not need it.
