"""The virtual driver of the zone's rules (node.virtual.zone): the same rules as the wall zone service,
so a virtual zone that runs low refuses refills at its min watermark and its CPUs enter direct
reclaim, deterministically, and a virtual CPU gets the wall client's replies."""

from node.mm.constants import MIGRATE_MOVABLE
from node.sim.sigstop import Sigstop
from node.virtual.run import VirtualCluster
from node.virtual.zone import CoordinatorStub
from node.virtual.zone_rpc import CoordinatorKilled
from node.zone_retry_rule import ZoneRefused

HORIZON_S = 1.5e-3  # kernel time: 75 housekeeping periods per CPU
STOP_S = 1e-3  # a coordinator's stop: far longer than a zone hold and a round trip


def low_cluster(seed: int, headroom: int) -> VirtualCluster:
    """Two housekeeping CPUs on a zone the rest of the system leaves `headroom` pages above min."""
    cluster = VirtualCluster(("housekeeping", "housekeeping"), seed)
    zone = cluster.zone.zone
    cluster.zone.rules.preallocate(zone.free_pages - zone.watermark["min"] - headroom)
    for alloc, cpu in zip(cluster.allocs, cluster.cpus, strict=True):
        alloc._stub = CoordinatorStub(cluster.zone, cpu)  # VirtualCluster does not pass one yet
    return cluster


def run_low(seed: int) -> tuple:
    cluster = low_cluster(seed, headroom=100)
    try:
        cluster.run(HORIZON_S)
    finally:
        cluster.close()
    return (
        cluster.text(),
        cluster.zone.rules.refused,
        cluster.zone.drain_requests,
        [alloc.reclaims for alloc in cluster.allocs],
        [alloc.alloc_failures for alloc in cluster.allocs],
        cluster.zone.zone.reclaim_active,
    )


def test_a_zone_that_runs_low_refuses_refills_and_its_cpus_enter_direct_reclaim_the_same_way_each_run():
    first = run_low(5)
    text, refused, drains, reclaims, failures, reclaim_active = first
    assert refused > 0 and reclaim_active  # below min: refused; below low: kswapd's flag
    assert all(n > 0 for n in reclaims)
    assert 0 <= sum(reclaims) - drains <= 2  # each reclaim's drain request arrives, but one per CPU in flight
    assert all(n > 0 for n in failures)  # no drain runs yet, so most retries after reclaim fail too
    assert "errors 0" in text and " errors " not in text.replace("errors 0", "")
    assert run_low(5) == first


def test_a_virtual_cpu_gets_the_wall_clients_replies_refusals_included():
    cluster = VirtualCluster(("idle",), seed=1)
    local, shared, cpu = cluster.zones[0], cluster.zone, cluster.cpus[0]
    zone = shared.zone
    wm = zone.watermark
    shared.rules.preallocate(zone.free_pages - wm["min"] - 4)
    seen: dict = {}

    def work() -> None:
        pfns = local.rmqueue_bulk(0, 4, MIGRATE_MOVABLE)  # down to exactly min: allowed
        seen["ok"] = (len(pfns), local.watermark_failed, local.free_pages, local.reclaim_active)
        seen["refused"] = (local.rmqueue_buddy(0, MIGRATE_MOVABLE), local.watermark_failed, shared.rules.refused)
        sent = cluster.clock()
        try:
            local.free_one_page(pfns[0], 1, MIGRATE_MOVABLE)  # held at order 0
        except ZoneRefused as err:
            seen["bad free"] = (err.code, "holding it at order 0" in str(err), cluster.clock() > sent)
        local.free_pcppages_bulk([(pfn, 0, MIGRATE_MOVABLE) for pfn in pfns])
        seen["back"] = (local.free_pages, local.reclaim_active, shared.lock.holder)

    cluster.queue.at(1e-6, lambda: cpu.queue_work("workqueue", work))
    try:
        cluster.run(1e-4)
    finally:
        cluster.close()
    assert seen == {
        "ok": (4, False, wm["min"], True),
        "refused": (None, True, 1),
        "bad free": ("FAILED_PRECONDITION", True, True),  # after a round trip, as on the wire
        "back": (wm["min"] + 4, True, None),  # between min and low: still reclaiming; zone->lock free
    }


