"""The drain triggers that take a PFN range (coordinator.contig_rule) under virtual time: alloc_contig_range,
offline_pages and the release on a whole virtual cluster's driver (coordinator.tools.virtual_cluster), the
CMA range a chaos workload holds kept across a coordinator's restart (and lost when the restarted one
forgets it: the planted bug is caught), and compare's cma and offline trigger mixes."""

import json

import pytest

from coordinator import contig_rule
from coordinator.store import TakenRange
from coordinator.tools import determinism
from coordinator.tools.chaos import scenario, virtual_runner
from coordinator.tools.cli import main
from coordinator.tools.topology import DEFAULT_ROLES
from coordinator.tools.virtual_cluster import WholeCluster
from coordinator.tools.virtual_coordinator import Members
from coordinator.tools.virtual_phase import default_config, run_phase
from node.api.errors import FailedPrecondition, InvalidArgument
from node.api.v1 import pcpsim_pb2 as pb
from node.mm import isolation
from node.mm.constants import MIGRATE_ISOLATE, pageblock_nr_pages
from node.mm.zone import Zone
from node.mm.zone_rules import CMA
from tests.leaks import forbid_wall_clock_and_shared_random

PAGEBLOCK = pageblock_nr_pages
WARMUP_S = 0.002  # kernel time for the CPUs' working sets to fill
BOUND_S = 1.0  # virtual time an operation gets to end


@pytest.fixture
def cluster():
    c = WholeCluster(DEFAULT_ROLES, seed=1)  # static membership, remote drains
    c.nodes.run(WARMUP_S)
    yield c
    c.close()


def run(c: WholeCluster, program):
    return c.coordinator.driver.run(program, c.queue.clock() + BOUND_S)


def test_a_free_range_is_drained_for_taken_kept_and_released(cluster):
    c = cluster
    top = c.zone.zone.end_pfn
    result = run(c, contig_rule.alloc_contig_range(c.coordinator.contig, 0, PAGEBLOCK, 0))
    assert result.ok, result.error
    assert (result.start_pfn, result.nr_pages, result.attempts) == (top - PAGEBLOCK, PAGEBLOCK, len(result.drains))
    assert all(d.trigger == pb.TRIGGER_ALLOC_CONTIG and d.status == pb.DrainAllReply.DONE for d in result.drains)
    assert c.contig_drains == result.drains  # the coordinator's drain history has them
    assert c.coordinator.store.ranges == [TakenRange(top - PAGEBLOCK, PAGEBLOCK, "cma")]
    assert c.zone.zone.get_pageblock_migratetype(top - PAGEBLOCK) != MIGRATE_ISOLATE  # isolation undone
    assert c.audit().where["cma"] == PAGEBLOCK
    assert run(c, contig_rule.release(c.coordinator.contig, top - PAGEBLOCK, PAGEBLOCK)) == "cma"
    assert c.coordinator.store.ranges == []
    report = c.audit()
    assert report.ok and report.where["cma"] == 0


def test_a_range_a_cpu_holds_fails_after_its_timeout_and_is_left_as_it_was(cluster):
    c = cluster
    c.nodes.cpus[0].set_paused(True, by="test")  # its allocations stay held
    c.nodes.run(c.queue.clock() + WARMUP_S)
    pfn = c.nodes.allocs[0].pages()[0][0]
    start = pfn - pfn % PAGEBLOCK
    # 100 ms of the wall engine's time: 0.4 ms of kernel time here (Contig.wall_s), retried every 0.2 ms.
    result = run(c, contig_rule.alloc_contig_range(c.coordinator.contig, start, PAGEBLOCK, 100))
    assert not result.ok and result.attempts >= 2 and len(result.drains) == result.attempts
    assert "held by cpu 0" in result.error and start <= result.busy_pfn < start + PAGEBLOCK
    assert 0.0004 <= result.duration_s < 0.001
    assert c.coordinator.store.ranges == [] and c.zone.zone.get_pageblock_migratetype(start) != MIGRATE_ISOLATE
    c.nodes.cpus[0].set_paused(False, by="test")
    assert c.audit().ok


