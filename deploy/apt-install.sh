#!/usr/bin/env bash
# deploy/apt-install.sh PKG...: install Debian packages on this machine, through a mirror's bad moment.
# Used by every target that installs system packages (Makefile's system-deps, deploy/containers/test.sh,
# tests/machines/run.sh), so each survives the same failures the same way.
#
# `apt-get update` exits 100 when any one index fails to download. CI failed so on 2026-12-05: "File has
# unexpected size (371952 != 372316). Mirror sync in progress?" for bookworm-security's i386 index, an
# index none of the packages it wanted comes from. So: each download is retried by apt
# (Acquire::Retries); the update is tried 4 times, 20 s apart (a mirror sync takes minutes); if it still
# fails, the packages are installed from the indexes that did download, provided apt has a candidate for
# every one of them. Otherwise the error names the packages apt cannot find.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 PKG..." >&2; exit 2; }
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
APT_OPTS=(-o Acquire::Retries=3)
ATTEMPTS=${APT_INSTALL_ATTEMPTS:-4}
DELAY=${APT_INSTALL_DELAY:-20}

updated=0
for ((attempt = 1; attempt <= ATTEMPTS; attempt++)); do
    if $SUDO apt-get update -qq "${APT_OPTS[@]}"; then updated=1; break; fi
    if ((attempt < ATTEMPTS)); then
        echo "apt-install: apt-get update failed (attempt $attempt of $ATTEMPTS); trying again in $DELAY s" >&2
        sleep "$DELAY"
    fi
done
if [ $updated = 0 ]; then
    unknown=()
    for pkg in "$@"; do
        candidate=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
        [ -n "$candidate" ] && [ "$candidate" != "(none)" ] || unknown+=("$pkg")
    done
    if [ ${#unknown[@]} -gt 0 ]; then
        echo "apt-install: apt-get update failed $ATTEMPTS times and apt has no candidate for: ${unknown[*]}" >&2
        exit 1
    fi
    echo "apt-install: apt-get update failed $ATTEMPTS times; every package has a candidate in the indexes" \
        "that did download, so installing from those" >&2
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT_OPTS[@]}" "$@" >/dev/null
