"""Seed ranges, their split into shards (a Kubernetes Indexed Job's indexes), a shard's results as
JSON, the merge of shards and the summary printed for either.

A shard file is one JSON object: what ran (seeds, strategies, unsafe switches, the fault kinds and
messages a focused sweep draws, index and count) and what came of it (runs per strategy by verdict,
each failure with its first violation and shrunk file). Merging checks the shards belong to one
sweep (same seeds, strategies, switches, focus and count), that no index is there twice, and names
the indexes missing.
"""

import dataclasses
import json
from dataclasses import asdict, dataclass, field

from coordinator.tools.json_fields import fits, typename
from node.mm.profile import DEFAULT_KERNEL, LIVE
from node.sim.noise import NONE

FORMAT = "pcpsim-sweep-shard/2"  # /2: no wall time (one seed, one file, whatever the host)
MAX_SEED = 2**31 - 1  # scenario.parse's bound on a scenario's seed
# The most seeds one command takes. A sweep runs about 0.4 seeds a second on 2 cores (docs/sweep.md),
# so a million is a month of a large cluster's Indexed Job; every shard of it parses the whole list.
# Without a bound, "0-2147483647" would build a list of 2**31 ints (some 70 GB) before anything ran.
MAX_SEEDS = 1_000_000
VERDICTS = ("valid", "invalid", "unknown", "error")  # error: the run raised, its text is the violation


class ShardError(ValueError):
    pass


def parse_seeds(text: str) -> list[int]:
    """ "1-1000", "7" or a comma list of both, as sorted distinct seeds; a seed named twice is refused."""
    ranges = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise ShardError(f"bad seed range {part.strip()!r}: expected N or N-M") from None
        if not 0 <= first <= last <= MAX_SEED:
            raise ShardError(f"bad seed range {part.strip()!r}: need 0 <= N <= M <= {MAX_SEED}")
        ranges.append(range(first, last + 1))
    if sum(map(len, ranges)) > MAX_SEEDS:
        raise ShardError(f"{text!r} names {sum(map(len, ranges)):,} seeds: at most {MAX_SEEDS:,} in one command")
    seeds = [seed for r in ranges for seed in r]
    if len(set(seeds)) != len(seeds):
        raise ShardError(f"a seed is named twice in {text!r}")
    return sorted(seeds)


def shard_of(seeds: list[int], index: int, count: int) -> list[int]:
    """Shard `index` of `count`: contiguous slices, the first len % count one seed longer."""
    if count < 1 or not 0 <= index < count:
        raise ShardError(f"shard index {index} is not in 0..{count - 1}")
    if count > len(seeds):
        raise ShardError(f"{count} shards for {len(seeds)} seeds: some would run none")
    size, extra = divmod(len(seeds), count)
    start = index * size + min(index, extra)
    return seeds[start : start + size + (1 if index < extra else 0)]


@dataclass
class Failure:
    seed: int
    strategy: str
    verdict: str
    first: str  # the first violation (checker finding, or the error's text)
    kinds: list[str]  # every kind of violation the run had, in the checker's order
    faults: int
    cpus: int
    file: str = ""  # the failing scenario as a file
    shrunk: dict = field(default_factory=dict)  # file, faults, cpus, runs, first, kinds (when shrunk)


@dataclass
class Shard:
    seeds: str  # the sweep's --seeds, as given
    strategies: list[str]
    unsafe: list[str]
    index: int
    count: int
    seeds_run: list[int]
    counts: dict[str, dict[str, int]]  # strategy -> verdict -> runs
    failures: list[Failure]
    finding: str | None = None  # the kind of violation hunted (--finding), if any
    max_failures: int | None = None  # --max-failures: the sweep stopped at that many hunted failures
    faults: list[str] = field(default_factory=list)  # --faults: the kinds drawn ([] for all)
    rpc_methods: list[str] = field(default_factory=list)  # --rpc-methods: what rpc rules aim at ([] for all)
    rpc_losses: list[str] = field(default_factory=list)  # --rpc-losses: how they lose it ([] for every way)
    noise: str = NONE  # --noise: the virtual CPUs' host-noise model (node.sim.noise)
    engine: str = "virtual"  # --engine: virtual time, or real processes in wall time
    kernel: str = DEFAULT_KERNEL  # --kernel: the kernel profile of every run (node.mm.profile)

    def to_json(self) -> dict:
        return {"format": FORMAT, **asdict(self)}


def write(shard: Shard, path: str) -> None:
    with open(path, "w") as f:
        json.dump(shard.to_json(), f, indent=1)
        f.write("\n")