def test_a_range_overlapping_a_taken_one_fails_at_once_naming_it(cluster):
    """No drain frees pages an earlier CMA range holds: an offline of the zone's last pages (start_pfn 0)
    over a CMA range there fails on its first attempt, naming that range, instead of retrying until its
    timeout (it took 98 attempts), and changes nothing."""
    c = cluster
    top = c.zone.zone.end_pfn
    assert run(c, contig_rule.alloc_contig_range(c.coordinator.contig, 0, 2 * PAGEBLOCK, 0)).ok
    result = run(c, contig_rule.offline_pages(c.coordinator.contig, 0, PAGEBLOCK, 5000))
    assert not result.ok and result.attempts == 1, result
    assert "belongs to a cma range taken before" in result.error and result.busy_pfn >= top - PAGEBLOCK
    assert c.coordinator.store.ranges == [TakenRange(top - 2 * PAGEBLOCK, 2 * PAGEBLOCK, "cma")]
    assert c.zone.zone.get_pageblock_migratetype(top - PAGEBLOCK) != MIGRATE_ISOLATE
    assert c.audit().ok


def test_offline_disables_every_pcp_drains_every_cpu_then_gives_high_back(cluster):
    c = cluster
    before = [(pcp.high, pcp.batch) for pcp in c.nodes.pcps]
    outcome: list = []
    c.offline_pages(0, 2 * PAGEBLOCK, 0, lambda result, error: outcome.append((result, error)))
    disabled = False
    while not outcome:
        c.queue.step()
        disabled = disabled or all((pcp.high, pcp.batch) == (0, 1) for pcp in c.nodes.pcps)
    ((result, error),) = outcome
    assert error is None and result.ok, (error, result)
    assert disabled  # zone_pcp_disable reached every CPU with a heartbeat
    assert all(d.trigger == pb.TRIGGER_MEMORY_OFFLINE and sorted(d.cpus_marked) == [0, 1, 2, 3] for d in result.drains)
    assert c.coordinator.store.ranges == [TakenRange(result.start_pfn, 2 * PAGEBLOCK, "offline")]
    c.nodes.run(c.queue.clock() + 2 * c.heartbeat_s)
    assert [(pcp.high, pcp.batch) for pcp in c.nodes.pcps] == before  # zone_pcp_enable, with the next heartbeat
    assert c.audit().where["offline"] == 2 * PAGEBLOCK


def test_a_range_that_cannot_be_stored_goes_back_to_the_buddy(cluster):
    c = cluster

    class Full:
        def add(self, start: int, nr_pages: int, owner: str) -> None:
            raise OSError("no space left on device")

        def remove(self, start: int, nr_pages: int) -> None:
            raise AssertionError("nothing was stored")

    c.coordinator.contig.store = Full()
    with pytest.raises(OSError, match="no space"):
        run(c, contig_rule.alloc_contig_range(c.coordinator.contig, 0, PAGEBLOCK, 0))
    top = c.zone.zone.end_pfn
    assert c.zone.rules.holder_of(top - PAGEBLOCK) is None
    assert c.zone.zone.get_pageblock_migratetype(top - PAGEBLOCK) != MIGRATE_ISOLATE
    assert c.audit().where["cma"] == 0


def test_bad_requests_change_nothing(cluster):
    c = cluster
    zone = c.zone.zone
    for start, nr, timeout_ms in (
        (zone.start_pfn + 1, PAGEBLOCK, 0),
        (zone.start_pfn, 100, 0),
        (zone.end_pfn, PAGEBLOCK, 0),
        (0, PAGEBLOCK, contig_rule.MAX_TIMEOUT_MS + 1),
    ):
        with pytest.raises(InvalidArgument):
            run(c, contig_rule.alloc_contig_range(c.coordinator.contig, start, nr, timeout_ms))
    with pytest.raises(FailedPrecondition, match="not one taken range"):
        run(c, contig_rule.release(c.coordinator.contig, zone.start_pfn, PAGEBLOCK))
    top = zone.end_pfn - PAGEBLOCK
    saved = isolation.start_isolate_page_range(zone, top, PAGEBLOCK)  # another operation has it isolated: -EBUSY
    with pytest.raises(FailedPrecondition, match="already isolated"):
        run(c, contig_rule.alloc_contig_range(c.coordinator.contig, top, PAGEBLOCK, 0))
    isolation.undo_isolate_page_range(zone, top, PAGEBLOCK, saved)
    assert c.contig_drains == [] and c.coordinator.store.ranges == []
    assert c.audit().ok


