"""A `pcpsim compare` results file, read and checked: every field a view of `pcpsim report` (terminal,
PNG, HTML, `--against`) reads is checked once, at load, with bounds, so no view meets a missing or
out-of-range field halfway through (coordinator.tools.report holds the views)."""

import json

from coordinator.tools import compare_table
from coordinator.tools.json_fields import fits

# Bounds of what a results file may hold where a view converts it (kus, round, a chart's axis): a value
# out of them is refused when the file is loaded, not met as a traceback halfway through a view.
MAX_S = 86_400.0  # a day: longer than any compare run, so than any time (wall or kernel seconds) it records
MAX_COUNT = 2**53  # a count a view multiplies by a float stays exact (and converts at all)
MAX_BUCKET_KERNEL_US = 10**7  # 10 kernel seconds: a survival curve draws every bucket up to the largest
TIME_SCALES = (1e-3, 1e6)  # wall seconds per kernel second: compare writes 1 (virtual) or 250 (wall)
WINDOW_LANES = ("task", "work", "lock", "fallback")  # a drain window's event lanes (node.api's CpuEvent)


class ReportError(ValueError):
    """The results file cannot be read or is not a compare results file."""


def load_results(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except OSError as err:
        raise ReportError(f"cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise ReportError(f"{path} is not valid JSON: {err}") from None
    try:
        validate(result)
    except ReportError as err:
        raise ReportError(f"{path} is not a pcpsim compare results file: {err}") from None
    return result


def validate(result) -> None:
    """Raise ReportError naming the first missing, mistyped or out-of-range field a view reads. Every
    view (terminal, PNG, HTML, --against) then reads any field without checking it again."""
    if not isinstance(result, dict):
        raise ReportError(f"top level is a {type(result).__name__}, not an object")
    if "phases" not in result:
        raise ReportError("no 'phases' (per-CPU data); it may predate `pcpsim report`: rerun `pcpsim compare`")
    lo, hi = TIME_SCALES
    if not fits(result.get("time_scale"), float) or not lo <= result["time_scale"] <= hi:
        raise ReportError(
            f"time_scale must be a positive number from {lo:g} to {hi:g}, got {result.get('time_scale')!r}"
        )
    if "hist_bucket_kernel_us" in result:
        _count("hist_bucket_kernel_us", result["hist_bucket_kernel_us"], lo=1, hi=MAX_BUCKET_KERNEL_US)
    if not isinstance(result["phases"], dict) or not result["phases"]:
        raise ReportError("'phases' must be a non-empty object")
    for name, phase in result["phases"].items():
        _phase(f"phases.{name}", phase)
    validate_table(result)


def validate_table(result: dict) -> None:
    """What compare's table (coordinator.tools.compare_table) reads: config and noise_floor objects, each
    strategy's drain durations and the fields of its rows, where present."""
    for key in ("config", "noise_floor"):
        _object(key, result.get(key, {}))
    floor = result.get("noise_floor", {}).get("wake_latency_p99_s")
    if floor is not None:  # None: the task set has no preemptible task
        _time("noise_floor.wake_latency_p99_s", floor)
    for name, s in _object("strategies", result.get("strategies")).items():
        _strategy(f"strategies.{name}", s)


def _phase(where: str, phase) -> None:
    cpus = phase.get("cpus") if isinstance(phase, dict) else None
    if not isinstance(cpus, dict):
        raise ReportError(f"{where}.cpus is missing")
    for cpu, d in cpus.items():
        if not _digits(cpu) or not isinstance(d, dict):
            raise ReportError(f"{where}.cpus.{cpu}: expected a CPU number mapped to an object")
        for key, check in CPU_FIELDS.items():
            check(f"{where}.cpus.{cpu}.{key}", d.get(key))
    if "drain_window" in phase:
        validate_window(f"{where}.drain_window", phase["drain_window"])


def _strategy(where: str, s) -> None:
    durations = _object(f"{where}.drain_all", _object(where, s).get("drain_all")).get("durations_s")
    if not isinstance(durations, list):
        raise ReportError(f"{where}.drain_all.durations_s must be a list of numbers")
    for i, x in enumerate(durations):
        _time(f"{where}.drain_all.durations_s[{i}]", x)
    rows = [(path, kind) for _, path, kind in compare_table.ROWS if path]
    for path, kind in [*rows, ("audit.lost", "n"), ("audit.duplicated", "n")]:  # the audit row reads two
        value = _at(where, s, path)
        if value is not None:
            ROW_KINDS[kind](f"{where}.{path}", value)


def _at(where: str, s: dict, path: str):
    """The value at a dotted path of strategy `s`, None where absent or empty, as compare_table.field
    reads it; a step on the way that is there but not an object is refused (field would skip it)."""
    keys = path.split(".")
    for i, key in enumerate(keys[:-1]):
        s = _object(f"{where}.{'.'.join(keys[: i + 1])}", s.get(key, {}))
    value = s.get(keys[-1])
    return None if value == {} else value


def validate_window(where: str, w) -> None:
    """A drain window (coordinator.tools.compare.drain_window): raise ReportError naming the bad field."""
    _object(where, w)
    _text(f"{where}.trigger", w.get("trigger"))
    _time(f"{where}.duration_s", w.get("duration_s"))
    for key in ("from_s", "to_s"):  # from the drain's start: the window opens before it
        _time(f"{where}.{key}", w.get(key), lo=-MAX_S)
    if not w["from_s"] < w["to_s"]:
        raise ReportError(f"{where}: from_s {w['from_s']} must be below to_s {w['to_s']}")
    marked = w.get("cpus_marked")
    if not isinstance(marked, list):
        raise ReportError(f"{where}.cpus_marked must be a list of CPU numbers")
    for i, c in enumerate(marked):
        _count(f"{where}.cpus_marked[{i}]", c)
    if not isinstance(w.get("cpus"), dict):
        raise ReportError(f"{where}.cpus is missing")
    for cpu, events in w["cpus"].items():
        if not _digits(cpu) or not isinstance(events, list):
            raise ReportError(f"{where}.cpus: expected a CPU number mapped to a list of events, got {cpu!r}")
        for i, e in enumerate(events):
            at = f"{where}.cpus.{cpu}[{i}]"
            if not isinstance(e, dict) or e.get("lane") not in WINDOW_LANES:
                raise ReportError(f"{at}.lane must be one of {', '.join(WINDOW_LANES)}")
            _text(f"{at}.kind", e.get("kind"))
            for key in ("start_s", "end_s"):
                _time(f"{at}.{key}", e.get(key), lo=-MAX_S)


def _refuse(where: str, v, want: str):
    return ReportError(f"{where} is missing or not {want}" if v is None else f"{where} is {v!r}, not {want}")


def _object(where: str, v) -> dict:
    if not isinstance(v, dict):
        raise _refuse(where, v, "an object")
    return v


def _text(where: str, v) -> None:
    if not isinstance(v, str):
        raise _refuse(where, v, "a str")


def _time(where: str, v, lo: float = 0.0) -> None:
    """Seconds, finite and within a day of 0 (`lo` -MAX_S: a time relative to an instant)."""
    if not fits(v, float) or not lo <= v <= MAX_S:
        raise _refuse(where, v, f"a number from {lo:g} to {MAX_S:g} (seconds)")


def _count(where: str, v, lo: int = 0, hi: int = MAX_COUNT) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise _refuse(where, v, f"a whole number from {lo} to {hi}")


def _flag(where: str, v) -> None:
    if not isinstance(v, bool):
        raise _refuse(where, v, "true or false")


def _by_cause(check):
    """A check of an object {cause: value}, each value by `check`."""

    def by_cause(where: str, v) -> None:
        for cause, x in _object(where, v).items():
            check(f"{where}.{cause}", x)

    return by_cause


def _histogram(where: str, v) -> None:
    for bucket, count in _object(where, v).items():
        if not _digits(bucket) or int(bucket) > MAX_BUCKET_KERNEL_US:
            raise ReportError(f"{where} has bucket {bucket!r}: expected kernel us from 0 to {MAX_BUCKET_KERNEL_US}")
        _count(f"{where}.{bucket}", count)


def _digits(key: str) -> bool:
    """A CPU number or bucket as a JSON key: ASCII digits (str.isdigit takes '²' too, which int refuses)."""
    return key.isascii() and key.isdigit()


# What each field of `phases.<phase>.cpus.<cpu>` must hold.
CPU_FIELDS = {
    "role": _text,
    "kind": _text,
    "period_s": _time,
    "wake_latency_hist_kernel_us": _histogram,
    "wake_latency_min_s": _time,
    "wake_latency_avg_s": _time,
    "wake_latency_max_s": _time,
    "wake_latency_last_s": _time,
    "runs": _count,
    "deadline_misses": _count,
    "stolen_s": _by_cause(_time),
    "noise_events": _by_cause(_count),
    "max_single_noise_s": _time,
    "drain_work_items": _count,
    "drain_wait_max_s": _time,
}
# What each kind of row of compare_table.ROWS must hold, where present.
ROW_KINDS = {"t": _time, "gp": _time, "n": _count, "b": _flag, "causes": _by_cause(_count)}
