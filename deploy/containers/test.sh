#!/usr/bin/env bash
# `make test-containers`: build pcpsim's image and run the Compose stack for real, with podman
# and podman-compose, here and in CI (.ci/run). Installs what it needs (Debian's podman, runc,
# catatonit and debootstrap; podman-compose from PyPI in a tool venv), makes the base image
# once (deploy/containers/base-image.sh, kept in podman's storage), builds the images
# (deploy/containers/build.sh), then runs deploy/containers/e2e.py twice: the plain stack, and
# the stack with tokens and mutual TLS (deploy/compose/secure.yaml). Each stack is torn down
# after its run and, on any failure or interrupt, by the trap below; the run fails if a
# container, network or volume of either project is left.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
# The podman settings this kind of machine needs (runc, cgroupfs, ulimits within the host's).
export CONTAINERS_CONF=$REPO/deploy/containers/containers.conf
TOOLS=$REPO/.pcpsim/podman-compose
export PODMAN_COMPOSE=$TOOLS/bin/podman-compose
total_start=$SECONDS

missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)  # Compose's `init: true`
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian packages)"
    deploy/apt-install.sh podman runc catatonit debootstrap
fi
if [ ! -x "$PODMAN_COMPOSE" ]; then
    echo "installing podman-compose (PyPI) in $TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q podman-compose==1.6.0
fi
echo "$(podman --version), $($PODMAN_COMPOSE --version 2>/dev/null | head -1), runc $(runc --version | awk 'NR==1{print $3}')"

deploy/containers/base-image.sh
deploy/containers/build.sh

PROJECTS=("pcpsim-e2e-$$" "pcpsim-e2e-secure-$$")
SECRETS=$(mktemp -d /tmp/pcpsim-e2e-secrets.XXXXXX)

down() {  # down PROJECT [FILES...]: stop and remove everything of the project
    local project=$1 left
    shift
    $PODMAN_COMPOSE -p "$project" "$@" down -v -t 5 >/dev/null 2>&1 || true
    # What podman-compose did not remove (an `up` interrupted half-way, say), by its labels.
    for kind in container network volume; do
        case $kind in
            container) left=$(podman ps -a -q --filter "label=io.podman.compose.project=$project") ;;
            network) left=$(podman network ls -q --filter "label=io.podman.compose.project=$project") ;;
            volume) left=$(podman volume ls -q --filter "label=io.podman.compose.project=$project") ;;
        esac
        [ -z "$left" ] || podman "$kind" rm -f $left >/dev/null 2>&1 || true
    done
}

leftovers() {  # every container, network and volume of our projects still there
    local project
    for project in "${PROJECTS[@]}"; do
        podman ps -a --format '{{.Names}}' --filter "label=io.podman.compose.project=$project"
        podman network ls --format '{{.Name}}' --filter "label=io.podman.compose.project=$project"
        podman volume ls --format '{{.Name}}' --filter "label=io.podman.compose.project=$project"
    done
}

child=
step() {  # step CMD...: run CMD in the background and wait, so a signal reaches the trap at once
    "$@" &
    child=$!
    wait "$child"
    child=
}

cleanup() {
    local rc=$? left
    trap - EXIT INT TERM
    if [ -n "$child" ]; then
        kill "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    down "${PROJECTS[0]}" -f deploy/compose.yaml
    PCPSIM_SECRETS=$SECRETS down "${PROJECTS[1]}" -f deploy/compose.yaml -f deploy/compose/secure.yaml
    rm -rf "$SECRETS"
    left=$(leftovers)
    if [ -n "$left" ]; then
        echo "FAILED: left behind after teardown: $left" >&2
        rc=1
    fi
    if [ "$rc" -eq 0 ]; then
        echo "test-containers: torn down (no container, network or volume left); $((SECONDS - total_start)) s in all"
        echo "test-containers: 2 passed, 0 failed"
    else
        echo "test-containers: FAILED (exit $rc); torn down; $((SECONDS - total_start)) s in all" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Stacks an earlier run could not tear down (it was killed with SIGKILL, say): only ours, by name.
for stale in $(podman ps -a --format '{{index .Labels "io.podman.compose.project"}}' | grep '^pcpsim-e2e-' | sort -u); do
    echo "removing the stack $stale an earlier run left"
    down "$stale"
done

podman image inspect pcpsim:latest --format 'image pcpsim:latest: {{.Size}} bytes' \
    | awk '{printf "%s %s %.0f MB\n", $1, $2, $3 / 1e6}'

step .venv/bin/python deploy/containers/e2e.py --project "${PROJECTS[0]}"
down "${PROJECTS[0]}" -f deploy/compose.yaml
[ -z "$(leftovers)" ] || { echo "FAILED: the plain stack left: $(leftovers)" >&2; exit 1; }
echo "plain stack torn down: no container, network or volume left"

.venv/bin/python deploy/containers/secrets.py "$SECRETS/s" >/dev/null
step .venv/bin/python deploy/containers/e2e.py --project "${PROJECTS[1]}" --secure "$SECRETS/s"
PCPSIM_SECRETS=$SECRETS/s down "${PROJECTS[1]}" -f deploy/compose.yaml -f deploy/compose/secure.yaml
