"""The virtual driver (node.virtual): node.cpu's rule and node.tasks' sources in virtual time, where one
seed gives one byte-identical event log, and the scheduling rule's effects are exact instants."""

import hashlib
import random
import threading
import time

import pytest

from node.cpu import MEMBERSHIP, OPERATOR
from node.virtual import run as vrun
from node.virtual.fiber import Fiber
from node.virtual.run import VirtualCluster
from tests import hashseed

ROLES = ("housekeeping", "isolated-preemptible", "isolated-rt", "housekeeping")
HORIZON_S = 1.5e-3  # kernel time: 75 housekeeping periods, 18 preemptible wake-ups, two RT ones


def run_text(seed: int, roles=ROLES, horizon=HORIZON_S) -> str:
    cluster = VirtualCluster(roles, seed)
    try:
        cluster.run(horizon)
    finally:
        cluster.close()
    return cluster.text()


def test_one_seed_gives_a_byte_identical_event_log_and_another_seed_another():
    first = run_text(7)
    assert first == run_text(7)
    assert first != run_text(8)
    steps = [line for line in first.splitlines() if " step " in line]
    assert {line.split()[3] for line in steps} == {"Housekeeping", "IrqSource", "LatencyTask"}
    assert "errors 0" in first and " errors " not in first.replace("errors 0", "")


# The event log of seed 7 on ROLES to HORIZON_S (run_text(7)), as this repository's code writes it.
GOLDEN_DIGEST = "7f596656bec61494fbbd2468c655104e86c5f7e74b8a8e474a71123c7f23004c"


def test_seed_7_gives_the_committed_digest_on_every_machine():
    """One seed's event log, hashed, is the same on every machine that runs this code: the promise that
    a run can be replayed elsewhere. Its draws use no C library function (IrqSource's exponential
    gaps take node.sim.ieee's log) and its arithmetic rounds once (node.sim.fpu), which makes the same
    bytes on x86_64, aarch64 and 32-bit x86 (tests/machines); the RngTree's streams are random.Random,
    whose algorithms a new Python version may change; this test is where that shows.

    When it fails, ask first whether the commit under test changes what the engine does:
    - it does (a rule, a cost, a workload default, what the log records): the new digest is the new
      truth; update GOLDEN_DIGEST in that same commit and say in its message which change moved it;
    - it does not (the same commit passes elsewhere: another machine, libm, Python version): this is
      a determinism break, not a number to update. Run the same seed on both machines, diff their
      run_text(7) outputs, and fix what the first differing line comes from.
    """
    text = run_text(7)
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert digest == GOLDEN_DIGEST, f"determinism break or an unannounced change: see this test's docstring\n{text}"


def test_the_digest_is_the_logs_hash_kept_or_not_and_read_at_any_moment():
    """The log goes into the digest in chunks (VirtualCluster.note): a run longer than one chunk, and its
    digest read mid-run (a chunk half full), give the same digest as its whole text hashed, and as a run
    that keeps no log; the text and the log hold every line once, in order."""
    roles, horizon = ("housekeeping",) * 2, 0.05  # ~10,000 lines: two whole chunks and part of a third
    peeked = VirtualCluster(roles, 7)
    bare = VirtualCluster(roles, 7, keep_log=False)
    try:
        peeked.run(horizon / 3)
        mid = peeked.digest()
        assert mid == hashlib.sha256(peeked.text().encode()).hexdigest()
        for cluster in (peeked, bare):
            cluster.run(horizon)
    finally:
        peeked.close()
        bare.close()
    lines = list(peeked.log)  # read before the text: the log property holds every line so far
    text = peeked.text()
    assert len(lines) > 2 * vrun._CHUNK_LINES and text.startswith("\n".join(lines) + "\n")
    times = [float(line.split()[0]) for line in lines]
    assert times == sorted(times)
    assert peeked.digest() == bare.digest() == hashlib.sha256(text.encode()).hexdigest() != mid
    assert bare.log == []


def test_the_log_does_not_depend_on_the_hash_seed():
    """Set iteration order follows PYTHONHASHSEED for strings; no decision may depend on it."""
    code = (
        "from node.virtual.run import VirtualCluster\n"
        f"c = VirtualCluster({list(ROLES)!r}, 7)\n"
        "c.run(5e-4)\nc.close()\nprint(c.digest())\n"
    )
    assert len(hashseed.outputs(code, timeout=120)) == 1


