"""Audit metrics: a completed audit sets pcpsim_audit_ok/lost/duplicated and counts one in pcpsim_audits_total.

audit_cluster runs on a real ZoneService with no CPU registered (so nothing is paused
or snapshotted over RPC); a block the zone gives a CPU that never reports makes the
verdict fail.
"""

import asyncio
import shutil
import subprocess
import types

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from coordinator.audit import audit_cluster
from coordinator.membership import Membership
from coordinator.metrics import AuditMetrics
from coordinator.zone_service import ZoneService
from node.mm.audit import AuditReport
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.zone import Zone
from node.shared.timebase import CostModel


def sample(registry, name):
    got = registry.get_sample_value(name)
    assert got is not None, f"no sample {name}"
    return got


def test_audit_metrics_hold_the_last_verdict_and_count_audits():
    """Before any audit: ok 0 and no audits; each observe sets the last verdict's numbers and counts one."""
    registry = CollectorRegistry()
    metrics = AuditMetrics(registry)
    assert sample(registry, "pcpsim_audits_total") == 0
    assert sample(registry, "pcpsim_audit_ok") == 0
    metrics.observe(AuditReport(ok=False, total_pages=16, lost=[3, 4], duplicated=[7]))
    assert sample(registry, "pcpsim_audit_ok") == 0
    assert sample(registry, "pcpsim_audit_lost_pages") == 2
    assert sample(registry, "pcpsim_audit_duplicated_pages") == 1
    metrics.observe(AuditReport(ok=True, total_pages=16))
    assert sample(registry, "pcpsim_audit_ok") == 1
    assert sample(registry, "pcpsim_audit_lost_pages") == 0
    assert sample(registry, "pcpsim_audit_duplicated_pages") == 0
    assert sample(registry, "pcpsim_audits_total") == 2


def test_promtool_accepts_the_audit_metrics():
    """`promtool check metrics` (lint included) accepts the audit metrics' exposition text."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH: install the Debian package `prometheus` (apt-get install prometheus)")
    registry = CollectorRegistry()
    AuditMetrics(registry).observe(AuditReport(ok=True, total_pages=16))
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=generate_latest(registry), capture_output=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


async def test_audit_cluster_reports_each_completed_audit():
    """audit_cluster hands every completed audit's report to on_report, whichever the verdict."""
    zs = ZoneService(Zone(1 << 20, 8192, 2), CostModel(), sleep=lambda s: None)
    membership = Membership(2)
    drainer = types.SimpleNamespace(pcpu_drain_mutex=asyncio.Lock())
    registry = CollectorRegistry()
    metrics = AuditMetrics(registry)
    try:
        report = await audit_cluster(membership, zs, drainer, metrics.observe)
        assert report.ok, report.errors
        assert sample(registry, "pcpsim_audit_ok") == 1
        # The zone gives cpu 1 a block, and cpu 1 never reports it: the cross-check fails.
        assert zs.rmqueue(1, 0, MIGRATE_MOVABLE, 1, "t1", "i1").pfns
        report = await audit_cluster(membership, zs, drainer, metrics.observe)
        assert not report.ok
        assert sample(registry, "pcpsim_audit_ok") == 0
        assert sample(registry, "pcpsim_audits_total") == 2
        assert not drainer.pcpu_drain_mutex.locked()
    finally:
        zs.close()
