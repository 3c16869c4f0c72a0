"""The shape of one chaos history entry (coordinator.tools.chaos.history): what the checker and the
timeline read of each type of entry, with the types they read it as, so that a history of another shape
is refused by the reader, naming its line, and never met as a traceback in a command (`chaos check`'s
exit 1 would read as "the run is invalid")."""

import dataclasses

from coordinator.tools.chaos.scenario import Fault
from coordinator.tools.json_fields import fits, typename

MAX_S = 1e6  # seconds (11.6 days): longer than any run; a chart's axis or a sum of times stays finite
OUTCOMES = ("ok", "fail", "info")


class Bad(ValueError):
    """What is wrong with one entry (read adds the file and line)."""


def _number(v) -> bool:
    return fits(v, float)


def _time(v) -> bool:
    return _number(v) and -MAX_S <= v <= MAX_S


def _duration(v) -> bool:
    return _number(v) and 0 <= v <= MAX_S


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _text(v) -> bool:
    return isinstance(v, str)


def _want(d: dict, key: str, ok, what: str, where: str = "", optional: bool = False) -> None:
    """d[key] passes `ok`; an absent key passes if `optional`."""
    if key in d:
        if not ok(d[key]):
            raise Bad(f"{where}{key} must be {what}, got {d[key]!r}")
    elif not optional:
        raise Bad(f"{where}{key} is missing ({what})")


def _object(v, where: str) -> dict:
    if not isinstance(v, dict):
        raise Bad(f"{where} must be an object, got {v!r}")
    return v


def _list(d: dict, key: str, where: str = "") -> list:
    """d[key] if it is a list, [] if absent."""
    _want(d, key, lambda v: isinstance(v, list), "a list", where, optional=True)
    return d.get(key, [])


def check(e) -> None:
    """One entry's shape, by its type; Bad says what is wrong (the reader adds the file and line)."""
    _object(e, "the entry")
    _want(e, "t", _time, f"a number of seconds from {-MAX_S:g} to {MAX_S:g}")
    for key in ("process", "type", "f"):
        _want(e, key, _text, "text")
    if e["f"] == "drain" and e["process"] == "workload" and e["type"] not in ("invoke", *OUTCOMES):
        raise Bad(f"a drain's type must be invoke, {', '.join(OUTCOMES)}, got {e['type']!r}")  # the checker counts each
    if e["type"] in ("invoke", *OUTCOMES):
        _operation(e)
    elif e["type"] in BY_TYPE:
        BY_TYPE[e["type"]](e)


def _operation(e: dict) -> None:
    """An operation's invoke or outcome: the checker pairs a drain's by index, the timeline any by it."""
    drain = e["f"] == "drain" and e["process"] == "workload"
    _want(e, "index", _whole, "a whole number", optional=not drain)
    _want(e, "error", _text, "text", optional=True)
    _parts(e, "")
    for i, d in enumerate(_list(e, "drains")):  # alloc-contig's
        _parts(_object(d, f"drains[{i}]"), f"drains[{i}].")
    if e["f"] == "alloc-contig" and e["type"] == "ok":  # the checker sums the pages the workload holds
        _want(e, "nr_pages", _whole, "a whole number")


def _parts(d: dict, where: str) -> None:
    """A drain's marked CPUs and parts: the checker looks for each drained part on its node, and the
    timeline names a failed one and its error."""
    for i, cpu in enumerate(_list(d, "cpus_marked", where)):
        if not _whole(cpu):
            raise Bad(f"{where}cpus_marked[{i}] must be a CPU number, got {cpu!r}")
    for i, c in enumerate(_list(d, "cpus", where)):
        at = f"{where}cpus[{i}]."
        _want(_object(c, f"{where}cpus[{i}]"), "ok", lambda v: isinstance(v, bool), "true or false", at, optional=True)
        _want(c, "cpu", _whole, "a CPU number", at)
        _want(c, "pages", _whole, "a whole number", at, optional=True)
        if not c.get("ok", True):
            _want(c, "error", _text, "text", at)


def _fault(e: dict) -> None:
    _want(e, "phase", lambda v: v in ("start", "heal"), '"start" or "heal"')
    _want(e, "what", _text, "text", optional=True)
    _want(e, "cpu", _whole, "a CPU number", optional=True)


