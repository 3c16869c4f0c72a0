"""deploy/apt-install.sh's retry rule, run with a fake `apt-get` and `apt-cache` first on PATH.

The real failure it handles (a mirror mid-sync makes `apt-get update` exit 100) cannot be made on
demand here, and the real install would change the machine; the fakes record each call instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "apt-install.sh"

# update fails while the counter file holds a number below $FAIL_UPDATES; every call is logged.
FAKE_APT_GET = """#!/bin/sh
echo "apt-get $*" >> "$LOG"
if [ "$1" = update ]; then
    n=$(cat "$COUNT" 2>/dev/null || echo 0); echo $((n + 1)) > "$COUNT"
    [ "$n" -ge "$FAIL_UPDATES" ] || { echo "E: File has unexpected size" >&2; exit 100; }
fi
exit 0
"""
# apt knows a candidate for every package but those named in $UNKNOWN.
FAKE_APT_CACHE = """#!/bin/sh
case " $UNKNOWN " in *" $2 "*) echo "  Candidate: (none)";; *) echo "  Candidate: 1.0";; esac
"""


def run(tmp_path: Path, *packages: str, fail_updates: int, unknown: str = "") -> tuple[int, list[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in {"apt-get": FAKE_APT_GET, "apt-cache": FAKE_APT_CACHE, "sudo": '#!/bin/sh\nexec "$@"\n'}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LOG": str(log),
        "COUNT": str(tmp_path / "count"),
        "FAIL_UPDATES": str(fail_updates),
        "UNKNOWN": unknown,
        "APT_INSTALL_ATTEMPTS": "3",
        "APT_INSTALL_DELAY": "0",
    }
    done = subprocess.run(["bash", str(SCRIPT), *packages], env=env, capture_output=True, text=True, timeout=30)
    calls = log.read_text().splitlines() if log.exists() else []
    return done.returncode, calls, done.stderr


def test_a_clean_update_installs_at_once(tmp_path: Path) -> None:
    rc, calls, _ = run(tmp_path, "prometheus", fail_updates=0)
    assert rc == 0
    assert calls == [
        "apt-get update -qq -o Acquire::Retries=3",
        "apt-get install -y -qq -o Acquire::Retries=3 prometheus",
    ]


def test_an_update_that_fails_twice_is_tried_again_then_installs(tmp_path: Path) -> None:
    rc, calls, err = run(tmp_path, "qemu-user-static", "g++-multilib", fail_updates=2)
    assert rc == 0
    assert [c.split()[1] for c in calls] == ["update", "update", "update", "install"]
    assert calls[-1].endswith("qemu-user-static g++-multilib")
    assert err.count("apt-get update failed (attempt") == 2


def test_an_update_that_never_succeeds_installs_from_the_indexes_it_has(tmp_path: Path) -> None:
    rc, calls, err = run(tmp_path, "podman", "runc", fail_updates=99)
    assert rc == 0
    assert [c.split()[1] for c in calls] == ["update", "update", "update", "install"]
    assert "installing from those" in err


def test_a_package_without_a_candidate_after_failed_updates_is_named_and_nothing_installs(tmp_path: Path) -> None:
    rc, calls, err = run(tmp_path, "podman", "catatonit", fail_updates=99, unknown="catatonit")
    assert rc == 1
    assert "no candidate for: catatonit" in err
    assert not any(c.startswith("apt-get install") for c in calls)


def test_no_package_is_a_usage_error(tmp_path: Path) -> None:
    rc, calls, err = run(tmp_path, fail_updates=0)
    assert rc == 2
    assert "usage" in err
    assert calls == []