def read(path: str) -> Shard:
    """A shard file, every field checked (a ShardError names the file and the field): merge and summary
    then read any field without checking it again."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as err:
        raise ShardError(f"{path}: cannot read: {err.strerror}") from None
    except ValueError as err:
        raise ShardError(f"{path}: not JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ShardError(f"{path}: not a sweep shard (format {FORMAT!r})")
    doc.pop("format")
    try:
        _fields(doc, Shard, "", convert={"failures": _failures})
        shard = Shard(**doc)
        _consistent(shard)
    except ShardError as err:
        raise ShardError(f"{path}: a sweep shard with a bad field: {err}") from None
    return shard


def _failures(failures: list) -> list[Failure]:
    out = []
    for i, f in enumerate(failures):
        if not isinstance(f, dict):
            raise ShardError(f"failures[{i}] is {f!r}, not an object")
        _fields(f, Failure, f"failures[{i}].")
        if f.get("shrunk"):
            _shrunk(f["shrunk"], f"failures[{i}].shrunk.")
        out.append(Failure(**f))
    return out


def _shrunk(shrunk: dict, where: str) -> None:
    """A shrunk failure's summary line reads these."""
    for key, kind in (("faults", int), ("cpus", int), ("runs", int), ("file", str)):
        if not fits(shrunk.get(key), kind):
            raise ShardError(f"{where}{key} is {shrunk.get(key)!r}, not {kind.__name__}")


def _fields(doc: dict, cls, where: str, convert: dict | None = None) -> None:
    """`doc` holds each field of dataclass `cls` (those without a default at least), of its type;
    `convert` turns a field's JSON into its type first (a list of objects into Failures), in place."""
    convert = convert or {}
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise ShardError(f"{where}{unknown[0]} is not a field of a {cls.__name__.lower()}")
    for name, f in known.items():
        if name not in doc:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ShardError(f"{where}{name} is missing")
            continue
        if name in convert and isinstance(doc[name], list):
            doc[name] = convert[name](doc[name])
        if not fits(doc[name], f.type):
            raise ShardError(f"{where}{name} is {doc[name]!r}, not {typename(f.type)}")


def _consistent(s: Shard) -> None:
    """What merge and summary compute with: the seeds parse, the shard is one of `count` (a merge's is
    -1), it ran only its seeds, its counts are of its strategies and verdicts, no count is negative."""
    try:
        seeds = parse_seeds(s.seeds)
    except ShardError as err:
        raise ShardError(f"seeds: {err}") from None
    if s.count < 1 or s.count > len(seeds):
        raise ShardError(f"count is {s.count}, not 1 to {len(seeds)} (the seeds {s.seeds!r})")
    if s.index != -1:
        mine = set(shard_of(seeds, s.index, s.count))
        if not set(s.seeds_run) <= mine:
            raise ShardError(f"seeds_run has seeds not of shard {s.index} of {s.count}")
    for st, by in s.counts.items():
        if st not in s.strategies:
            raise ShardError(f"counts.{st}: not one of the strategies {s.strategies}")
        for v, n in by.items():
            if v not in VERDICTS or n < 0:
                raise ShardError(f"counts.{st}.{v} is {n}: expected a count (>= 0) of {', '.join(VERDICTS)}")
    if s.kernel not in LIVE:
        raise ShardError(f"kernel is {s.kernel!r}, not one of the profiles a cluster runs ({', '.join(LIVE)})")
    if s.max_failures is not None and s.max_failures < 1:
        raise ShardError(f"max_failures is {s.max_failures}, not at least 1")
    for i, f in enumerate(s.failures):
        if f.faults < 0 or f.cpus < 0:
            raise ShardError(f"failures[{i}]: faults {f.faults} and cpus {f.cpus} must not be negative")


def merge(shards: list[tuple[str, Shard]]) -> Shard:
    """One summary of (path, shard) pairs from one sweep; refused if they are not."""
    if not shards:
        raise ShardError("no shards to merge")
    path0, first = shards[0]
    seen: dict[int, str] = {}
    for path, s in shards:
        if _what_ran(s) != _what_ran(first):
            differ = ", ".join(
                f"{k} {getattr(s, k)!r} against {getattr(first, k)!r}"
                for k in WHAT_RAN
                if getattr(s, k) != getattr(first, k)
            )
            raise ShardError(f"{path} is of another sweep than {path0}: {differ}")
        if s.index in seen:
            raise ShardError(f"{path} and {seen[s.index]} are both shard {s.index}")
        seen[s.index] = path
    counts: dict[str, dict[str, int]] = {st: dict.fromkeys(VERDICTS, 0) for st in first.strategies}
    for _, s in shards:
        for st, by in s.counts.items():
            for v, n in by.items():
                counts[st][v] += n
    return Shard(
        seeds=first.seeds,
        strategies=first.strategies,
        unsafe=first.unsafe,
        index=-1,
        count=first.count,
        seeds_run=sorted(x for _, s in shards for x in s.seeds_run),
        counts=counts,
        failures=sorted((f for _, s in shards for f in s.failures), key=lambda f: (f.seed, f.strategy)),
        finding=first.finding,
        faults=first.faults,
        rpc_methods=first.rpc_methods,
        rpc_losses=first.rpc_losses,
        noise=first.noise,
        engine=first.engine,
        kernel=first.kernel,
    )


