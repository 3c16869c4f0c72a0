#!/usr/bin/env bash
# One seed, the same bytes on four machines (docs/engine.md, "Determinism"): this one (x86_64), aarch64
# and s390x (Debian's Python 3.11 under qemu-user; s390x is big-endian) and 32-bit x86 (Debian's i386
# Python, run natively, so its doubles go through the x87 unit). On each: `compare --engine virtual --quick --seed 7
# --check-determinism`, a chaos scenario under virtual time with --check-determinism, and the sweep's
# first 200 generated scenarios. Every digest must equal this machine's; else the first line where the
# compare event logs part is printed. `make test-machines`; .ci/run runs it.
#
# Each Python is Debian bookworm's, from its .deb files unpacked into a folder (no chroot, no binfmt:
# qemu-aarch64-static and the i386 loader are given the folder). Each gets pcpsim's dependencies as
# that machine's wheels from PyPI (pip --platform --target), but matplotlib (plots; no 32-bit wheel);
# on i386 greenlet, which has no 32-bit wheel, is compiled here from its sdist with g++ -m32; s390x gets
# no gRPC at all (grpcio has no s390x wheel): the virtual engine and the commands run here need none
# (tests/unit/test_layering.py, tests/unit/test_no_grpc.py), so there it also proves that.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VENV=${VENV:-.venv}
HOST_PY=$ROOT/$VENV/bin/python
CACHE=${PCPSIM_MACHINES:-$ROOT/.pcpsim/machines}
OUT=$CACHE/out
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
# python3.11 and the libraries its interpreter and stdlib modules link.
DEBS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libexpat1 zlib1g libssl3 libffi8
  libbz2-1.0 liblzma5 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libuuid1 libgcc-s1 libstdc++6 libcrypt1
  libdb5.3 libnsl2 libtirpc3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1
  libzstd1"
DEV_DEBS="libpython3.11-dev python3.11-dev"  # i386: the headers greenlet compiles against

say() { echo "[machines $(date -u +%H:%M:%S)] $*"; }

system_deps() {
  local need=0
  command -v qemu-aarch64-static >/dev/null || need=1
  echo 'int main() {}' | g++ -m32 -x c++ - -o /dev/null 2>/dev/null || need=1
  for arch in arm64 i386 s390x; do dpkg --print-foreign-architectures | grep -qx $arch || { $SUDO dpkg --add-architecture $arch; need=1; }; done
  [ $need = 0 ] || deploy/apt-install.sh qemu-user-static g++-multilib
}

# The pins of pyproject.toml's dependencies, but matplotlib and those named in $1.
requirements() {
  "$HOST_PY" - "$@" <<'EOF'
import re, sys, tomllib
skip = {"matplotlib", *sys.argv[1:]}
for dep in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    if re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower() not in skip:
        print(dep)
EOF
}

python_root() {  # $1 arch, $2 extra debs
  local dir=$CACHE/$1
  [ -x "$dir/root/usr/bin/python3.11" ] && [ -e "$dir/root/.complete" ] && return
  rm -rf "$dir/debs" "$dir/root"
  mkdir -p "$dir/debs" "$dir/root"
  # As root, apt's sandbox user could not write here: download as the caller.
  (cd "$dir/debs" && for p in $DEBS $2; do apt-get download -q -o Acquire::Retries=3 -o APT::Sandbox::User="$(id -un)" "$p:$1" >/dev/null; done)
  for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$dir/root"; done
  touch "$dir/root/.complete"
}

site() {  # $1 arch, $2 pip's platform tags, $3 packages to leave out
  local dir=$CACHE/$1
  [ -e "$dir/site/.complete" ] && return
  rm -rf "$dir/site"
  local platforms=()
  for p in $2; do platforms+=(--platform "$p"); done
  # shellcheck disable=SC2046
  "$HOST_PY" -m pip install -q --target "$dir/site" --only-binary=:all: --python-version 3.11 --implementation cp \
    "${platforms[@]}" $(requirements $3) 2> >(grep -v "^WARNING: Location" >&2)
  touch "$dir/site/.complete"
}

