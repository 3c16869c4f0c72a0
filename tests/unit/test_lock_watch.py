"""The wall nemesis's lock watch (coordinator.tools.chaos.lock_watch), with reads that are plain functions:
which locks it watches and what it records, whatever order the reads of one round answer in. The reads
are ordered by events, not by sleeps, so the tests cannot pass or fail by the host's timing."""

import json
import threading

from coordinator.tools.chaos import history as history_mod
from coordinator.tools.chaos import lock_watch

ADDRESSES = {1: "cpu1", 3: "cpu3"}
WAIT_S = 5.0  # how long a read that gets no answer waits: only the pre-fix, one-by-one watch waits it out


def records(path) -> list[tuple[str, dict]]:
    entries = [json.loads(line) for line in open(path, encoding="utf-8")]
    return [(e["f"], {k: e[k] for k in ("cpus", "cpu") if k in e}) for e in entries]


def test_a_cpu_that_cannot_answer_does_not_hide_a_lock_let_go_while_its_read_waits(tmp_path):
    """cpu1 is cut off: its read gets no answer. cpu3's drainer lets go of the lock as soon as cpu1's read
    has given up. cpu1's read gives up only once cpu3's read was sent, so cpu3 is seen held if and only if
    the two were read at once; read one after the other, cpu1 first, cpu3's lock was never watched."""
    cpu3_read = threading.Event()
    cpu1_gave_up = threading.Event()

    def read(cpu: int, address: str, timeout: float) -> int | None:
        assert address == ADDRESSES[cpu]
        if cpu == 1:
            cpu3_read.wait(min(timeout, WAIT_S))
            cpu1_gave_up.set()
            return None
        cpu3_read.set()
        return 0 if cpu1_gave_up.is_set() else 4

    history = history_mod.History(str(tmp_path / "history.jsonl"))
    lock_watch.watch(history, ADDRESSES, read, lambda: True, heal_at=60.0, first_timeout=WAIT_S)
    history.close()

    assert records(tmp_path / "history.jsonl") == [
        ("pcp-locked-at-stop", {"cpus": [3]}),
        ("pcp-lock-free", {"cpu": 3}),
    ]


def test_a_lock_never_seen_free_before_the_coordinator_resumes_is_recorded_still_held(tmp_path):
    """Both locks stay held; the coordinator resumes after two rounds. The watch stops there and says
    which locks it last saw held, in CPU order, each with when a read last saw it held."""
    rounds = []

    def read(cpu: int, address: str, timeout: float) -> int | None:
        rounds.append((cpu, timeout))
        return 4

    def stopped() -> bool:
        return len(rounds) < 4  # the first round and one more, two CPUs each

    history = history_mod.History(str(tmp_path / "history.jsonl"))
    lock_watch.watch(history, {3: "cpu3", 1: "cpu1"}, read, stopped, heal_at=60.0, first_timeout=WAIT_S)
    history.close()

    assert records(tmp_path / "history.jsonl") == [
        ("pcp-locked-at-stop", {"cpus": [1, 3]}),
        ("pcp-lock-still-held", {"cpu": 1}),
        ("pcp-lock-still-held", {"cpu": 3}),
    ]
    assert sorted(rounds[:2]) == [(1, WAIT_S), (3, WAIT_S)]
    assert sorted(rounds[2:]) == [(1, lock_watch.READ_TIMEOUT_S), (3, lock_watch.READ_TIMEOUT_S)]
    entries = [json.loads(line) for line in open(tmp_path / "history.jsonl", encoding="utf-8")]
    assert all(0 < e["held_seen_s"] <= e["after_s"] for e in entries[1:])


def test_a_lock_another_grant_holds_was_let_go_by_the_watched_one(tmp_path):
    """Sweep seed 4356 under the wall engine: the watch's last read came after the coordinator, continued,
    had been stopped again by the next fault, holding cpu3's lock under a new grant (token 6, the stop's
    was 4). The watched grant had let go: the lock is recorded free, with when grant 4 was last seen."""
    tokens = iter([4, 4, 6])
    sent = []

    def read(cpu: int, address: str, timeout: float) -> int | None:
        sent.append(cpu)
        return next(tokens)

    history = history_mod.History(str(tmp_path / "history.jsonl"))
    lock_watch.watch(history, {3: "cpu3"}, read, lambda: len(sent) < 3, heal_at=60.0, first_timeout=WAIT_S)
    history.close()

    assert records(tmp_path / "history.jsonl") == [("pcp-locked-at-stop", {"cpus": [3]}), ("pcp-lock-free", {"cpu": 3})]
    free = [json.loads(line) for line in open(tmp_path / "history.jsonl", encoding="utf-8")][-1]
    assert 0 < free["held_seen_s"] < free["after_s"]  # the second read's, not the third's
