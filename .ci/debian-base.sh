#!/usr/bin/env bash
# Makes the Debian base image of the end-to-end tests, localhost/debian:SUITE (default trixie),
# in the private Podman store of .ci/podman-env.sh, unless it is there already: mmdebstrap
# writes a minimal Debian from the distribution's archive, `podman import` makes it an image.
# No container registry is involved. mmdebstrap is used from PATH or, when it is not
# installed, from its Debian package unpacked into a temporary directory (nothing is
# installed on the machine).
#
# Usage: source .ci/podman-env.sh; .ci/debian-base.sh [SUITE]
set -euo pipefail
suite=${1:-trixie}
image=localhost/debian:$suite
mirror=${TEROK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
local_podman() { env -u CONTAINER_HOST -u DOCKER_HOST podman "$@"; }

[ -n "${CONTAINERS_STORAGE_CONF:-}" ] || { echo "debian-base: source .ci/podman-env.sh first" >&2; exit 1; }
if local_podman image exists "$image"; then
    echo "debian-base: $image exists"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if command -v mmdebstrap >/dev/null 2>&1; then
    mmdebstrap=(mmdebstrap)
else
    (cd "$work" && apt-get download mmdebstrap >/dev/null 2>&1) ||
        { echo "debian-base: cannot download the mmdebstrap package" >&2; exit 1; }
    dpkg-deb -x "$work"/mmdebstrap_*.deb "$work/mmdebstrap"
    mmdebstrap=(perl "$work/mmdebstrap/usr/bin/mmdebstrap")
fi
start=$(date +%s)
"${mmdebstrap[@]}" --quiet --variant=minbase "$suite" "$work/rootfs.tar" "$mirror"
local_podman import -q "$work/rootfs.tar" "$image" >/dev/null
echo "debian-base: made $image in $(( $(date +%s) - start )) s"
