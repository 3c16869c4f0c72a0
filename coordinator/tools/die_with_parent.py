"""`python -m coordinator.tools.die_with_parent PARENT_PID PROGRAM [ARG...]`: PROGRAM, in this
process (exec: the launcher's Popen.pid is PROGRAM's), gets SIGTERM when PARENT_PID dies.

For a child that is not a pcpsim process and so cannot watch `--parent-pid` itself (Prometheus).
Linux sends the signal set by prctl(PR_SET_PDEATHSIG) when the thread that started the process
ends, and keeps the setting across execve. It is set here rather than in a preexec_fn: a
preexec_fn makes subprocess fork() instead of vfork(), and fork() runs the pthread_atfork
handlers of every library loaded, gRPC's among them, in a process with gRPC's threads. A
`cluster up --prometheus` stopped that way in a `.ci/run` of 57a615b: its forked child waited on
a futex in gRPC's child handler, under __libc_fork (gdb), and never reached exec.
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python -m coordinator.tools.die_with_parent PARENT_PID PROGRAM [ARG...]", file=sys.stderr)
        return 2
    parent_pid, program = int(argv[0]), argv[1:]
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM)) != 0:
        print(f"die_with_parent: prctl: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 1
    if os.getppid() != parent_pid:  # it died before the prctl: no signal will come
        return 1
    os.execvp(program[0], program)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
