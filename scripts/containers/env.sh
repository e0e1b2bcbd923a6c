# Sourced by the scripts in scripts/containers/: podman's engine settings for this kind of
# host live here and in the two .conf files beside it, never in the compose files.
CONTAINERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF="$CONTAINERS_DIR/containers.conf"
export CONTAINERS_REGISTRIES_CONF="$CONTAINERS_DIR/registries.conf"

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "$(basename "$0"): $1 is not installed (apt-get install $2)" >&2
    exit 3
  }
}
export BUILDAH_FORMAT=docker
