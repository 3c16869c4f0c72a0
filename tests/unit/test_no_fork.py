"""No pcpsim process, and no test worker, forks a child that runs code before exec: every module of
node, coordinator, tests and deploy is parsed (ast, never executed) for the ways to do it.

A process that has used gRPC has gRPC's threads; fork() copies only the calling one and runs the
pthread_atfork handlers of every library loaded. Both hung in this project: a sweep's forked
workers in threading._after_fork (coordinator/tools/chaos/sweep/driver.py), and the child
`cluster up` forked for Prometheus in gRPC's child handler (coordinator/tools/die_with_parent.py).
subprocess uses vfork() then exec, which runs no handler, unless given a preexec_fn;
multiprocessing forks unless given the "spawn" context.
"""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def forks(source: str) -> list[str]:
    """Each way `source` forks without exec, as "line: what"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if any(k.arg == "preexec_fn" for k in node.keywords):
            found.append(f"{node.lineno}: {name}(preexec_fn=...)")
        if name in ("os.fork", "os.forkpty", "pty.fork"):
            found.append(f"{node.lineno}: {name}()")
        if name in ("multiprocessing.Process", "multiprocessing.Pool"):
            found.append(f"{node.lineno}: {name} in the default (fork) context")
        if name in ("multiprocessing.get_context", "multiprocessing.set_start_method"):
            method = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            if method != "spawn":
                found.append(f"{node.lineno}: {name}({method!r})")
    return found


def test_no_module_forks_without_exec():
    found = {
        str(path.relative_to(REPO)): hits
        for package in ("node", "coordinator", "tests", "deploy")
        for path in sorted((REPO / package).rglob("*.py"))
        if (hits := forks(path.read_text()))
    }
    assert found == {}


@pytest.mark.parametrize(
    "source",
    [
        "subprocess.Popen(['prometheus'], preexec_fn=f)",
        "pid = os.fork()",
        "multiprocessing.Pool(2)",
        "multiprocessing.Process(target=f)",
        "multiprocessing.get_context('fork')",
        "multiprocessing.get_context()",
        "multiprocessing.set_start_method('forkserver')",
    ],
)
def test_each_planted_fork_is_found(source):
    assert forks(source) != []


def test_spawn_and_plain_subprocess_are_not_forks():
    assert forks("multiprocessing.get_context('spawn').Pool(2)\nsubprocess.Popen(['x'], start_new_session=True)") == []
