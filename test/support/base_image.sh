#!/usr/bin/env bash
# Builds the local stand-in for python:3.11-slim that the Docker tests pass as BASE_IMAGE.
# No image registry is reachable from the test machines, so the base is made with debootstrap
# from Debian's own mirror: bookworm ships Python 3.11 with the same /usr/bin/python3 + venv
# layout the official slim image has. Built once per machine and kept as a local tag; once it
# exists, neither debootstrap nor root is needed again. (test/support/images.py checks the same
# prerequisites first, so that the tests skip, or fail under BIKESHARE_REQUIRE_DOCKER=1.)
set -euo pipefail
tag="${1:-bikeshare-test/python-base:3.11-bookworm}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag already present"
  exit 0
fi
command -v debootstrap >/dev/null || {
  echo "debootstrap is not installed (Debian: apt-get install debootstrap)" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root: sudo bash $0 $tag" >&2; exit 1; }
root="$(mktemp -d)"
trap 'rm -rf "$root" "$root.log"' EXIT  # the log sits beside the root, not in it
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$root" >"$root.log" 2>&1 \
  || { tail -20 "$root.log" >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import - "$tag" >/dev/null
echo "built $tag"