greenlet_i386() {  # compiled as greenlet's setup.py would, for Debian's i386 Python
  local dir=$CACHE/i386 version
  [ -e "$dir/site/greenlet/.complete" ] && return
  version=$("$HOST_PY" -c "import greenlet; print(greenlet.__version__)")
  rm -rf "$dir/sdist" && mkdir -p "$dir/sdist" "$dir/site/greenlet"
  "$HOST_PY" -m pip download -q --no-binary=:all: --no-deps "greenlet==$version" -d "$dir/sdist" 2> >(grep -v "^WARNING: Location" >&2)
  tar -xzf "$dir"/sdist/greenlet-*.tar.gz -C "$dir/sdist"
  local src=("$dir"/sdist/greenlet-*/src/greenlet)
  cp "${src[0]}"/*.py "$dir/site/greenlet/"
  g++ -m32 -O2 -fPIC -shared -fno-strict-aliasing -std=c++11 -I"$dir/root/usr/include" \
    -I"$dir/root/usr/include/python3.11" -I"$dir/root/usr/include/i386-linux-gnu/python3.11" \
    "${src[0]}/greenlet.cpp" -o "$dir/site/greenlet/_greenlet.cpython-311-i386-linux-gnu.so"
  touch "$dir/site/greenlet/.complete"
}

# run MACHINE ARGS...: python ARGS on MACHINE, with pcpsim and that machine's site on its path.
run() {
  local machine=$1; shift
  local env=(env -i PATH=/usr/bin:/bin PYTHONDONTWRITEBYTECODE=1)
  case $machine in
    x86_64) "${env[@]}" PYTHONPATH="$ROOT" "$HOST_PY" "$@" ;;
    aarch64) local r=$CACHE/arm64/root
      "${env[@]}" PYTHONPATH="$ROOT:$CACHE/arm64/site" qemu-aarch64-static -L "$r" "$r/usr/bin/python3.11" "$@" ;;
    s390x) local r=$CACHE/s390x/root
      "${env[@]}" PYTHONPATH="$ROOT:$CACHE/s390x/site" qemu-s390x-static -L "$r" "$r/usr/bin/python3.11" "$@" ;;
    i386) local r=$CACHE/i386/root
      "${env[@]}" PYTHONPATH="$ROOT:$CACHE/i386/site" "$r/lib/ld-linux.so.2" \
        --library-path "$r/lib/i386-linux-gnu:$r/usr/lib/i386-linux-gnu" "$r/usr/bin/python3.11" "$@" ;;
  esac
}

# digests MACHINE: each workload's digest lines, in $OUT/MACHINE.digests.
digests() {
  local m=$1 start=$SECONDS
  mkdir -p "$OUT/$m"
  {
    run "$m" -c "import platform, struct, sys; print('machine', platform.machine(), struct.calcsize('P') * 8, 'bit', sys.byteorder, 'endian')" >&2
    echo "compare --engine virtual --quick --seed 7"
    run "$m" -m coordinator.tools.cli compare --engine virtual --quick --seed 7 --check-determinism \
      --event-log "$OUT/$m/compare.log" | grep -E "sha256|^determinism"
    echo "chaos run deploy/chaos/mixed.toml --engine virtual --strategy remote"
    run "$m" -m coordinator.tools.cli chaos run deploy/chaos/mixed.toml --engine virtual --strategy remote \
      --check-determinism --out "$OUT/$m/chaos" | grep -E "sha256|determinism"
    echo "the sweep's scenarios of seeds 1-200"
    run "$m" -c "import hashlib; from coordinator.tools.chaos.sweep import generate, tomlfile; \
print('scenarios sha256', hashlib.sha256(''.join(tomlfile.dumps(generate.generate(s)) for s in range(1, 201)).encode()).hexdigest())"
  } > "$OUT/$m.digests"
  say "$m: $((SECONDS - start)) s"
}

system_deps
say "Debian's Python 3.11 for arm64, s390x and i386, with pcpsim's dependencies"
python_root arm64 ""
python_root s390x ""
python_root i386 "$DEV_DEBS"
site arm64 "manylinux2014_aarch64 manylinux_2_17_aarch64 manylinux_2_28_aarch64" ""
site s390x "manylinux2014_s390x manylinux_2_17_s390x manylinux_2_28_s390x" "grpcio grpcio-tools grpcio-health-checking"
site i386 "manylinux2014_i686 manylinux_2_17_i686 manylinux_2_28_i686 manylinux1_i686" greenlet
greenlet_i386
rm -rf "$OUT" && mkdir -p "$OUT"
for m in x86_64 i386 aarch64 s390x; do digests $m; done
cat "$OUT/x86_64.digests"
rc=0
for m in i386 aarch64 s390x; do
  if cmp -s "$OUT/x86_64.digests" "$OUT/$m.digests"; then
    say "$m: every digest equals x86_64's"
  else
    rc=1
    say "$m: DIFFERS from x86_64"
    diff "$OUT/x86_64.digests" "$OUT/$m.digests" || true
    "$HOST_PY" -c "import sys; from coordinator.tools.determinism import first_divergence as f; \
print(f(open(sys.argv[1]).read(), open(sys.argv[2]).read(), 'compare event log') or 'compare event logs identical')" \
      "$OUT/x86_64/compare.log" "$OUT/$m/compare.log"
  fi
done
exit $rc
