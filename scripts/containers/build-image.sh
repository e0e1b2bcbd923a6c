#!/usr/bin/env bash
# Builds the mirrorlb image from the Dockerfile with podman, as `docker build` would:
#   scripts/containers/build-image.sh [TAG]        (default localhost/mirrorlb:local)
# Docker image format, so the HEALTHCHECK is kept (OCI images have no place for it). The
# build's `npm ci` reads this machine's npm cache through a throw-away overlay when there
# is one (~/.npm), so a build after `npm ci` downloads next to nothing. Run
# scripts/containers/base-images.sh first where node:26-slim cannot be pulled.
set -euo pipefail
source "$(dirname "$0")/env.sh"
need podman podman
tag=${1:-localhost/mirrorlb:local}
cd "$CONTAINERS_DIR/../.."
cache=()
npm_cache=$(npm config get cache 2>/dev/null || echo "$HOME/.npm")
[ -d "$npm_cache" ] && cache=(--volume "$npm_cache:/root/.npm:O")
start=$SECONDS
podman build --format docker --network host "${cache[@]}" -t "$tag" -f Dockerfile . >&2
echo "build-image: $tag in $((SECONDS - start))s, $(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