def _observe(e: dict) -> None:
    if e["f"] in ("pcp-lock-free", "pcp-lock-still-held"):  # the checker's lock lease findings
        _want(e, "after_s", _duration, "a number of seconds")
        _want(e, "held_seen_s", _duration, "a number of seconds", optional=True)
        _want(e, "cpu", _whole, "a CPU number")


def _meta(e: dict) -> None:
    if e["f"] == "clock":  # transfers.load puts the transfer logs on the history's clock with it
        _want(e, "monotonic_t0", _number, "a number of seconds")
    if e["f"] != "scenario":
        return
    for key in ("bound_s", "lease_s"):
        _want(e, key, lambda v: _duration(v) and v > 0, "a positive number of seconds")
    scenario = _object(e.get("scenario", {}), "scenario")
    _want(scenario, "description", _text, "text", "scenario.", optional=True)
    for i, f in enumerate(_list(scenario, "faults", "scenario.")):
        _fault_spec(f, f"scenario.faults[{i}]")


def _fault_spec(f, where: str) -> None:
    """A fault as the scenario's dataclass holds it: the checker rebuilds it (Fault(**f))."""
    fields = {x.name: x for x in dataclasses.fields(Fault)}
    unknown = sorted(set(_object(f, where)) - set(fields))
    if unknown:
        raise Bad(f"{where} has unknown fields {', '.join(map(str, unknown))}")
    for name, x in fields.items():
        required = x.default is dataclasses.MISSING
        _want(f, name, lambda v, tp=x.type: fits(v, tp), typename(x.type), f"{where}.", optional=not required)


def _final(e: dict) -> None:
    check = FINALS.get(e["f"])
    if check is not None:
        check(e)


def _audit(e: dict) -> None:
    for key in ("lost", "duplicated", "unexpected"):
        _want(e, key, _whole, "a whole number", optional=True)
    for key in ("lost_pfns", "duplicated_pfns", "errors"):
        _list(e, key)
    _want(_object(e.get("where", {}), "where"), "cma", _whole, "a whole number", "where.", optional=True)


def _grants(e: dict) -> None:
    _list(e, "unreachable")
    for cpu, records in _object(e.get("cpus", {}), "cpus").items():
        if not (cpu.isascii() and cpu.isdigit()) or not isinstance(records, list):
            raise Bad(f"cpus: expected a CPU number mapped to a list of grant records, got {cpu!r}")
        for i, r in enumerate(records):
            _grant(_object(r, f"cpus.{cpu}[{i}]"), f"cpus.{cpu}[{i}].")


def _grant(r: dict, where: str) -> None:
    """A remote grant's record: every one ended but one still held has held_s."""
    _want(r, "outcome", _text, "text", where)
    _want(r, "token", lambda v: True, "the grant's token", where)
    _want(r, "pages", _whole, "a whole number", where)
    _want(r, "lease_s", _duration, "a number of seconds", where)
    held = r.get("outcome") == "held"
    _want(r, "held_s", lambda v: _duration(v) or (held and v is None), "a number of seconds", where)
    _want(r, "granted_t", lambda v: v is None or _time(v), "a number of seconds", where, optional=True)
    _want(r, "read_t", _time, "a number of seconds", where, optional=True)
    _want(r, "stale_commits_refused", _whole, "a whole number", where, optional=True)


PROGRESS = (("allocs_after", "allocs_at_heal"), ("refused_after", "refused_at_heal"), ("runs_after", "runs_at_heal"))


def _tasks(e: dict) -> None:
    for cpu, t in _object(e.get("cpus", {}), "cpus").items():
        where = f"cpus.{cpu}."
        _object(t, f"cpus.{cpu}")
        for after, at_heal in PROGRESS:
            if after in t and not t.get("error"):  # the checker compares the two
                _want(t, after, _number, "a number", where)
                _want(t, at_heal, _number, "a number", where)


BY_TYPE = {"fault": _fault, "observe": _observe, "meta": _meta, "final": _final}
FINALS = {"audit": _audit, "grants": _grants, "tasks": _tasks}
