"""Processes that die, freeze and come back: a CPU's pages are not lost with its process, a
frozen CPU's pages are taken back only after it stopped using them, and a restarted
coordinator rebuilds its zone from what the nodes hold."""

import json
import os
import signal
import time

import grpc

from node.api.v1 import pcpsim_pb2 as pb
from node.epoch import CoordinatorEpoch
from node.mm.constants import MIGRATE_MOVABLE
from node.shared.transfer_log import TransferLog
from node.zone_client import ZoneClient
from tests.integration.conftest import HK_HK_IDLE, RPC_TIMEOUT, assert_audit_ok, wait_until


def test_a_restarted_node_returns_its_predecessors_pages_to_the_zone(make_cluster):
    """When a CPU's process is SIGKILLed and started again, its registration (a new
    incarnation) returns every page the dead process held, on its lists or in use, to
    the zone (page_alloc_cpu_dead); the audit balances and drains reach the new process."""
    h = make_cluster(["housekeeping", "housekeeping"])
    h.wait_pages([1])
    old = h.cluster.procs["cpu1"]
    old.send_signal(signal.SIGKILL)
    old.wait(10)
    new = h.cluster.start_node(1, name="cpu1-again")

    def reregistered():
        node = next(n for n in h.state().nodes if n.cpu == 1)
        return node.up and node.address != h.addresses[1]

    wait_until(reregistered, 30.0, what="cpu1 registered again")
    assert new.poll() is None
    # Without the reclaim, the zone would still record the dead process's blocks as
    # cpu1's and the audit would fail on them.
    assert_audit_ok(h)
    drain = h.coord.DrainAllPages(
        pb.DrainAllRequest(strategy=pb.STRATEGY_REMOTE, force_all_cpus=True), timeout=RPC_TIMEOUT
    )
    assert drain.status == pb.DrainAllReply.DONE
    assert sorted(c.cpu for c in drain.cpus) == [0, 1] and all(c.ok for c in drain.cpus)
    assert_audit_ok(h)


def test_a_restarted_coordinator_rebuilds_its_zone_from_the_nodes(make_cluster):
    """The coordinator is SIGKILLed and started again on its address with a fresh zone. Every
    node hears NOT_FOUND, registers again with the pages it holds, and the new coordinator
    claims them while it recovers: afterwards the audit balances to the page (no page the
    nodes hold is free in the new zone), the nodes were neither replaced nor reset, and both
    kinds of drain work."""
    h = make_cluster(["housekeeping", "housekeeping", "isolated-preemptible"])
    h.wait_pages([0, 1])
    before = {n.cpu: n.incarnation for n in h.state().nodes}
    coord = h.cluster.procs["coordinator"]
    coord.send_signal(signal.SIGKILL)
    coord.wait(10)
    h.cluster.start_coordinator(time.monotonic() + 30)

    def recovered():
        try:
            state = h.state()
        except grpc.RpcError:
            return False
        return not state.recovering and sum(n.up for n in state.nodes) == 3

    wait_until(recovered, 30.0, what="every node back and recovery over")
    assert {n.cpu: n.incarnation for n in h.state().nodes} == before  # resumed, not replaced
    assert all(h.snapshot(c).rejoins == 0 for c in range(3))
    assert_audit_ok(h)
    for strategy in (pb.STRATEGY_REMOTE, pb.STRATEGY_WORKQUEUE):
        drain = h.coord.DrainAllPages(pb.DrainAllRequest(strategy=strategy, force_all_cpus=True), timeout=30)
        assert drain.status == pb.DrainAllReply.DONE, drain
    assert_audit_ok(h)
    with open(os.path.join(h.cluster.run_dir, "coordinator.log"), "rb") as log:
        assert log.read().count(b"resumed holding") == 3


def test_a_free_refused_by_a_coordinator_the_node_never_registered_with_gives_its_pages_up(make_cluster, tmp_path):
    """Every ZoneStream reply carries the coordinator's epoch, a refusal's too, so a node whose free is
    refused by a coordinator it has not registered with gives the pages up (EpochRule.unregistered): that
    coordinator's zone, rebuilt from the nodes' claims, owes them to nobody, and the one the node had
    registered with may have applied the free and handed them out. Until 2026-12-07 the interceptor's
    refusals carried no epoch and such a free was kept (sweep seed 4181 under the wall engine: a page held
    twice). Here a zone client registered with epoch 1 frees to the restarted coordinator, epoch 2."""
    h = make_cluster(HK_HK_IDLE)
    coord = h.cluster.procs["coordinator"]
    coord.send_signal(signal.SIGKILL)
    coord.wait(10)
    h.cluster.start_coordinator(time.monotonic() + 30)
    epoch = CoordinatorEpoch()
    epoch.reply("Register", 1)
    log = TransferLog(str(tmp_path / "transfers-cpu2.jsonl"), time.monotonic)
    with h.cluster.channel(h.cluster.coordinator_address) as channel:
        zone = ZoneClient(channel, cpu=2, incarnation="never-registered", epoch=epoch, transfer_log=log)
        try:
            zone.free_pcppages_bulk([(h.state().zone.start_pfn, 0, MIGRATE_MOVABLE)])  # refused, and given up
        finally:
            zone.close()
            log.close()
    with open(log.path) as f:
        assert [json.loads(line)["ev"] for line in f] == ["free"]  # no `keep`: the node holds nothing now
    assert epoch.highest == 1 and epoch.registered == 1  # a refusal is not a reply acted on


def test_a_node_frozen_past_the_dead_timeout_is_reclaimed_and_rejoins_afresh(make_cluster):
    """SIGSTOP a housekeeping node: once its heartbeats have been silent for the dead timeout
    the coordinator declares it dead, takes back every page it held (the zone gains them) and
    recomputes high for the CPUs left. On SIGCONT the node finds its lease expired (no
    allocation), hears FAILED_PRECONDITION, discards its pages and registers afresh as a new
    incarnation; high goes back; the audit balances at every step."""
    h = make_cluster(
        ["housekeeping", "housekeeping", "idle"],
        coordinator_args=["--failure-timeout-ms", "500", "--dead-timeout-ms", "1500"],
    )
    h.wait_pages([1])
    high0 = h.state().high
    old_incarnation = h.incarnation(1)
    node = h.cluster.procs["cpu1"]
    node.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: next(n for n in h.state().nodes if n.cpu == 1).dead, 15.0, what="cpu1 declared dead")
        state = h.state()
        assert state.high > high0  # the low watermark is shared by fewer CPUs
        report = h.audit()  # the frozen CPU is no longer a member: nothing of it is counted
        assert report.ok, report
        assert not any(k.startswith("cpu1.") for k in report.where)
    finally:
        node.send_signal(signal.SIGCONT)

    def rejoined():
        n = next(n for n in h.state().nodes if n.cpu == 1)
        return n.up and not n.dead and n.incarnation != old_incarnation

    wait_until(rejoined, 15.0, what="cpu1 registered afresh")
    assert h.snapshot(1).rejoins == 1
    assert h.state().high == high0
    assert_audit_ok(h)