# ---------------------------------------------------------------------- chaos: the range across a restart
def _chaos(path: str, strategy: str) -> virtual_runner.Run:
    return virtual_runner.execute(scenario.load(path), strategy, keep_log=False)


def _evidence(run: virtual_runner.Run) -> tuple[dict, list[dict], dict]:
    entries = [json.loads(line) for line in run.history]
    taken = next(e for e in entries if e["f"] == "alloc-contig" and e["type"] != "invoke")
    zone_log = [e for e in run.transfers["transfers-coordinator.jsonl"] if e["ev"] in ("start", "take")]
    audit = next(e for e in entries if e["f"] == "audit")
    return taken, zone_log, audit


@pytest.mark.parametrize("strategy", ["workqueue", "rcu-swap"])
def test_the_cma_range_survives_the_coordinators_restart(strategy):
    run = _chaos("deploy/chaos/restart-after-cma.toml", strategy)
    assert run.verdict.valid is True, json.dumps(run.verdict.to_json(), indent=1)
    taken, zone_log, audit = _evidence(run)
    assert taken["type"] == "ok" and taken["nr_pages"] == 4096
    # Taken by the first coordinator, then out of the restarted one's new zone again, before anything else.
    assert [e["ev"] for e in zone_log] == ["start", "take", "start", "take"]
    assert zone_log[1]["pages"] == zone_log[3]["pages"] and zone_log[3]["owner"] == CMA
    assert audit["where"]["cma"] == 4096 and audit["ok"]


def test_a_restarted_coordinator_that_forgets_the_range_is_caught():
    run = _chaos("tests/chaos/forgotten-cma-range.toml", "remote")
    taken, zone_log, audit = _evidence(run)
    assert taken["type"] == "ok" and [e["ev"] for e in zone_log] == ["start", "take", "start"]
    assert run.verdict.valid is False and audit["where"]["cma"] == 0
    assert any("a taken range was forgotten" in f for f in run.verdict.findings["conservation"])


def test_a_replaced_coordinator_cannot_keep_a_range_it_takes():
    """Its store is fenced by the second's epoch, so it gives the range back and the request fails;
    before the fix the virtual cluster's one Store had no epoch to check and took it for good."""
    run = _chaos("tests/chaos/cma-by-a-replaced-coordinator.toml", "remote")
    assert run.verdict.valid is True, json.dumps(run.verdict.to_json(), indent=1)
    entries = [json.loads(line) for line in run.history]
    taken = next(e for e in entries if e["f"] == "alloc-contig" and e["type"] != "invoke")
    assert taken["type"] == "fail" and "epoch 2 has started" in taken["error"], taken
    zone_log = [
        (e["ev"], e["epoch"], e.get("owner"))
        for e in run.transfers["transfers-coordinator.jsonl"]
        if e["ev"] in ("start", "take", "release")
    ]
    # Each coordinator's start hands the scenario's zone_used to the rest of the system (owner -1, as
    # the wall coordinator's --zone-used); the range is CMA's (-2).
    assert zone_log == [
        ("start", 1, None),
        ("take", 1, -1),
        ("start", 2, None),
        ("take", 2, -1),
        ("take", 1, -2),
        ("release", 1, -2),
    ]


def test_restart_after_cma_is_byte_identical_on_a_second_run():
    path = scenario.load("deploy/chaos/restart-after-cma.toml")
    report = determinism.check(lambda: virtual_runner.execute(path, "remote").outcome())
    assert report.identical, report.describe()


