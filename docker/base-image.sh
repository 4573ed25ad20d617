#!/usr/bin/env bash
# docker/base-image.sh — make sure debian:bookworm-slim exists locally.
#
# Our images are built FROM debian:bookworm-slim. Where an image registry
# answers, it is pulled; where none does (an offline or closed network), it
# is made here from Debian's own package mirror: debootstrap a minimal
# bookworm and `docker import` it under the same name. Run as root.
set -euo pipefail

image=debian:bookworm-slim
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
if timeout 60 docker pull "$image" >/dev/null 2>&1; then
  echo "base-image: pulled $image"
  exit 0
fi
echo "base-image: no registry answered; building $image with debootstrap from $mirror"
if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
fi
root=$(mktemp -d /tmp/bookworm-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
# Like the published slim image: no package caches or lists, no docs.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/*
tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$image" >/dev/null
echo "base-image: imported $image"
