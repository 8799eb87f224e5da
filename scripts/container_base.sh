#!/usr/bin/env bash
# Make a Debian bookworm base image (the content of debian:bookworm-slim) from Debian's own packages with
# mmdebstrap, and import it into the container engine: for machines that reach Debian's mirror but not Docker
# Hub. Prints the image's tag. Does nothing if the engine has that tag already.
#   bash scripts/container_base.sh [TAG]        (default TAG local/debian:bookworm-mmdebstrap)
# CONTAINER_CACHE is where the root file system tarball is kept (default ~/.cache/hashsvc-container; never in
# the repository). CONTAINER_ENGINE is docker (default) or podman. Needs mmdebstrap (apt-get install mmdebstrap).
set -euo pipefail
tag=${1:-local/debian:bookworm-mmdebstrap}
engine=${CONTAINER_ENGINE:-docker}
cache=${CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hashsvc-container}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

if "$engine" image inspect "$tag" > /dev/null 2>&1; then
    echo "$tag"
    exit 0
fi
command -v mmdebstrap > /dev/null || { echo "container_base.sh: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }
mkdir -p "$cache"
tarball=$cache/bookworm-minbase.tar
if [ ! -s "$tarball" ]; then
    # minbase: essential packages and apt, as in debian:bookworm-slim; no documentation, man pages or
    # translations, and no apt lists left behind.
    nice -n 10 mmdebstrap --variant=minbase --include=ca-certificates \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        bookworm "$cache/bookworm-minbase.partial.tar" \
        "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main" >&2
    mv "$cache/bookworm-minbase.partial.tar" "$tarball"
fi
"$engine" import --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tarball" "$tag" > /dev/null
echo "$tag"
