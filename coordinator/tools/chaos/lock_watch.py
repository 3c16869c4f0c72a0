"""The wall nemesis's watch of the pcp locks a coordinator held when it stopped itself mid-drain.

From the stop until the heal, every lock held at the stop is read again and again: when one is seen
free the history gets `pcp-lock-free`, and a lock not seen free by then gets `pcp-lock-still-held`. Each
record says when the last read that saw the lock held was sent (`held_seen_s`, from the stop), which the
checker holds against the lease (checker._lock_lease). A round ends when every read of it has, so the
next read of a lock may come late, behind one that waits out its timeout on a node that cannot answer
(partitioned, stopped), and the time a lock was seen free says nothing of when it became free. Until
2026-12-07 only that time was recorded, and sweep seed 4021 under the wall engine, whose partitioned cpu6
held up the first round by 2 s, broke a 0.474 s lease that cpu3 had kept.

A lock is watched by the token of the grant that held it at the stop: a read that finds another grant
holding it saw the watched one let go. Until 2026-12-07 a read saw only whether the lock was held, and
sweep seed 4356 under the wall engine (three runs at a time) broke a 0.334 s lease that cpu3 had kept:
a stopped cpu1 held the first round up by 2 s, past the heal, and the watch's last read came after the
next fault, a second coordinator's trap, had stopped the same process again holding cpu3's lock under
a new grant.
"""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# A read of a watched lock after the first round: one that cannot answer says nothing, and must not hold
# up the next round for the nemesis's whole RPC timeout.
READ_TIMEOUT_S = 0.25
POLL_S = 0.01

# read(cpu, address, timeout): the token of the drainer's grant that holds the CPU's pcp lock (0: none
# holds it), None without an answer.
Read = Callable[[int, str, float], int | None]


def watch(
    history, addresses: dict[int, str], read: Read, stopped: Callable[[], bool], heal_at: float, first_timeout: float
) -> None:
    """Watch from now, the coordinator's stop (`stopped()`: whether it still is), until `heal_at` on the
    history's clock. The first round waits `first_timeout` for each answer: a lock missed there is not
    watched at all. The CPUs of a round are read at once, so one that cannot answer holds up none of the
    others (until 2026-12-07 they were read one after another, and a partitioned CPU read first delayed
    the first read of the rest by `first_timeout`: a lock let go meanwhile was never watched)."""
    stopped_at = history.now()

    def since() -> float:
        return round(history.now() - stopped_at, 6)

    with ThreadPoolExecutor(max_workers=max(1, len(addresses))) as pool:

        def read_all(cpus: list[int], timeout: float) -> tuple[float, list[tuple[int, int | None]]]:
            """When the round was sent, and each CPU's answer in CPU order."""
            sent = since()
            futures = [(cpu, pool.submit(read, cpu, addresses[cpu], timeout)) for cpu in cpus]
            return sent, [(cpu, future.result()) for cpu, future in futures]

        token: dict[int, int] = {}  # cpu -> the grant that held its lock at the stop
        locked: dict[int, float] = {}  # cpu -> when a read last saw that grant hold it
        sent, answers = read_all(sorted(addresses), first_timeout)
        for cpu, holder in answers:
            if holder:
                token[cpu], locked[cpu] = holder, sent
        history.add("nemesis", "observe", "pcp-locked-at-stop", cpus=sorted(locked))

        def look() -> None:
            sent, answers = read_all(sorted(locked), READ_TIMEOUT_S)
            for cpu, holder in answers:
                if holder == token[cpu]:
                    locked[cpu] = sent
                elif holder is not None:  # free, or another grant's
                    history.add(
                        "nemesis", "observe", "pcp-lock-free", cpu=cpu, after_s=since(), held_seen_s=locked.pop(cpu)
                    )

        while locked and history.now() < heal_at and stopped():
            look()
            time.sleep(POLL_S)
        if locked and stopped():  # a last read of each, for a round that came too late for one
            look()
    for cpu, seen in sorted(locked.items()):
        history.add("nemesis", "observe", "pcp-lock-still-held", cpu=cpu, after_s=since(), held_seen_s=seen)
