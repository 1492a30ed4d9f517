#!/usr/bin/env bash
# Builds the kahunad container image: a static kahunad (no cgo, so no libc
# needed) in an image FROM scratch, see cluster/Dockerfile.
#
#   cluster/image.sh [TAG]      default kahuna-go/kahunad:dev
#
# The build context is a throw-away folder holding only the binary and the
# empty data directory the image gets, so nothing else of the repository
# is sent to Docker. Nothing is pulled from a registry.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
tag=${1:-kahuna-go/kahunad:dev}

command -v docker >/dev/null 2>&1 || {
	echo "image.sh: docker is not installed" >&2
	exit 1
}

ctx=$(mktemp -d "${TMPDIR:-/tmp}/kahunad-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT

echo "building a static kahunad"
(cd "$repo" && CGO_ENABLED=0 "${GO:-go}" build -trimpath -ldflags='-s -w' -o "$ctx/kahunad" ./cmd/kahunad)
# A scratch image has no shell to mkdir and chown with: the data directory
# is made here and copied in with its owner (see the Dockerfile).
mkdir -p "$ctx/rootfs/data"
chmod 0755 "$ctx/rootfs" "$ctx/kahunad"
chmod 0700 "$ctx/rootfs/data"

echo "building image $tag"
docker build --file "$here/Dockerfile" --tag "$tag" "$ctx"
