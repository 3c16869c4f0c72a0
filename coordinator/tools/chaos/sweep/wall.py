"""`chaos sweep --engine wall`'s runner: each seed's scenario on a local cluster of real processes.

Apart from the driver, which the sweep's virtual-time workers import without grpc (tests/unit/test_layering.py).
"""

import io

from coordinator.tools.chaos import checker, runner
from coordinator.tools.chaos import scenario as sc


def run(runs_dir: str, scenario: sc.Scenario, strategy: str) -> checker.Verdict:
    """One run as `chaos run` makes it, its run directory under `runs_dir`: the history and logs a failure
    needs, since a wall run does not replay. Its progress lines are kept out of the sweep's summary. A
    sweep's plan takes it as functools.partial(run, runs_dir)."""
    return runner.run(scenario, strategy, runs_dir, stream=io.StringIO())