# ---------------------------------------------------------------------- compare's trigger mix
def test_a_compare_phase_runs_cma_and_offline_events_and_its_audit_balances():
    config = default_config("remote", measure_s=2.5, warmup_s=0.5, trigger_mix=(("cma", 1.0), ("offline", 1.0)))
    with pytest.MonkeyPatch.context() as mp:
        forbid_wall_clock_and_shared_random(mp)
        first = run_phase("remote", config)
    figures = first.figures
    assert figures["audit"] == {"ok": True, "lost": 0, "duplicated": 0, "unexpected": 0, "errors": []}
    contig = figures["contig"]
    assert set(contig["by_trigger"]) == {"cma", "offline"} and contig["count"] > 0
    assert set(figures["drains_by_trigger"]) == {"alloc_contig", "memory_offline"}  # no demand drain
    assert figures["drain_rpc_errors"] == [] and first.cluster.coordinator.store.ranges == []  # every range released
    again = run_phase("remote", config)
    assert (again.figures, again.log_digest()) == (figures, first.log_digest())


@pytest.mark.slow
def test_compare_under_virtual_time_with_cma_and_offline(tmp_path, capsys):
    out = tmp_path / "out.json"
    args = ["compare", "--engine", "virtual", "--quick", "--trigger-mix", "cma=1,offline=1", "--json", str(out)]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["config"]["trigger_mix"] == {"cma": 1.0, "offline": 1.0}
    for name, s in result["strategies"].items():
        assert s["audit"]["ok"] and s["audit"]["lost"] == s["audit"]["duplicated"] == 0, name
        assert s["drains_by_trigger"].get("alloc_contig", 0) > 0 and s["drains_by_trigger"].get("memory_offline", 0)
        assert s["contig"]["count"] > 0, name


@pytest.mark.parametrize(
    ("mix", "said"),
    [
        ("cma=nan", "weight of cma must be a finite number >= 0, got nan"),
        ("offline=inf", "weight of offline must be a finite number >= 0, got inf"),
        ("cma=-1", "weight of cma must be a finite number >= 0, got -1.0"),
        ("cma=0", "at least one trigger needs a weight > 0"),
        ("reclaim=1", "unknown trigger 'reclaim'"),
        ("demand=1e308,cma=1e308", "the weights' sum must be finite, got inf"),
        ("demand=1,demand=2", "demand is given twice"),
    ],
)
def test_a_bad_trigger_mix_is_refused_by_the_parser(tmp_path, capsys, mix, said):
    """Before 2026-12-06 a nan or infinite weight passed the parser and random.choices raised mid-run."""
    out = tmp_path / "out.json"
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--engine", "virtual", "--quick", "--trigger-mix", mix, "--json", str(out)])
    assert exit_.value.code == 2 and said in capsys.readouterr().err
    assert not out.exists()


def test_a_range_operation_is_refused_while_the_coordinator_recovers():
    """Seed 760 of the 1,000-seed sweep: an alloc_contig_range on a coordinator still rebuilding its
    zone held pcpu_drain_mutex against the registrations its recovery waits for. As a demand drain,
    it is refused UNAVAILABLE at once (coordinator.server's check_over), and changes nothing."""
    c = WholeCluster(DEFAULT_ROLES, seed=1, members=Members())
    try:
        assert c.coordinator.recovery.active
        got: list = []
        start = c.nodes.zone.zone.start_pfn
        c.alloc_contig_range(start, PAGEBLOCK, 1000, lambda result, err: got.append((result, err)))
        c.offline_pages(start, PAGEBLOCK, 1000, lambda result, err: got.append((result, err)))
        assert [(r, type(e).__name__) for r, e in got] == [(None, "Unavailable")] * 2
        assert "rebuild" in str(got[0][1]) or "recover" in str(got[0][1])
        assert not c.coordinator.store.ranges
    finally:
        c.close()


def test_a_range_larger_than_the_zone_is_refused_naming_both_sizes():
    """start_pfn 0 means the zone's last nr_pages: more pages than the zone has put that start at a
    negative pfn, which the refusal then named ("range pfn -4293902335") before 2026-12-06."""
    zone = Zone(4096, 8192, 2)
    with pytest.raises(InvalidArgument, match=r"^4294967295 pages: more than the zone's 8192$"):
        contig_rule.resolve(zone, 0, 2**32 - 1, 0)
    assert contig_rule.resolve(zone, 0, 1024, 0)[:2] == (4096 + 8192 - 1024, 1024)