def test_a_virtual_run_reads_no_wall_clock_draws_no_unseeded_number_and_waits_on_no_thread(monkeypatch):
    """Every time.* clock and sleep, the random module's shared generator, and every blocking wait of
    threading (fibers share one thread: such a wait would hang it) raise during the run."""

    def leak(*args, **kwargs):
        raise AssertionError("the virtual engine read the wall clock or drew an unseeded number")

    for name in ("monotonic", "monotonic_ns", "time", "time_ns", "perf_counter", "perf_counter_ns", "sleep"):
        monkeypatch.setattr(time, name, leak)
    for name in ("random", "uniform", "choice", "choices", "randrange", "randint", "expovariate", "shuffle"):
        monkeypatch.setattr(random, name, leak)
    for cls, name in ((threading.Condition, "wait"), (threading.Event, "wait"), (threading.Thread, "start")):
        monkeypatch.setattr(cls, name, leak)
    text = run_text(3, horizon=5e-4)
    assert "errors 0" in text


def queue_busy_work(cluster, cpu: int, at: float, seconds: float) -> list:
    """A work item that occupies `seconds`, queued on `cpu` at virtual time `at` (as QueueWork would)."""
    items = []
    target = cluster.cpus[cpu]
    cluster.queue.at(at, lambda: items.append(target.queue_work("workqueue", lambda: target.occupy(seconds))))
    return items


@pytest.fixture
def isolated():
    cluster = VirtualCluster(("isolated-preemptible", "isolated-rt"), seed=1)
    yield cluster
    cluster.close()


def test_queued_work_runs_at_the_preemptible_tasks_next_preemption_point(isolated):
    """Its first wake-up is at 80 us (period 20 ms wall / 250), its busy phase 16 us in 2 us slices."""
    items = queue_busy_work(isolated, 0, 88e-6, 8e-6)
    isolated.run(150e-6)
    (item,) = items
    assert item.done and 0 <= item.started_at - item.queued_at <= 2e-6 + 1e-12
    task = isolated.cpus[0].sources[0]
    assert task.totals.stolen_s["workqueue"] == pytest.approx(8e-6)


def test_queued_work_waits_for_the_rt_tasks_whole_busy_phase(isolated):
    """Its first wake-up is at 1 ms (period 250 ms wall / 250), its busy phase 600 us unbroken."""
    items = queue_busy_work(isolated, 1, 1.2e-3, 8e-6)
    isolated.run(2e-3)
    (item,) = items
    task = isolated.cpus[1].sources[0]
    ((start, done, _),) = task.activations.between(item.queued_at, item.queued_at)
    assert start < item.queued_at < done <= item.started_at
    assert item.started_at - item.queued_at > 400e-6


@pytest.mark.parametrize("by, runs_work", [(MEMBERSHIP, False), (OPERATOR, True)])
def test_a_paused_cpu_runs_no_task_and_queued_work_only_if_membership_does_not_hold_it(isolated, by, runs_work):
    """The rule of node.sched under virtual time: held paused from 10 us to 200 us, the preemptible task
    (due at 80 us) never runs; work queued at 20 us runs at once unless MEMBERSHIP holds the CPU, and
    then at the instant the hold is dropped."""
    cpu, task = isolated.cpus[0], isolated.cpus[0].sources[0]
    isolated.run(10e-6)
    cpu.set_paused(True, by=by)
    items = queue_busy_work(isolated, 0, 20e-6, 1e-6)
    isolated.run(200e-6)
    (item,) = items
    assert cpu.parked and task.totals.runs == 0
    assert item.done == runs_work
    cpu.set_paused(False, by=by)
    isolated.run(300e-6)
    assert item.done and item.started_at == (20e-6 if runs_work else 200e-6)
    assert task.totals.runs == 1  # its period restarted at 200 us: due at 280 us