# What the shards of one sweep share: every flag that decides the seeds' runs.
WHAT_RAN = (
    "seeds",
    "strategies",
    "unsafe",
    "count",
    "finding",
    "faults",
    "rpc_methods",
    "rpc_losses",
    "noise",
    "engine",
    "kernel",
)


def _what_ran(s: Shard) -> tuple:
    return tuple(getattr(s, k) for k in WHAT_RAN)


def missing(shard: Shard) -> list[int]:
    """Indexes of a merged sweep no shard was given for."""
    return [i for i in range(shard.count) if i not in shard_indexes(shard)]


def shard_indexes(shard: Shard) -> set[int]:
    seeds = parse_seeds(shard.seeds)
    run = set(shard.seeds_run)
    return {i for i in range(shard.count) if set(shard_of(seeds, i, shard.count)) <= run}


def summary(shard: Shard, wall_s: float | None = None) -> str:
    """The text printed after a sweep (`wall_s`: how long it took, which the shard file does not hold) or
    a merge (None: the merge ran nothing)."""
    n = len(shard.seeds_run)
    runs = sum(sum(by.values()) for by in shard.counts.values())
    took = "" if wall_s is None else f" in {wall_s:.1f} s" + (f", {n / wall_s:.2f} seeds/s" if wall_s > 0 else "")
    what = f"shard {shard.index} of {shard.count}, " if shard.index >= 0 and shard.count > 1 else ""
    lines = [f"sweep of seeds {shard.seeds}: {what}{n} seeds run ({runs} runs){took}"]
    if shard.engine != "virtual":
        lines.append(f"engine: {shard.engine} (real processes, one run at a time per job: not reproducible)")
    if shard.unsafe:
        lines.append(f"test-only switches on: {', '.join(shard.unsafe)}")
    if shard.noise != NONE:
        lines.append(f"host-noise model: {shard.noise} (node.sim.noise)")
    if shard.kernel != DEFAULT_KERNEL:
        lines.append(f"kernel profile: {shard.kernel} (node.mm.profile)")
    if shard.faults or shard.rpc_methods or shard.rpc_losses:
        kinds = ", ".join(shard.faults) or "every kind"
        aimed = f"; rpc rules aimed at {', '.join(shard.rpc_methods)}" if shard.rpc_methods else ""
        lost = f"; rpc rules losing by {', '.join(shard.rpc_losses)}" if shard.rpc_losses else ""
        lines.append(f"focused: faults of {kinds}{aimed}{lost}")
    if shard.finding:
        hunted = sum(shard.finding in f.kinds for f in shard.failures)
        lines.append(f"hunting {shard.finding}: found in {hunted} runs")
    if shard.max_failures is not None and n < len(parse_seeds(shard.seeds)):
        lines.append(
            f"stopped at seed {shard.seeds_run[-1]}, the {shard.max_failures} hunted failure(s) of --max-failures "
            "found: the seeds after it did not run"
        )
    if shard.index < 0 and (gone := missing(shard)):
        lines.append(f"MISSING shards {gone} of {shard.count}: their seeds did not run")
    lines.append(f"{'strategy':<10} " + " ".join(f"{v:>8}" for v in VERDICTS))
    for st in shard.strategies:
        by = shard.counts.get(st, {})
        lines.append(f"{st:<10} " + " ".join(f"{by.get(v, 0):>8}" for v in VERDICTS))
    for f in shard.failures:
        also = f" (also {', '.join(f.kinds[1:])})" if len(f.kinds) > 1 else ""
        lines.append(f"seed {f.seed} {f.strategy} {f.verdict}: {f.first}{also}")
        lines.append(f"  {f.faults} faults on {f.cpus} CPUs: {f.file}")
        if f.shrunk:
            s = f.shrunk
            lines.append(f"  shrunk to {s['faults']} faults on {s['cpus']} CPUs ({s['runs']} runs): {s['file']}")
    return "\n".join(lines)


def exit_code(shard: Shard) -> int:
    """As `chaos run`: 1 if a run was invalid or raised, else 2 if one was unknown, else 0."""
    total = {v: sum(by.get(v, 0) for by in shard.counts.values()) for v in VERDICTS}
    return 1 if total["invalid"] or total["error"] else 2 if total["unknown"] else 0