def test_a_virtual_cpus_commit_flush_clears_zone_below_high_and_its_other_frees_do_not():
    """LocalZone carries free_pcppages_bulk's `commit` to the zone's rules, as the wall client's request
    does (node.mm.zone.Zone.commit_flushed), and keeps the flag each reply reports."""
    cluster = VirtualCluster(("idle",), seed=1)
    local, shared, cpu = cluster.zones[0], cluster.zone, cluster.cpus[0]
    seen: dict = {}

    def work() -> None:
        pfns = local.rmqueue_bulk(0, 3, MIGRATE_MOVABLE)
        shared.zone.below_high = True  # as an allocation that found the zone under high left it
        local.free_pcppages_bulk([(pfns[0], 0, MIGRATE_MOVABLE)])  # a drain's or decay's free
        seen["plain"] = local.below_high
        local.free_one_page(pfns[1], 0, MIGRATE_MOVABLE)  # a buddy free (the pcp trylock failed)
        seen["buddy"] = local.below_high
        local.free_pcppages_bulk([(pfns[2], 0, MIGRATE_MOVABLE)], commit=True)  # free_unref_page_commit's flush
        seen["commit"] = (local.below_high, shared.zone.below_high)

    cluster.queue.at(1e-6, lambda: cpu.queue_work("workqueue", work))
    try:
        cluster.run(1e-4)
    finally:
        cluster.close()
    assert seen == {"plain": True, "buddy": True, "commit": (False, False)}


def _stopped_inside_cpu0s_hold(end: str):
    """cpu0 refills, then cpu1; the coordinator stops right after applying cpu0's request, inside its hold
    of zone->lock, and STOP_S later `end`s ("cont" or "kill"). Returns the zone, the stop's instant, and
    per CPU the instants at which its request was applied, answered, or refused by the coordinator's death."""
    cluster = VirtualCluster(("idle", "idle"), seed=1)
    shared, queue = cluster.zone, cluster.queue
    stop = shared.sigstop = Sigstop(queue)
    rmqueue = shared.rules.rmqueue
    seen: dict[str, dict[int, float]] = {"applied": {}, "answered": {}, "killed": {}}
    stopped_at: list[float] = []

    def spy(cpu: int, *args, **kwargs):
        seen["applied"][cpu] = queue.clock.now
        if cpu == 0:
            stopped_at.append(queue.clock.now)
            stop.stop()
            queue.after(STOP_S, getattr(stop, end))
            cluster.cpus[1].queue_work("workqueue", lambda: refill(1))
        return rmqueue(cpu, *args, **kwargs)

    def refill(n: int) -> None:
        try:
            cluster.zones[n].rmqueue_bulk(0, 4, MIGRATE_MOVABLE)
            seen["answered"][n] = queue.clock.now
        except CoordinatorKilled:
            seen["killed"][n] = queue.clock.now

    shared.rules.rmqueue = spy  # type: ignore[method-assign]
    queue.at(1e-6, lambda: cluster.cpus[0].queue_work("workqueue", lambda: refill(0)))
    try:
        cluster.run(STOP_S * 3)
    finally:
        cluster.close()
    (t0,) = stopped_at
    return shared, t0, seen


def test_a_stopped_coordinator_ends_no_hold_of_zone_lock_and_applies_no_request_until_sigcont():
    """The zone's side of a CPU's request is the coordinator process's work (LocalZone.apply): stopped
    while cpu0's request holds zone->lock, it neither ends that hold nor applies cpu1's request, sent
    after cpu0's was applied, until its SIGCONT; cpu0's reply leaves only then. Until 2026-12-06 the
    hold ended on time and cpu1's request was applied during the stop."""
    shared, t0, seen = _stopped_inside_cpu0s_hold("cont")
    applied, answered = seen["applied"], seen["answered"]
    assert list(applied) == [0, 1] and not seen["killed"]
    assert applied[1] >= t0 + STOP_S  # cpu1's request waited for zone->lock until the SIGCONT
    assert answered[0] > t0 + STOP_S and answered[1] > applied[1]
    assert shared.lock.holder is None and not shared.sigstop.stopped


def test_a_coordinator_killed_while_stopped_answers_the_request_it_held_and_the_queued_one_with_its_death():
    """SIGKILL of a coordinator stopped inside cpu0's hold of zone->lock: cpu0's request and cpu1's,
    queued behind it, each see the kill at that instant (CoordinatorKilled: the network resets them),
    cpu1's unapplied, and the lock is free. Until 2026-12-07 the kill dropped what the stop held: cpu0
    kept zone->lock for good and cpu1 waited behind it, as would every later request."""
    shared, t0, seen = _stopped_inside_cpu0s_hold("kill")
    assert list(seen["applied"]) == [0] and not seen["answered"]
    assert seen["killed"] == {0: t0 + STOP_S, 1: t0 + STOP_S}
    assert shared.lock.holder is None and not shared.lock.waiters
