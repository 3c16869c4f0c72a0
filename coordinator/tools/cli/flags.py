"""Flag types: each turns a flag's text into its value or refuses it with a message naming the
problem (argparse prints it with the flag and exits 2)."""

import argparse
import math
import os

from coordinator.drain.record import STRATEGIES
from coordinator.tools.bench.steps import STEPS as BENCH_STEPS
from coordinator.tools.chaos.sweep import shards
from coordinator.tools.compare_plan import TRIGGERS
from node import rtapp
from node.mm import profile as profiles
from node.shared.config import int_range, join_host_port, split_host_port
from node.shared.timebase import cost_model_arg


def seeds(text: str) -> tuple[str, list[int]]:
    """N-M, N or a comma list of both: the text as given and the sorted seeds."""
    try:
        return text, shards.parse_seeds(text)
    except shards.ShardError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# One seed: the bound a scenario file's seed and --seeds have, so that a seed a run was given is one
# its files can name.
seed = int_range(0, shards.MAX_SEED)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _name_list(text: str, known, what: str) -> tuple:
    """Comma-separated names, each among `known` and named once."""
    names = tuple(n.strip() for n in text.split(","))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a {what} named twice in {text!r}")
    return names


def strategy_list(text: str) -> tuple:
    return _name_list(text, STRATEGIES, "strategy")


def bench_steps(text: str) -> tuple:
    """--only: some of pcpsim bench's steps."""
    return _name_list(text, BENCH_STEPS, "step")


def kernel_list(text: str) -> tuple:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",")))
    for name in names:
        try:
            profiles.get(name)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return names


def listen_host(text: str) -> str:
    """--listen-host: a host name or IP address every process binds (its ports are chosen at start)."""
    try:
        split_host_port(join_host_port(text.strip(), 0))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a host name or IP address: {text!r}") from None
    return text.strip()


def trigger_mix(text: str) -> tuple:
    mix: list[tuple[str, float]] = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in TRIGGERS:
            raise argparse.ArgumentTypeError(f"unknown trigger {name.strip()!r}; known: {', '.join(TRIGGERS)}")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"weight of {name.strip()} is not a number: {weight!r}") from None
        if not math.isfinite(w) or w < 0:  # random.choices refuses an infinite or nan total, mid-run
            raise argparse.ArgumentTypeError(f"weight of {name.strip()} must be a finite number >= 0, got {w}")
        if any(n == name.strip() for n, _ in mix):
            raise argparse.ArgumentTypeError(f"{name.strip()} is given twice")
        mix.append((name.strip(), w))
    total = sum(w for _, w in mix)
    if not math.isfinite(total):  # each finite, their sum not (1e308 twice): random.choices refuses it mid-run
        raise argparse.ArgumentTypeError(f"the weights' sum must be finite, got {total}")
    if total <= 0:
        raise argparse.ArgumentTypeError("at least one trigger needs a weight > 0")
    return tuple(mix)


def workload(text: str) -> rtapp.Workload:
    """An rt-app task set file, parsed: a bad one is refused before any process starts."""
    try:
        return rtapp.load(text)
    except rtapp.WorkloadError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


ENGINES = ("wall", "virtual")  # --engine of compare, chaos run and chaos sweep: real processes, or virtual time

COST_MODEL_HELP = (
    "TOML file of modeled kernel costs, any CostModel field, read by the coordinator and every node "
    "(default and its sources: node/costs/sapphire-rapids.toml)"
)


def cost_model_file(text: str) -> str:
    """--cost-model FILE: refused here if it does not load, before anything starts; the
    processes started get its absolute path."""
    cost_model_arg(text)
    return os.path.abspath(text)


WORKLOAD_HELP = (
    "latency tasks as an rt-app JSON task set (deploy/rt-app/*.json): the CPUs it names run its "
    "tasks, the others housekeeping (default: deploy/rt-app/default.json)"
)
