"""compare's acceptance: the claims a compare results file must hold, whichever engine wrote it (issue 15's
cross-validation; the README's reference run and docs/benchmarks.md's seeds show them on the wall engine).

- the isolated preemptible task's wake-up p99 under workqueue is at least 3x its p99 under remote;
- under remote it is at most 2x the noise floor's;
- workqueue's drain_all_pages max is at least 2x remote's;
- remote's drain spread (p99/p50) is smaller than workqueue's;
- no drain work item ran on an isolated CPU under remote, rcu-swap or qpw (which drains remotely as
  soon as a CPU is isolated: coordinator.drain.qpw);
- every phase's audit is clean: ok, nothing lost or duplicated (the noise floor's too).
Ratios are checked as products (a >= 3 * b), so a zero figure (the virtual engine's noise floor has no
host noise) compares without dividing by it. A claim about a strategy the results lack is left out, and
so is one about the preemptible task where the task set has none (an rt-app set of RT tasks only).
"""

from dataclasses import dataclass

NO_WORK_ON_ISOLATED = ("remote", "rcu-swap", "qpw")


@dataclass(frozen=True)
class Claim:
    text: str
    held: bool
    figures: str  # the figures it was judged on


def _us(s: float, scale: float) -> str:
    return f"{s / scale * 1e6:.1f} us"


def claims(result: dict) -> list[Claim]:
    """Every claim that applies to `result` (a compare results file), in the module docstring's order."""
    s, scale = result["strategies"], result["time_scale"]
    out = []
    wq, remote = s.get("workqueue"), s.get("remote")
    preemptible = result["noise_floor"]["wake_latency_p99_s"] is not None
    if wq and remote and preemptible:
        a = wq["isolated_preemptible"]["wake_latency_p99_s"]
        b = remote["isolated_preemptible"]["wake_latency_p99_s"]
        out.append(
            Claim("preemptible wake p99: workqueue >= 3x remote", a >= 3 * b, f"{_us(a, scale)} vs {_us(b, scale)}")
        )
    if remote and preemptible:
        b, floor = remote["isolated_preemptible"]["wake_latency_p99_s"], result["noise_floor"]["wake_latency_p99_s"]
        out.append(
            Claim(
                "preemptible wake p99: remote <= 2x the noise floor",
                b <= 2 * floor,
                f"{_us(b, scale)} vs {_us(floor, scale)}",
            )
        )
    if wq and remote:
        a, b = wq["drain_all"]["max_s"], remote["drain_all"]["max_s"]
        out.append(
            Claim("drain_all_pages max: workqueue >= 2x remote", a >= 2 * b, f"{_us(a, scale)} vs {_us(b, scale)}")
        )
        (a99, a50), (b99, b50) = ((x["drain_all"]["p99_s"], x["drain_all"]["p50_s"]) for x in (wq, remote))
        out.append(
            Claim(
                "drain p99/p50: remote < workqueue",
                b99 * a50 < a99 * b50,
                f"{b99 / b50 if b50 else float('inf'):.2f} vs {a99 / a50 if a50 else float('inf'):.2f}",
            )
        )
    for name in (n for n in NO_WORK_ON_ISOLATED if n in s):
        tasks = [s[name][t] for t in ("isolated_preemptible", "isolated_rt") if t in s[name]]
        items = sum(task["drain_work_items"] for task in tasks)
        out.append(Claim(f"no drain work on isolated CPUs under {name}", items == 0, f"{items} work items"))
    audits = {"noise_floor": result["noise_floor"]["audit"], **{name: x["audit"] for name, x in s.items()}}
    dirty = [name for name, a in audits.items() if not (a["ok"] and not a["lost"] and not a["duplicated"])]
    out.append(Claim("every audit clean", not dirty, "dirty: " + ", ".join(dirty) if dirty else "all ok"))
    return out


def format_claims(found: list[Claim]) -> str:
    return "\n".join(f"{'held  ' if c.held else 'FAILED'} {c.text:50} {c.figures}" for c in found)
