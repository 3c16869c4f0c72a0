"""coordinator.tools.die_with_parent: the program it execs gets SIGTERM when its launcher dies, even
by SIGKILL, and it refuses to exec one whose launcher is already gone. Real processes and signals."""

import os
import pathlib
import signal
import subprocess
import sys

from tests.integration.conftest import pid_alive, python_module, wait_until

# A launcher as LocalPrometheus is one: it starts `sleep` through die_with_parent, prints its pid
# and waits to be killed.
LAUNCHER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-m", "coordinator.tools.die_with_parent", str(os.getpid()), "sleep", "600"])
print(child.pid, flush=True)
time.sleep(600)
"""


def test_the_program_is_the_launchers_child_and_is_terminated_when_the_launcher_is_killed():
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True)
    try:
        assert launcher.stdout is not None
        child = int(launcher.stdout.readline())
        # exec, not a child of its own: the pid the launcher holds is the program's
        comm = pathlib.Path(f"/proc/{child}/comm")
        wait_until(lambda: comm.read_text().strip() == "sleep", 30.0, what="sleep exec'd")
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(10)
        wait_until(lambda: not pid_alive(child), 30.0, what="sleep terminated after its launcher's death")
    finally:
        launcher.kill()
        launcher.wait(10)


def test_a_launcher_already_gone_gets_no_program(tmp_path):
    """PARENT_PID not this process's parent (it died before the prctl, or a wrong pid): exit 1, and
    the program is never run. With the right pid, the same command runs it."""
    ran = tmp_path / "ran"
    for parent, code, exists in ((os.getpid() + 1_000_000, 1, False), (os.getpid(), 0, True)):
        argv = python_module("coordinator.tools.die_with_parent", str(parent), "touch", str(ran))
        assert subprocess.run(argv, timeout=60).returncode == code
        assert ran.exists() is exists


def test_bad_usage_is_refused():
    for argv in ([], ["123"], ["pid", "sleep", "1"]):
        r = subprocess.run(
            python_module("coordinator.tools.die_with_parent", *argv), capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 2 and "usage:" in r.stderr
