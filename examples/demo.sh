#!/usr/bin/env bash
# make demo: cachectl's main job, offline. Starts a registry on loopback with
# generated images, then validates, plans, applies, lists and plans again
# with examples/demo.hcl into ./demo (under the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=bin/cachectl
demo=$PWD/demo
rm -rf "$demo"; mkdir -p "$demo"
go build -o bin/demo-registry ./cmd/demo-registry
bin/demo-registry -addr-file "$demo/registry.addr" >/dev/null &
regpid=$!
trap 'kill $regpid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$demo/registry.addr" ] && break; sleep 0.1; done
addr=$(cat "$demo/registry.addr")
export CACHECTL_STORE=$demo/store
args=(--spec examples/demo.hcl --var "registry=$addr" --var "root=$demo")
step() { printf '\n$ %s\n' "$*"; "$@"; }
echo "A registry with two generated images (demo/base:1.0, demo/app:2.1) is serving on $addr."
step $bin "${args[@]}" validate
set +e
step $bin "${args[@]}" plan --detailed-exitcode; code=$?
set -e
echo "(plan exit code $code: 2 means changes are pending)"
step $bin "${args[@]}" apply --auto-approve --progress lines
step $bin "${args[@]}" list
step $bin "${args[@]}" list --determined
step $bin "${args[@]}" plan --detailed-exitcode
echo
echo "Artifacts:"
find "$demo"/sif "$demo"/enroot "$demo"/podman -type f -not -path '*/.cachectl/*' -printf '  %M %u:%g %9s  %p\n' | sort -k4
