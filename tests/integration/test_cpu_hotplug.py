"""CPU hotplug of a living CPU on real clusters: offline drains its lists from the coordinator and
recomputes high, the CPU is left out of drains but not out of the audit, online recomputes high again."""

import grpc
import pytest

from node.api.v1 import pcpsim_pb2 as pb
from node.mm import pcp_high
from tests.integration.conftest import RPC_TIMEOUT, assert_audit_ok, rpc_code, run_cli, wait_until
from tests.integration.test_drain import drain

DONE = pb.DrainAllReply.DONE


def set_online(h, cpu: int, online: bool) -> pb.CpuOnlineReply:
    return h.coord.SetCpuOnline(pb.CpuOnlineRequest(cpu=cpu, online=online), timeout=60)


def allocs(h, cpu: int) -> int:
    return h.nodes[cpu].GetStats(pb.StatsRequest(cpu=cpu), timeout=RPC_TIMEOUT).allocs


@pytest.mark.parametrize(
    "kernel,strategy",
    [
        ("6.1", "remote"),
        ("5.19", None),
        ("6.2", "rcu-swap"),
        ("6.12", "remote"),
        ("6.12", "rcu-swap"),
        ("6.1.y", "remote"),
    ],
)
def test_cpu_offline_drains_from_a_survivor_and_online_recomputes_high(make_cluster, kernel, strategy):
    """Taking a housekeeping CPU offline stops its tasks, drains its lists from the coordinator (a
    cpu_hotplug drain marking only that CPU, by remote lock or rcu-swap, never by workqueue: even 5.19's
    local_lock may be taken once its CPU is offline), empties its pcp, and recomputes high for one CPU
    fewer, which every online node applies; drains then leave it out while the audit still balances with
    its tasks' pages; bringing it online restores high and its tasks run again."""
    h = make_cluster(["housekeeping", "housekeeping", "idle"], kernel=kernel, strategy=strategy)
    h.wait_pages([1])
    # Each node builds its kernel's lists: 5.19's THP list per migratetype, v6.10's two, which 6.1.y took
    # at 6.1.97 (node.mm.constants).
    assert len(h.pcp(0).list_pages) == {"5.19": 15, "6.12": 14, "6.1.y": 14}.get(kernel, 13)
    state = h.state()
    high3 = state.high

    def high_max(online: int, high: int) -> int:
        """What pcp->high_max must become: 6.12's is the zone's managed pages / 8 over the online CPUs
        (zone_set_pageset_high_and_batch recomputes both sizes); untuned kernels report high."""
        return pcp_high.high_max(state.zone.managed_pages, state.batch, online) if kernel == "6.12" else high

    # A node takes the pageset from its next heartbeat: cpu0 registered while fewer CPUs were up.
    wait_until(
        lambda: (h.pcp(0).high_min, h.pcp(0).high_max) == (high3, high_max(3, high3)),
        10.0,
        what="cpu0 applying the pageset of 3 CPUs",
    )
    work0 = h.nodes[1].GetStats(pb.StatsRequest(cpu=1), timeout=RPC_TIMEOUT).drain_work_items
    reply = set_online(h, 1, False)
    d = reply.drain
    assert d.trigger == pb.TRIGGER_CPU_HOTPLUG and d.status == DONE, [c.error for c in d.cpus]
    assert list(d.cpus_marked) == [1] and d.cpus[0].pages > 0
    assert d.strategy == (pb.STRATEGY_RCU_SWAP if strategy == "rcu-swap" else pb.STRATEGY_REMOTE)
    assert h.nodes[1].GetStats(pb.StatsRequest(cpu=1), timeout=RPC_TIMEOUT).drain_work_items == work0
    assert h.pcp(1).count == 0
    assert reply.online_cpus == 2 and reply.high > high3 and h.state().high == reply.high
    # high_min: what pageset_update sets (high itself under 6.12's auto-tuning, which then moves within it).
    new = (reply.high, high_max(2, reply.high))
    wait_until(
        lambda: all((h.pcp(n).high_min, h.pcp(n).high_max) == new for n in (0, 2)),
        10.0,
        what="the online CPUs applying the new high and high_max",
    )
    stopped = allocs(h, 1)
    forced = drain(h, force=True)
    assert forced.status == DONE and 1 not in forced.cpus_marked
    assert allocs(h, 1) == stopped
    assert_audit_ok(h)
    reply = set_online(h, 1, True)
    assert not reply.HasField("drain") and reply.online_cpus == 3 and reply.high == high3
    wait_until(lambda: allocs(h, 1) > stopped, 10.0, what="cpu1's tasks running again")
    wait_until(
        lambda: (h.pcp(1).high_min, h.pcp(1).high_max) == (high3, high_max(3, high3)), 10.0, what="cpu1 applying high"
    )
    assert 1 in drain(h, force=True).cpus_marked
    assert_audit_ok(h)


def test_cpu_hotplug_refusals(shared_cluster):
    """Offlining a CPU twice, onlining an online one, or a CPU out of range is refused and changes nothing;
    `pcpsim cpu offline 1` / `online 1` work from the command line."""
    h = shared_cluster
    assert (
        rpc_code(h.coord.SetCpuOnline, pb.CpuOnlineRequest(cpu=0, online=True)) == grpc.StatusCode.FAILED_PRECONDITION
    )
    assert rpc_code(h.coord.SetCpuOnline, pb.CpuOnlineRequest(cpu=9, online=False)) == grpc.StatusCode.INVALID_ARGUMENT
    addr = h.cluster.coordinator_address
    token = ("--token-file", h.cluster.token_files["operator"])
    r = run_cli("cpu", "offline", "1", "--coordinator", addr, *token)
    assert r.returncode == 0 and "2 CPUs online" in r.stdout and "cpu_hotplug" in r.stdout, r.stderr
    assert (
        rpc_code(h.coord.SetCpuOnline, pb.CpuOnlineRequest(cpu=1, online=False)) == grpc.StatusCode.FAILED_PRECONDITION
    )
    r = run_cli("cpu", "online", "1", "--coordinator", addr, *token)
    assert r.returncode == 0 and "3 CPUs online" in r.stdout, r.stderr
    assert_audit_ok(h)
