"""Figures over a time window, from a process's /metrics: counters and histograms are read
at the start and at the end, and only what happened in between counts (as Prometheus'
increase() and histogram_quantile() read them)."""

import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = list[tuple[str, dict, float]]


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5.0) as resp:
        text = resp.read().decode()
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def over(addresses: list[str], window_s: float) -> tuple[list[Samples], list[Samples]]:
    """Every address's samples at the start and at the end of a `window_s` window."""
    before = [scrape(a) for a in addresses]
    time.sleep(window_s)
    return before, [scrape(a) for a in addresses]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the series whose labels include `labels`."""
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items()))


def increase(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def quantile_bound(before: Samples, after: Samples, name: str, q: float, **labels: str) -> float:
    """The upper bound of the bucket holding the q-quantile of the histogram `name`'s observations
    in the window (0 if there were none): what the figure is at most, at the buckets' resolution."""
    start, end = _buckets(before, name, labels), _buckets(after, name, labels)
    counts = [(bound, end[bound] - start.get(bound, 0.0)) for bound in sorted(end)]
    if not counts or counts[-1][1] <= 0:
        return 0.0
    rank = q * counts[-1][1]
    return next(bound for bound, c in counts if c >= rank)


def _buckets(samples: Samples, name: str, labels: dict) -> dict[float, float]:
    """Cumulative count per bucket bound (+Inf included), summed over the matching series."""
    out: dict[float, float] = {}
    for n, lab, v in samples:
        if n == name + "_bucket" and all(lab.get(k) == x for k, x in labels.items()):
            out[float(lab["le"])] = out.get(float(lab["le"]), 0.0) + v
    return out