def test_a_fiber_runs_only_between_resume_and_suspend_and_close_unwinds_it():
    trace = []

    def main():
        try:
            trace.append("a")
            fiber.suspend()
            trace.append("b")
            fiber.suspend()
            trace.append("never")
        finally:
            trace.append("unwound")

    fiber = Fiber("t", main)
    fiber.resume()
    assert trace == ["a"]
    fiber.resume()
    assert trace == ["a", "b"]
    fiber.close()
    assert trace == ["a", "b", "unwound"] and fiber.done


def test_an_error_inside_a_fiber_is_raised_by_resume():
    fiber = Fiber("t", lambda: [][0])
    with pytest.raises(IndexError):
        fiber.resume()
    assert fiber.done


def test_a_killed_cpus_process_ends_where_it_waits_and_a_restart_builds_a_new_one():
    """SIGKILL ends the process's code mid-call (its fiber closed at its suspension point, never
    resumed); the new process starts from nothing (no page, no allocation, no task state), on the same
    CPU with its cost factor, and runs. Found by the 1,000-seed sweep (seed 52): a restart used to
    resume the killed process's call stack."""
    cluster = VirtualCluster(("housekeeping", "idle"), seed=3)
    try:
        cluster.run(0.002)
        old, old_alloc = cluster.cpus[0], cluster.allocs[0]
        assert old_alloc.allocs > 0 and not old.fiber.done
        old.slowdown = 3.0
        with pytest.raises(RuntimeError, match="still runs"):
            cluster.restart(0)
        cluster.kill(0)
        assert old.fiber.done
        allocs = old_alloc.allocs
        cluster.restart(0)
        new = cluster.cpus[0]
        assert new is not old and cluster.allocs[0] is not old_alloc and cluster.pcps[0].count == 0
        assert new.slowdown == 3.0 and cluster.allocs[0].allocs == 0
        cluster.run(0.004)
        assert cluster.allocs[0].allocs > 0 and old_alloc.allocs == allocs  # the old one never ran again
    finally:
        cluster.close()


def test_a_slow_cpus_stretch_runs_the_rest_of_its_work_at_full_speed_once_healed():
    """slow-cpu: a stretch of 1 s of work at factor 10 healed 0.5 s in (0.05 s of work done) ends
    0.95 s later, not 9.5 s (seed 53 of the 1,000-seed sweep: an RT task's 150 ms busy phase at
    factor 41 outlasted the run, and its CPU was reported dead)."""
    cluster = VirtualCluster(("idle",), seed=1)
    cpu = cluster.cpus[0]
    done: dict = {}
    cpu.slowdown = 10.0
    cluster.queue.at(
        0.0, lambda: cpu.queue_work("workqueue", lambda: (cpu.occupy(1.0), done.setdefault("at", cpu.clock())))
    )
    cluster.queue.at(0.5, setattr, cpu, "slowdown", 1.0)
    try:
        cluster.run(3.0)
    finally:
        cluster.close()
    assert done["at"] == pytest.approx(1.45) and cpu.busy_s == pytest.approx(1.45)


def test_a_stopped_process_runs_nothing_and_what_fell_due_meanwhile_runs_at_sigcont():
    """SIGSTOP at 0.5 s of a CPU busy with 1 s of work from 0: the stretch that ends at 1 s ends only at
    SIGCONT (2 s), and work queued at 1.5 s starts after it; the rest of the run is the CPU's as before.
    Until 2026-12-06 a stopped virtual CPU ran on to its next decision point: the stretch ended at 1 s
    and the second item ran at 1.5 s."""
    cluster = VirtualCluster(("idle",), seed=1)
    cpu = cluster.cpus[0]
    done: dict = {}

    def work(name: str, seconds: float):
        return lambda: (
            done.setdefault(name + " started", cpu.clock()),
            cpu.occupy(seconds),
            done.setdefault(name, cpu.clock()),
        )

    cluster.queue.at(0.0, lambda: cpu.queue_work("workqueue", work("first", 1.0)))
    cluster.queue.at(0.5, cpu.sigstop.stop)
    cluster.queue.at(1.5, lambda: cpu.queue_work("workqueue", work("second", 0.25)))
    cluster.queue.at(2.0, cpu.sigstop.cont)
    try:
        cluster.run(3.0)
    finally:
        cluster.close()
    assert done["first"] == 2.0 and done["second started"] == 2.0 and done["second"] == 2.25
