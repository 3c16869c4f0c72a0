#!/usr/bin/env bash
# Make the local base image localhost/debian-py:bookworm once: Debian bookworm with Python
# from Debian's packages (python3, python3-venv) and CA certificates, by debootstrap from
# Debian's archive and `podman import`. No container registry is reachable from the machines
# pcpsim is developed on, so python:3.11-slim cannot be pulled; deploy/Dockerfile builds the
# same way on either base (BASE build argument). Kept in podman's storage: a second call
# finds the image and returns at once.
set -euo pipefail
IMAGE=${BASE_IMAGE:-localhost/debian-py:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if podman image exists "$IMAGE"; then
    echo "base image $IMAGE: cached"
    exit 0
fi
root=$(mktemp -d /var/tmp/pcpsim-debootstrap.XXXXXX)
trap 'rm -rf "$root"' EXIT
start=$SECONDS
echo "base image $IMAGE: debootstrap bookworm from $MIRROR (about two minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$MIRROR" \
    >"$root.log" 2>&1 || { tail -20 "$root.log"; exit 1; }
rm -f "$root.log"
# apt inside builds FROM this image reads the same archive.
echo "deb $MIRROR bookworm main" >"$root/etc/apt/sources.list"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import -q --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "base image $IMAGE: made in $((SECONDS - start)) s"
