"""The wall nemesis's watch of the pcp locks a coordinator held when it stopped itself mid-drain.

From the stop until the heal, every lock held at the stop is read again and again: when one is seen
free the history gets `pcp-lock-free`, and a lock not seen free by then gets `pcp-lock-still-held`. Each
record says when the last read that saw the lock held was sent (`held_seen_s`, from the stop), which the
checker holds against the lease (checker._lock_lease). A read may come late, behind one that waits out
its timeout on a node that cannot answer (partitioned, stopped), so the time a lock was seen free says
nothing of when it became free. Until 2026-12-07 only that time was recorded, and sweep seed 4021 under
the wall engine, whose partitioned cpu6 held up the first round by 2 s, broke a 0.474 s lease that cpu3
had kept.
"""

import time
from collections.abc import Callable

# A read of a watched lock after the first round: one that cannot answer says nothing, and must not hold
# up the reads of the others for the nemesis's whole RPC timeout.
READ_TIMEOUT_S = 0.25
POLL_S = 0.01

# read(cpu, address, timeout): whether the CPU's pcp lock is held by a drainer, None without an answer.
Read = Callable[[int, str, float], bool | None]


def watch(
    history, addresses: dict[int, str], read: Read, stopped: Callable[[], bool], heal_at: float, first_timeout: float
) -> None:
    """Watch from now, the coordinator's stop (`stopped()`: whether it still is), until `heal_at` on the
    history's clock. The first round waits `first_timeout` for each answer: a lock missed there is not
    watched at all."""
    stopped_at = history.now()

    def since() -> float:
        return round(history.now() - stopped_at, 6)

    locked: dict[int, tuple[str, float]] = {}  # cpu -> its address, when a read last saw its lock held
    for cpu, address in addresses.items():
        sent = since()
        if read(cpu, address, first_timeout):
            locked[cpu] = (address, sent)
    history.add("nemesis", "observe", "pcp-locked-at-stop", cpus=sorted(locked))

    def look(cpu: int, address: str, seen: float) -> None:
        sent = since()
        held = read(cpu, address, READ_TIMEOUT_S)
        if held:
            locked[cpu] = (address, sent)
        elif held is not None:
            history.add("nemesis", "observe", "pcp-lock-free", cpu=cpu, after_s=since(), held_seen_s=seen)
            del locked[cpu]

    while locked and history.now() < heal_at and stopped():
        for cpu, (address, seen) in list(locked.items()):
            look(cpu, address, seen)
        time.sleep(POLL_S)
    if stopped():  # a last read of each, for a round that came too late for one
        for cpu, (address, seen) in list(locked.items()):
            look(cpu, address, seen)
    for cpu, (_, seen) in locked.items():
        history.add("nemesis", "observe", "pcp-lock-still-held", cpu=cpu, after_s=since(), held_seen_s=seen)
