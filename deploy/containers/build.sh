#!/usr/bin/env bash
# Build the images deploy/compose.yaml runs, with podman, on the local base image
# (deploy/containers/base-image.sh): pcpsim:latest from deploy/Dockerfile, and Prometheus
# from Debian's package (localhost/pcpsim-prometheus:2.42, deploy/containers/prometheus.Dockerfile)
# as its upstream image cannot be pulled here. The Prometheus image is made once and kept;
# pcpsim's is rebuilt every time (podman's layer cache makes an unchanged rebuild quick).
#
# Builds use the host's network (pip reaches PyPI, apt Debian's archive) and the host's CA
# bundle: the registries are reached through a TLS certificate only that bundle trusts.
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=${BASE_IMAGE:-localhost/debian-py:bookworm}
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
PROMETHEUS_IMAGE=${PCPSIM_PROMETHEUS_IMAGE:-localhost/pcpsim-prometheus:2.42}
build=(podman build -q --format docker --network host --build-arg "BASE=$BASE")
if [ -f "$HOST_CA" ]; then
    build+=(-v "$HOST_CA:/etc/host-ca.crt:ro" --build-arg PIP_CERT=/etc/host-ca.crt)
fi

start=$SECONDS
"${build[@]}" -f deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore -t pcpsim:latest . >/dev/null
mb=$(podman image inspect pcpsim:latest --format '{{.Size}}' | awk '{printf "%.0f", $1 / 1e6}')
echo "image pcpsim:latest: built in $((SECONDS - start)) s, ${mb} MB"

if podman image exists "$PROMETHEUS_IMAGE"; then
    echo "image $PROMETHEUS_IMAGE: cached"
else
    start=$SECONDS
    "${build[@]}" -f deploy/containers/prometheus.Dockerfile -t "$PROMETHEUS_IMAGE" deploy/containers >/dev/null
    podman image prune -f >/dev/null  # the package stage (~700 MB), not needed again
    echo "image $PROMETHEUS_IMAGE: built in $((SECONDS - start)) s"
fi
