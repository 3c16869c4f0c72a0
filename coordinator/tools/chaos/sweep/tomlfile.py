"""A Scenario as a scenario file: TOML text that scenario.load reads back to an equal Scenario.

The standard library reads TOML (tomllib) but does not write it, and a scenario's schema is flat
(top-level keys, two tables, an array of tables, values that are strings, numbers, booleans and
lists of strings), so this small writer covers it rather than a dependency (tomli-w). Strings are
written as JSON strings, whose escapes (\\", \\\\, \\n, \\uXXXX) are TOML basic-string escapes;
floats as repr, which TOML reads back to the same float.
"""

import json

from coordinator.tools.chaos import scenario as sc


def dumps(scenario: sc.Scenario, comment: str = "") -> str:
    """The file's text; `comment` (lines) goes first, each line as a TOML comment."""
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    top = to_doc(scenario)
    tables = {k: top.pop(k) for k in ("cluster", "workload")}
    faults = top.pop("faults")
    lines += [f"{k} = {_value(v)}" for k, v in top.items()]
    for name, table in tables.items():
        lines += ["", f"[{name}]", *(f"{k} = {_value(v)}" for k, v in table.items())]
    for fault in faults:
        lines += ["", "[[faults]]", *(f"{k} = {_value(v)}" for k, v in fault.items())]
    return "\n".join(lines) + "\n"


def to_doc(scenario: sc.Scenario) -> dict:
    """The scenario as the document scenario.parse takes (what tomllib would read from dumps)."""
    c, w = scenario.cluster, scenario.workload
    cluster = {
        "cpus": c.cpus,
        "isolated": _cpu_list(c.isolated),
        "rt": _cpu_list(c.rt),
        "zone_mb": c.zone_mb,
        "zone_used": c.zone_used,
        "lease_ms": c.lease_ms,
        "failure_timeout_ms": c.failure_timeout_ms,
        "dead_timeout_ms": c.dead_timeout_ms,
        "flush_timeout_ms": c.flush_timeout_ms,
    }
    if c.noise != sc.ClusterSpec.noise:  # the default is left out, as in the shipped files
        cluster["noise"] = c.noise
    if c.kernel != sc.ClusterSpec.kernel:
        cluster["kernel"] = c.kernel
    cluster |= {k: True for k in (*sc.NODE_UNSAFE, *sc.COORDINATOR_UNSAFE) if getattr(c, k)}
    return {
        "name": scenario.name,
        **({"description": scenario.description} if scenario.description else {}),  # "" is the default, not a value
        "seed": scenario.seed,
        "duration_s": scenario.duration_s,
        "heal_s": scenario.heal_s,
        "strategies": list(scenario.strategies),
        "cluster": cluster,
        "workload": {
            "drain_interval_ms": w.drain_interval_ms,
            "force_all_cpus": w.force_all_cpus,
            "cma_pages": w.cma_pages,
            # Only if it matters or is not the default: parse bounds it by the fault window even
            # when no range is taken, which would refuse a shrunk window shorter than the default.
            **({"cma_at_s": w.cma_at_s} if w.cma_pages or w.cma_at_s != sc.WorkloadSpec.cma_at_s else {}),
        },
        "faults": [_fault(f) for f in scenario.faults],
    }


def _fault(f: sc.Fault) -> dict:
    doc: dict = {"kind": f.kind, "at_s": f.at_s, "heal_after_s": f.heal_after_s}
    needs_cpu, extra = sc.KINDS[f.kind]
    if f.cpu is not None and (needs_cpu or "cpu" in extra):
        doc["cpu"] = f.cpu
    if f.kind == "rpc":
        doc |= {"side": f.side, "direction": f.direction, "method": f.method}
        doc |= {k: getattr(f, k) for k in ("delay_ms", "drop", "drop_reply", "fail") if getattr(f, k)}
    doc |= {k: getattr(f, k) for k in extra if k in ("factor", "resume_after_s")}
    return doc


def _cpu_list(cpus: tuple) -> str:
    return ",".join(str(c) for c in cpus)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")  # DEL: TOML escapes it, JSON does not
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {v!r} here")
