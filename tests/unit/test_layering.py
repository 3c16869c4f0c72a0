"""The package layering holds: each arrow of the architecture is a rule, checked on the imports
themselves (parsed with ast, never executed), and each rule fails on a violation planted in a copy.

Rules (docs/architecture.md):
- node never imports coordinator: a CPU process runs without the control plane's code;
- node.mm imports the standard library only (and itself): the model stays pure and testable;
- the coordinator process never imports coordinator.tools: the tools drive a cluster from outside;
- the coordinator process takes from node only node.mm, node.api, node.shared and node.sim, never the
  CPU process;
- a rule module (RULE_MODULES, docs/engine.md) imports no grpc, threading, time, asyncio or random, not
  even through the node and coordinator modules it imports (its import closure, named as a chain such as
  "node.grants -> node.api.errors -> grpc"): it decides, its drivers do the I/O and the waiting, and
  randomness comes in as a seeded object (random only behind node.sim.rng);
- node.mm's closure holds none of them either: its callers pass the locks, clocks and seeded streams;
- node.sim, the virtual-time core, imports the standard library only, never a wall clock, threads or
  asyncio, and only node.sim.rng imports random (every draw comes from one seeded tree);
- nothing else in node or coordinator imports random either: every generator is a node.sim.rng.Stream,
  whose draws are the same bits on every machine (no C library log, exp, sin or cos);
- the virtual engine (VIRTUAL_ENGINE: node.virtual, the whole-cluster tools, the virtual compare, chaos
  runner, sweep and scale figure) imports no grpc, not even through the tree: it runs the same rules as
  the wall processes with a simulated network in their place, so it needs no gRPC stack (and runs on a
  machine that has none, tests/machines/run.sh);
- only coordinator.drain.drain_all imports a drain strategy (workqueue, remote, rcu_swap, qpw): it
  picks one per drain and hands qpw the two it picks between, so no strategy reaches into another;
- no import cycle, counting imports inside functions too.
"""

import ast
import functools
import pathlib
import shutil
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("node", "coordinator")
NODE_FOR_COORDINATOR = ("node.mm", "node.api", "node.shared", "node.sim")
# The rules extracted from their drivers so far (docs/engine.md lists what comes next).
RULE_MODULES = (
    "node.sched",
    "node.tasks",
    "node.mm.zone_rules",
    "coordinator.drain.effects",
    "coordinator.drain.control",
    "coordinator.drain.strategy",
    "coordinator.drain.workqueue",
    "coordinator.drain.remote",
    "coordinator.drain.rcu_swap",
    "coordinator.drain.qpw",
    "coordinator.drain.record",
    "coordinator.drain.drain_all",
    "coordinator.audit_rule",
    "node.grants",
    "node.remote_lock_rule",
    "node.rcu_drain_rule",
    "node.rcu_gp",
    "coordinator.membership_rule",
    "coordinator.registration_rule",
    "coordinator.reaper_rule",
    "node.agent_rule",
    "node.zone_retry_rule",
    "node.work_table",
    "node.epoch_rule",
    "node.identity",
    "coordinator.contig_rule",
)
# The virtual engine's entry points and its own packages: each one's import closure holds no grpc.
VIRTUAL_ENGINE = (
    "node.virtual",
    "coordinator.tools.virtual_compare",
    "coordinator.tools.virtual_cluster",
    "coordinator.tools.chaos.virtual_runner",
    "coordinator.tools.chaos.sweep.driver",
    "coordinator.tools.bench.virtual_scale",
)
VIRTUAL_FORBIDDEN = ("grpc",)
RULE_FORBIDDEN = ("grpc", "threading", "time", "asyncio", "random")
SIM_FORBIDDEN = ("grpc", "threading", "time", "asyncio", "datetime", "concurrent", "random")
SIM_RNG = "node.sim.rng"  # the one module of node.sim that may import random
# The drain strategies and the one module that picks between them (coordinator/drain/__init__.py).
DRAIN_STRATEGIES = tuple(f"coordinator.drain.{s}" for s in ("workqueue", "remote", "rcu_swap", "qpw"))
DRAIN_ALL = "coordinator.drain.drain_all"


