"""Small statistics helpers for reports (no numpy needed for a few thousand samples)."""

import math


def percentile(values, q: float) -> float:
    """Nearest-rank percentile, q in [0, 100]; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values) -> dict:
    """count, p50, p99 and max of `values` (seconds)."""
    return {
        "count": len(values),
        "p50_s": percentile(values, 50),
        "p99_s": percentile(values, 99),
        "max_s": max(values, default=0.0),
    }
