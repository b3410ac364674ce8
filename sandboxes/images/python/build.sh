#!/usr/bin/env bash
# Build codegym's Docker sandbox image offline (no image registry needed).
#
#   1. the base image (once): debootstrap a minimal Debian bookworm with Python 3.11 and its
#      standard library from a Debian mirror, then `docker import` it;
#   2. the sandbox image on top of it from this directory's Dockerfile, tagged with a hash of
#      this directory's files (so a changed Dockerfile gives a new tag).
#
# Idempotent and quick when the images exist. Usage:
#   build.sh [--print-tag] [--force]
#     --print-tag  print the image reference the current sources build to, and exit
#     --force      rebuild the sandbox image even if that tag exists (the base is kept)
# Environment: CODEGYM_BASE_IMAGE (codegym-base:bookworm), CODEGYM_IMAGE_REPO
# (codegym-sandbox-python), CODEGYM_DEBIAN_MIRROR (http://deb.debian.org/debian).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
base="${CODEGYM_BASE_IMAGE:-codegym-base:bookworm}"
repo="${CODEGYM_IMAGE_REPO:-codegym-sandbox-python}"
mirror="${CODEGYM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# The tag: sha256 of this directory's regular files (no dotfiles), sorted bytewise by name,
# contents concatenated; first 16 hex digits. sandboxes.docker.image_tag() computes the same.
source_hash() {
  (cd "$here" && find . -maxdepth 1 -type f ! -name '.*' | sed 's|^\./||' | LC_ALL=C sort \
     | while IFS= read -r f; do cat "$f"; done) | sha256sum | cut -c1-16
}

force=0
for arg in "$@"; do
  case "$arg" in
    --print-tag) echo "$repo:$(source_hash)"; exit 0 ;;
    --force) force=1 ;;
    *) echo "build.sh: unknown argument $arg (use --print-tag or --force)" >&2; exit 2 ;;
  esac
done

command -v docker >/dev/null || { echo "build.sh: the docker CLI is missing (apt-get install docker.io)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "build.sh: no Docker engine answers (start it: dockerd &)" >&2; exit 1; }

if ! docker image inspect "$base" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { echo "build.sh: base image $base is missing and debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "build.sh: building the base image $base with debootstrap needs root" >&2; exit 1; }
  root="$(mktemp -d /tmp/codegym-rootfs.XXXXXX)"
  trap 'rm -rf "$root"' EXIT
  echo "build.sh: debootstrap bookworm into $root (from $mirror) ..." >&2
  debootstrap --variant=minbase --include=python3-minimal,libpython3.11-stdlib \
    bookworm "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; rm -f "$root.log"; echo "build.sh: debootstrap failed" >&2; exit 1; }
  rm -f "$root.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  echo "build.sh: docker import -> $base" >&2
  tar --numeric-owner -C "$root" -c . | docker import --change 'CMD ["/usr/bin/python3"]' - "$base" >/dev/null
  rm -rf "$root"
  trap - EXIT
fi

hash="$(source_hash)"
if [ "$force" = 0 ] && docker image inspect "$repo:$hash" >/dev/null 2>&1; then
  echo "$repo:$hash"
  exit 0
fi
echo "build.sh: building $repo:$hash from $here/Dockerfile ..." >&2
out="$(DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base" --build-arg "SOURCE_HASH=$hash" \
  -t "$repo:$hash" -t "$repo:latest" "$here" 2>&1)" || { echo "$out" >&2; echo "build.sh: docker build failed" >&2; exit 1; }
echo "$repo:$hash"