def modules(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Every module of the two packages under `root`, by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(root: pathlib.Path) -> dict[str, list[str]]:
    """For each module, the modules of the tree and the top-level outside names it imports."""
    mods = modules(root)
    edges = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = []
        for module, level, names in import_statements(path.read_text()):
            base = module
            if level:
                anchor = package.split(".")[: len(package.split(".")) - (level - 1)]
                base = ".".join(anchor + ([module] if module else []))
            if names is None:
                targets.append(base)
            for alias in names or ():
                child = f"{base}.{alias}"
                targets.append(child if child in mods else base)
        edges[name] = sorted(set(targets))
    return edges


@functools.cache
def import_statements(source: str) -> tuple[tuple[str, int, tuple[str, ...] | None], ...]:
    """(module, level, imported names or None for `import module`) of every import in `source`,
    cached by text: the planted-violation tests re-read a whole copy of the tree."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level, tuple(alias.name for alias in node.names)))
    return tuple(found)


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(root: pathlib.Path) -> list[str]:
    edges = imports(root)
    found = []
    for src, targets in edges.items():
        for dst in targets:
            if within(src, "node") and within(dst, "coordinator"):
                found.append(f"{src} imports {dst}: node never imports coordinator")
            if (
                within(src, "node.mm")
                and not within(dst, "node.mm")
                and dst.split(".")[0] not in sys.stdlib_module_names
            ):
                found.append(f"{src} imports {dst}: node.mm imports the standard library only")
            top = dst.split(".")[0]
            if within(src, "node.sim"):
                if not within(dst, "node.sim") and top not in sys.stdlib_module_names:
                    found.append(f"{src} imports {dst}: node.sim imports the standard library only")
                if top in SIM_FORBIDDEN and not (top == "random" and src == SIM_RNG):
                    found.append(
                        f"{src} imports {dst}: node.sim reads no wall clock, starts no thread, and draws only "
                        f"from {SIM_RNG}"
                    )
            if top == "random" and src != SIM_RNG and not within(src, "node.sim"):
                found.append(
                    f"{src} imports {dst}: only {SIM_RNG} imports random; a generator is its Stream, whose "
                    "draws are the same bits on every machine"
                )
            if src != DRAIN_ALL and any(within(dst, m) for m in DRAIN_STRATEGIES):
                found.append(f"{src} imports {dst}: only {DRAIN_ALL} imports a drain strategy")
            process = within(src, "coordinator") and not within(src, "coordinator.tools")
            if process and within(dst, "coordinator.tools"):
                found.append(f"{src} imports {dst}: the coordinator process never imports the tools")
            if process and within(dst, "node") and not any(within(dst, p) for p in NODE_FOR_COORDINATOR):
                found.append(
                    f"{src} imports {dst}: the coordinator process takes only "
                    f"{', '.join(NODE_FOR_COORDINATOR)} from node"
                )
    found += closure_violations(edges)
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(edges)]
    return found


def closure_pure(edges: dict[str, list[str]]) -> list[str]:
    """The modules whose import closure must hold none of RULE_FORBIDDEN: the rule modules and node.mm."""
    return [*RULE_MODULES, *(name for name in edges if within(name, "node.mm") and name not in RULE_MODULES)]


def closure_violations(edges: dict[str, list[str]]) -> list[str]:
    found = []
    for start in (name for name in edges if any(within(name, v) for v in VIRTUAL_ENGINE)):
        for chain in forbidden_chains(edges, start, VIRTUAL_FORBIDDEN):
            found.append(f"{' -> '.join(chain)}: the virtual engine runs without grpc")
    for start in closure_pure(edges):
        for chain in forbidden_chains(edges, start):
            if start in RULE_MODULES:
                rule = f"a rule module imports none of {', '.join(RULE_FORBIDDEN)}, not even through the tree"
            else:
                rule = "node.mm takes its locks, clocks and seeded streams from its callers"
            found.append(f"{' -> '.join(chain)}: {rule}")
    return found


def forbidden_chains(edges: dict[str, list[str]], start: str, forbidden=RULE_FORBIDDEN) -> list[list[str]]:
    """Each shortest chain of imports from `start` through the tree to a name of `forbidden`.

    Importing a module runs its packages' __init__ too, so a module's parents count as its imports.
    node.sim.rng alone may import random: what it hands out are seeded objects."""
    parent: dict[str, str | None] = {start: None}
    queue, found = [start], []
    while queue:
        src = queue.pop(0)
        for dst in [*edges.get(src, ()), *packages_of(src, edges)]:
            if dst in edges:
                if dst not in parent:
                    parent[dst] = src
                    queue.append(dst)
                continue
            top = dst.split(".")[0]
            if top not in forbidden or (top == "random" and src == SIM_RNG):
                continue
            chain, at = [top], src
            while at is not None:
                chain.insert(0, at)
                at = parent[at]
            found.append(chain)
    return found


def packages_of(name: str, edges: dict[str, list[str]]) -> list[str]:
    parts = name.split(".")
    return [p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if p in edges]


def cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), or a self-import."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_tree_keeps_every_layering_rule():
    """node, node.mm, the coordinator process and the tools import only what their layer allows, with no cycle."""
    found = violations(REPO)
    assert not found, "\n".join(found)


@pytest.fixture
def tree(tmp_path):
    """A copy of the two packages to plant violations in."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def plant(tree: pathlib.Path, module: str, line: str) -> list[str]:
    path = tree / module.replace(".", "/")
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    before = violations(tree)
    path.write_text(path.read_text() + "\n" + line + "\n")
    return [v for v in violations(tree) if v not in before]


@pytest.mark.parametrize(
    "module, line, rule",
    [
        ("node.cpu", "from coordinator.drain import record", "node never imports coordinator"),
        ("node.mm.pcp", "import grpc", "node.mm imports the standard library only"),
        ("node.mm.zone", "from node.shared import timebase", "node.mm imports the standard library only"),
        ("coordinator.zone_service", "from coordinator.tools import stats", "never imports the tools"),
        ("coordinator.membership", "from node import cpu", "takes only node.mm, node.api, node.shared"),
        ("node.sched", "import time", "a rule module imports none of"),
        ("node.sched", "from threading import Lock", "a rule module imports none of"),
        ("node.sched", "import random", "a rule module imports none of"),
        ("node.mm.zone_rules", "import asyncio", "a rule module imports none of"),
        ("coordinator.drain.control", "import asyncio", "a rule module imports none of"),
        ("coordinator.drain.remote", "import grpc", "a rule module imports none of"),
        ("node.sim.clock", "import time", "node.sim reads no wall clock"),
        ("node.sim.net", "import random\nimport grpc", "node.sim imports the standard library only"),
        ("node.sim.net", "from random import random", "draws only from node.sim.rng"),
        ("coordinator.tools.schedule", "import random", "only node.sim.rng imports random"),
        ("node.shared.faults", "from random import Random", "only node.sim.rng imports random"),
        ("coordinator.drain.qpw", "from coordinator.drain import remote", "imports a drain strategy"),
        ("coordinator.drain.drainer", "from coordinator.drain.workqueue import *", "imports a drain strategy"),
        ("coordinator.tools.compare", "import coordinator.drain.rcu_swap", "imports a drain strategy"),
    ],
)
def test_a_planted_import_breaks_its_rule(tree, module, line, rule):
    """Each rule reports an import planted against it, naming the module."""
    found = plant(tree, module, line)
    assert any(module in v and rule in v for v in found), found


@pytest.mark.parametrize(
    "module, line, chain",
    [
        ("node.api.errors", "import grpc", "coordinator.membership_rule -> node.api.errors -> grpc"),
        ("node.shared.transfer_log", "import time", "node.grants -> node.shared.transfer_log -> time"),
        (
            "node.shared.config",
            "from random import random",
            "coordinator.membership_rule -> node.shared.config -> random",
        ),
        ("node.api", "import threading", "coordinator.membership_rule -> node.api.errors -> node.api -> threading"),
        ("node.mm.watermark", "import time", "node.mm.zone -> node.mm.watermark -> time"),
        ("node.mm.buddy", "def late():\n    import asyncio", "node.mm.zone -> node.mm.buddy -> asyncio"),
    ],
)
def test_a_leak_planted_deeper_in_the_closure_is_named_by_its_chain(tree, module, line, chain):
    """A forbidden import two modules away from a rule module (or a node.mm module) breaks the closure rule,
    reported with the chain of imports that reaches it; a package's __init__ counts, being run on import."""
    found = plant(tree, module, line)
    assert any(v.startswith(chain + ": ") for v in found), found


@pytest.mark.parametrize(
    "module, line, chain",
    [
        ("node.zone_retry_rule", "import grpc", "node.virtual.zone -> node.zone_retry_rule -> grpc"),
        (
            "coordinator.tools.chaos.plan",
            "def late():\n    from coordinator.tools import cluster",
            "coordinator.tools.chaos.plan -> coordinator.tools.cluster -> grpc",
        ),
        (
            "coordinator.tools.compare_plan",
            "from coordinator.tools import compare",
            "coordinator.tools.virtual_compare -> coordinator.tools.compare_plan -> coordinator.tools.compare -> grpc",
        ),
    ],
)
def test_grpc_planted_in_the_virtual_engines_closure_is_named_by_its_chain(tree, module, line, chain):
    """A module the virtual engine imports that comes to import grpc (directly, in a function, or through a
    wall module) breaks the virtual engine's rule, reported with the chain that reaches it."""
    found = plant(tree, module, line)
    assert any(chain in v and v.endswith("the virtual engine runs without grpc") for v in found), found


def test_a_rule_module_may_take_seeded_streams_from_node_sim_rng(tree):
    """random behind node.sim.rng is the one way in: importing rng adds no closure violation, importing
    random beside it does."""
    assert plant(tree, "node.identity", "from node.sim import rng") == []
    found = plant(tree, "node.identity", "import random")
    assert any(v.startswith("node.identity -> random: a rule module") for v in found), found


def test_a_planted_cycle_is_reported(tree):
    """An import back from a module's dependency closes a cycle, reported with both modules."""
    found = plant(tree, "coordinator.drain.record", "def late():\n    from coordinator.drain import drainer")
    assert any(
        v.startswith("import cycle") and "coordinator.drain.drainer" in v and "coordinator.drain.record" in v
        for v in found
    ), found


def test_a_relative_import_is_resolved(tree):
    """`from ..x import y` counts as the module it names, so a relative import cannot hide a violation."""
    found = plant(tree, "node.mm.pcp", "from ...coordinator import tools")
    assert any("node.mm.pcp imports coordinator.tools" in v for v in found), found
