"""The drain triggers that take memory, end to end on real clusters: alloc_contig_range (CMA) and
memory offline. Each runs its own kind of drain, takes its range out of the buddy for real, and the
audit balances to the page with the range under its owner."""

import collections
import json
import threading

import grpc
import pytest

from node.api.v1 import pcpsim_pb2 as pb
from tests.integration.conftest import RPC_TIMEOUT, assert_audit_ok, rpc_code, run_cli, wait_until
from tests.integration.test_drain import drain

PAGEBLOCK = 512
DONE = pb.DrainAllReply.DONE
# A range taken while the tasks run: nothing migrates the pages they hold, and the housekeeping task
# frees its pages in random order (a THP it took from a just-released range may stay seconds), so on a
# loaded machine some outlive the default 5 s timeout. A take returns as soon as its range is free.
BUSY_WAIT_MS = 30_000


def holdings(h):
    """Per pageblock: base pages on some CPU's pcp lists, and pageblocks touched by pages CPUs hold."""
    pcp, held = collections.Counter(), set()
    for cpu in h.nodes:
        snap = h.snapshot(cpu)
        for pfn, order in zip(snap.pcp_pages.pfn, snap.pcp_pages.order, strict=False):
            pcp[pfn // PAGEBLOCK] += 1 << order
        for pfn, order in zip(snap.allocated.pfn, snap.allocated.order, strict=False):
            held.update(range(pfn // PAGEBLOCK, (pfn + (1 << order) - 1) // PAGEBLOCK + 1))
    return pcp, held


def pause_with_range_no_task_holds(h, nr_pages: int) -> int:
    """Park the cluster and return the first pfn of the highest nr_pages-aligned range in which no
    task holds a page (pcp pages may be in it: the range's drain takes them back)."""
    h.set_paused(True)
    _, held = holdings(h)
    zone = h.state().zone
    per = nr_pages // PAGEBLOCK
    for start in range(zone.start_pfn + zone.spanned_pages - nr_pages, zone.start_pfn - 1, -nr_pages):
        if not any(start // PAGEBLOCK + i in held for i in range(per)):
            return start
    raise AssertionError(f"every {nr_pages}-page range holds a page a task holds")


def pause_with_pcp_only_pageblock(h, cpus) -> int:
    """Park the cluster at a moment when some pageblock holds pcp pages and no page a task holds,
    and every CPU in `cpus` has pcp pages (a housekeeping CPU's lists are briefly empty after a
    flush that frees everything); returns the pageblock's first pfn."""
    found = []

    def attempt():
        h.set_paused(True)
        pcp, held = holdings(h)
        blocks = sorted(b for b in pcp if b not in held)
        if blocks and all(h.pcp(c).count > 0 for c in cpus):
            found.append(blocks[0] * PAGEBLOCK)
            return True
        h.set_paused(False)
        return False

    wait_until(attempt, 60.0, interval=0.5, what="a pageblock holding pcp pages and no allocated page")
    return found[0]


def pending_work(h, cpu: int) -> float:
    """pcpsim_workqueue_pending_items of a CPU, read from its /metrics."""
    import urllib.request

    address = next(n.metrics_address for n in h.state().nodes if n.cpu == cpu)
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as f:
        for line in f.read().decode().splitlines():
            if line.startswith("pcpsim_workqueue_pending_items{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no pcpsim_workqueue_pending_items in /metrics")


def pcp_pfns(h) -> set:
    out = set()
    for cpu in h.nodes:
        snap = h.snapshot(cpu)
        for pfn, order in zip(snap.pcp_pages.pfn, snap.pcp_pages.order, strict=False):
            out.update(range(pfn, pfn + (1 << order)))
    return out


def test_alloc_contig_range_drains_its_zone_and_takes_the_range_from_the_buddy(make_cluster):
    """A CMA allocation of a pageblock whose pages sit on a CPU's pcp lists isolates it, runs a
    zone-specific drain (trigger alloc_contig, not forced: only CPUs reporting pages are marked), and the
    whole range then leaves the buddy: no page of it is on any pcp list, the audit balances with exactly
    the range under owner `cma`. Releasing it gives every page back (audit: cma 0)."""
    h = make_cluster(["housekeeping", "housekeeping", "idle"])
    h.wait_pages([0, 1])
    start = pause_with_pcp_only_pageblock(h, [0, 1])
    assert pcp_pfns(h) & set(range(start, start + PAGEBLOCK))
    wait_until(
        lambda: {n.cpu: n.pcp_count for n in h.state().nodes} == h.counts(),
        5.0,
        what="heartbeats reporting the parked counts",
    )
    reply = h.coord.AllocContigRange(
        pb.ContigRangeRequest(start_pfn=start, nr_pages=PAGEBLOCK, timeout_ms=2000), timeout=60
    )
    assert reply.ok, reply.error
    assert (reply.start_pfn, reply.nr_pages) == (start, PAGEBLOCK)
    d = reply.drains[0]
    assert d.trigger == pb.TRIGGER_ALLOC_CONTIG and d.status == DONE and d.strategy == pb.STRATEGY_REMOTE
    assert sorted(d.cpus_marked) == [0, 1]  # the idle CPU reports no pages and is not marked
    assert not pcp_pfns(h) & set(range(start, start + PAGEBLOCK))
    report = assert_audit_ok(h)
    assert report.where["cma"] == PAGEBLOCK
    free0 = h.free_pages()
    released = h.coord.ReleaseRange(pb.ReleaseRangeRequest(start_pfn=start, nr_pages=PAGEBLOCK), timeout=RPC_TIMEOUT)
    assert released.owner == "cma" and released.free_pages == free0 + PAGEBLOCK
    h.set_paused(False)
    assert assert_audit_ok(h).where["cma"] == 0


def test_alloc_contig_range_gives_up_on_pages_in_use_and_undoes_its_isolation(make_cluster):
    """A range holding a page a task holds stays busy (nothing migrates it): after its timeout the
    allocation fails naming that pfn and its holder, having drained at every attempt, and leaves the
    range as it was: not isolated (a second attempt is not refused as busy), audit balanced, no `cma`."""
    h = make_cluster(["housekeeping", "idle"])
    h.wait_pages([0])
    h.set_paused(True)
    snap = h.snapshot(0)
    pfn = snap.allocated.pfn[0]
    start = pfn - pfn % PAGEBLOCK
    request = pb.ContigRangeRequest(start_pfn=start, nr_pages=PAGEBLOCK, timeout_ms=300)
    for _ in range(2):
        reply = h.coord.AllocContigRange(request, timeout=60)
        assert not reply.ok and start <= reply.busy_pfn < start + PAGEBLOCK
        assert "held by cpu 0" in reply.error and reply.attempts >= 2
        assert len(reply.drains) == reply.attempts
        assert all(d.trigger == pb.TRIGGER_ALLOC_CONTIG and d.status == DONE for d in reply.drains)
    report = assert_audit_ok(h)
    assert report.where["cma"] == 0
    h.set_paused(False)


def test_alloc_contig_range_waits_for_a_running_drain_instead_of_skipping(make_cluster):
    """The CMA drain is zone-specific: issued while a long drain holds pcpu_drain_mutex (a workqueue drain
    waiting for an RT task busy 1.9 s of every 2 s), it is not skipped: it waits for the mutex and runs
    after that drain ended, and the allocation succeeds."""
    h = make_cluster(["housekeeping", "isolated-rt"], node_args=["--period-ms", "2000", "--busy-ms", "1900"])
    h.wait_pages([0])
    # The RT task's first period begins 2 s after start; from then on it is busy 95% of the time.
    wait_until(
        lambda: h.nodes[1].GetStats(pb.StatsRequest(cpu=1), timeout=RPC_TIMEOUT).task.runs >= 1,
        15.0,
        what="the RT task's first period",
    )
    overlapped = None
    for _attempt in range(5):
        long = {}
        t = threading.Thread(target=lambda long=long: long.update(r=drain(h, pb.STRATEGY_WORKQUEUE, force=True)))
        t.start()
        wait_until(
            lambda t=t: pending_work(h, 1) > 0 or not t.is_alive(),
            10.0,
            what="the long drain's work item queued on the RT CPU",
        )
        reply = h.coord.AllocContigRange(pb.ContigRangeRequest(nr_pages=PAGEBLOCK, timeout_ms=BUSY_WAIT_MS), timeout=60)
        t.join(30)
        assert reply.ok, reply.error
        cma, first = reply.drains[0], long["r"]
        assert cma.status == DONE and cma.trigger == pb.TRIGGER_ALLOC_CONTIG
        first_run = first.started_at + first.mutex_wait_s
        if first_run < cma.started_at < first_run + first.duration_s:  # asked while the first held the mutex
            overlapped = cma
            assert cma.started_at + cma.mutex_wait_s >= first_run + first.duration_s - 1e-6
            break
        h.coord.ReleaseRange(pb.ReleaseRangeRequest(start_pfn=reply.start_pfn, nr_pages=PAGEBLOCK), timeout=RPC_TIMEOUT)
    assert overlapped is not None, "no CMA drain was issued while the long drain ran, in 5 attempts"
    assert overlapped.mutex_wait_s > 0
    assert assert_audit_ok(h).where["cma"] == PAGEBLOCK


def test_memory_offline_disables_every_pcp_drains_all_cpus_and_takes_the_range(make_cluster):
    """offline_pages: zone_pcp_disable reaches every CPU (high 0, batch 1, seen on a node while an offline
    of a busy range waits), the drain is forced on every CPU (the idle one included) with trigger
    memory_offline, a busy range fails after its timeout and zone_pcp_enable gives high back; an offline
    of a free range succeeds, the range is on no free list or pcp (the audit balances with exactly it under
    owner `offline`), and onlining it (ReleaseRange) returns every page."""
    h = make_cluster(["housekeeping", "housekeeping", "idle"])
    h.wait_pages([0, 1])
    high = h.state().high
    # cpu0 stays parked through the busy offline, so the page it holds keeps that range busy (running,
    # its housekeeping task could free the page within the offline's timeout and let the offline succeed).
    h.set_paused(True, [0])
    snap = h.snapshot(0)
    assert not snap.running
    busy = snap.allocated.pfn[0] - snap.allocated.pfn[0] % PAGEBLOCK
    result = {}
    t = threading.Thread(
        target=lambda: result.update(
            r=h.coord.OfflinePages(
                pb.ContigRangeRequest(start_pfn=busy, nr_pages=PAGEBLOCK, timeout_ms=1500), timeout=60
            )
        )
    )
    t.start()
    wait_until(
        lambda: all(h.pcp(cpu).high == 0 and h.pcp(cpu).batch == 1 for cpu in h.nodes),
        10.0,
        interval=0.01,
        what="high 0 and batch 1 on every CPU",
    )
    t.join(60)
    h.set_paused(False, [0])
    reply = result["r"]
    assert not reply.ok and start_of(reply.busy_pfn) == busy
    assert all(
        d.trigger == pb.TRIGGER_MEMORY_OFFLINE and d.status == DONE and sorted(d.cpus_marked) == [0, 1, 2]
        for d in reply.drains
    )
    wait_until(lambda: all(h.pcp(cpu).high == high for cpu in h.nodes), 10.0, what="zone_pcp_enable's high")
    # Parked: a page a running task holds would keep the range busy (nothing migrates it).
    start = pause_with_range_no_task_holds(h, 2 * PAGEBLOCK)
    reply = h.coord.OfflinePages(pb.ContigRangeRequest(start_pfn=start, nr_pages=2 * PAGEBLOCK), timeout=60)
    assert reply.ok, reply.error
    assert reply.drains[0].trigger == pb.TRIGGER_MEMORY_OFFLINE and sorted(reply.drains[0].cpus_marked) == [0, 1, 2]
    assert not pcp_pfns(h) & set(range(reply.start_pfn, reply.start_pfn + 2 * PAGEBLOCK))
    assert assert_audit_ok(h).where["offline"] == 2 * PAGEBLOCK
    h.set_paused(False)
    released = h.coord.ReleaseRange(
        pb.ReleaseRangeRequest(start_pfn=reply.start_pfn, nr_pages=2 * PAGEBLOCK), timeout=RPC_TIMEOUT
    )
    assert released.owner == "offline"
    assert assert_audit_ok(h).where["offline"] == 0


def start_of(pfn: int) -> int:
    return pfn - pfn % PAGEBLOCK


def test_contig_requests_are_validated(shared_cluster):
    """A misaligned range, one outside the zone and a timeout over the bound are INVALID_ARGUMENT; releasing a
    range nobody took is FAILED_PRECONDITION; none of them changes the zone."""
    h = shared_cluster
    zone = h.state().zone
    for request in (
        pb.ContigRangeRequest(start_pfn=zone.start_pfn + 100, nr_pages=PAGEBLOCK),
        pb.ContigRangeRequest(start_pfn=zone.start_pfn, nr_pages=100),
        pb.ContigRangeRequest(start_pfn=zone.start_pfn + zone.spanned_pages, nr_pages=PAGEBLOCK),
        pb.ContigRangeRequest(nr_pages=PAGEBLOCK, timeout_ms=10**9),
    ):
        assert rpc_code(h.coord.AllocContigRange, request) == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        rpc_code(h.coord.ReleaseRange, pb.ReleaseRangeRequest(start_pfn=zone.start_pfn, nr_pages=PAGEBLOCK))
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    assert assert_audit_ok(h).where["cma"] == 0


@pytest.mark.parametrize(
    "command,owner,trigger", [("cma-alloc", "cma", "alloc_contig"), ("offline", "offline", "memory_offline")]
)
def test_contig_cli(shared_cluster, command, owner, trigger):
    """`pcpsim cma-alloc|offline --pages 1024` on a running cluster prints the range and its drains and exits
    0; the audit then shows 1024 pages under that owner; `pcpsim release` gives them back (so the shared
    cluster is left as found). A misaligned size exits non-zero naming the problem."""
    cluster = shared_cluster
    addr = cluster.cluster.coordinator_address
    token = ("--token-file", cluster.cluster.token_files["operator"])
    # Parked on a range no task holds a page of: nothing migrates a held page, so a range the running
    # tasks hold pages in can stay busy past any timeout on a loaded machine.
    start = pause_with_range_no_task_holds(cluster, 1024)
    try:
        r = run_cli(command, "--coordinator", addr, *token, "--start-pfn", str(start), "--pages", "1024", "--json")
    finally:
        cluster.set_paused(False)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] and out["nr_pages"] == 1024 and out["drains"][0]["trigger"] == trigger
    assert assert_audit_ok(cluster).where[owner] == 1024
    r = run_cli("release", "--coordinator", addr, *token, "--start-pfn", str(out["start_pfn"]), "--pages", "1024")
    assert r.returncode == 0 and f"released {owner} range" in r.stdout, r.stderr
    assert assert_audit_ok(cluster).where[owner] == 0
    r = run_cli(command, "--coordinator", addr, *token, "--pages", "100")
    assert r.returncode != 0 and "pageblock aligned" in r.stderr
