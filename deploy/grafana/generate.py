"""Generate pcpsim's Grafana dashboards: `python deploy/grafana/generate.py` writes dashboards/*.json.

The JSON files are generated and committed; edit this file, not them, and regenerate
(tests/unit/test_prometheus_config.py proves the committed files are up to date, and
tests/integration/test_prometheus.py queries every panel's PromQL against a running
cluster: `queries()` lists them).

Panels read the recording rules of deploy/prometheus/rules/recording.yml where one
exists, raw series otherwise. Raw rates use Grafana's $__rate_interval, which Grafana
sizes from the datasource's scrape interval (provisioning/datasources: 5s); `queries()`
substitutes a fixed window for use outside Grafana. All times are wall seconds (divide
by pcpsim_time_scale_ratio for kernel time).
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "dashboards")
DATASOURCE = {"type": "prometheus", "uid": "pcpsim-prometheus"}  # provisioning/datasources/pcpsim.yml
RATE = "$__rate_interval"


def q99(metric: str, by: str) -> str:
    return f"histogram_quantile(0.99, sum by ({by}, le) (rate({metric}_bucket[{RATE}])))"


# (title, description, unit, [(expr, legend)]) per panel, in reading order, two per row.
DASHBOARDS = {
    "interference": (
        "pcpsim: interference on isolated CPUs",
        [
            (
                "Wake-up latency p50 by CPU",
                "Median lateness of the latency task's wake-ups (cyclictest).",
                "s",
                [("cpu:pcpsim_task_wakeup_latency_seconds:p50_rate1m", "cpu{{cpu}}")],
            ),
            (
                "Wake-up latency p99 by CPU",
                "99th percentile lateness of the latency task's wake-ups.",
                "s",
                [("cpu:pcpsim_task_wakeup_latency_seconds:p99_rate1m", "cpu{{cpu}}")],
            ),
            (
                "Noise by cause",
                "Share of the latency task's windows taken by other activity, by cause (osnoise).",
                "percentunit",
                [("cpu_cause:pcpsim_task_stolen_seconds:rate1m", "cpu{{cpu}} {{cause}}")],
            ),
            (
                "Noise events by cause",
                "Interference events per second in the latency task's windows.",
                "ops",
                [("cpu_cause:pcpsim_task_noise_events:rate1m", "cpu{{cpu}} {{cause}}")],
            ),
            (
                "Deadline misses by cause",
                "Latency task periods per second that missed their deadline or were skipped, each under the "
                "cause that stole the most of it (none: nothing did; the task's own work did not fit).",
                "ops",
                [("cpu_cause:pcpsim_task_deadline_misses:rate1m", "cpu{{cpu}} {{cause}}")],
            ),
            (
                "Longest single noise",
                "Longest single interference since the node started.",
                "s",
                [("pcpsim_task_max_single_noise_seconds", "cpu{{cpu}} {{kind}}")],
            ),
            (
                "Workqueue queue delay p99",
                "queue_work_on -> start on the CPU: what a workqueue drain waits for behind the CPU's task.",
                "s",
                [(q99("pcpsim_workqueue_queue_delay_seconds", "cpu"), "cpu{{cpu}}")],
            ),
            (
                "CPU busy",
                "Share of wall time each CPU was occupied by modeled work.",
                "percentunit",
                [(f"sum by (cpu) (rate(pcpsim_cpu_busy_seconds_total[{RATE}]))", "cpu{{cpu}}")],
            ),
        ],
    ),
    "drains": (
        "pcpsim: drain_all_pages",
        [
            (
                "drain_all_pages duration by strategy",
                "Whole drain, mutex held -> every marked CPU drained; NaN while a strategy ran no drain in the window.",
                "s",
                [
                    ("strategy:pcpsim_drain_all_duration_seconds:p50_rate1m", "{{strategy}} p50"),
                    ("strategy:pcpsim_drain_all_duration_seconds:p99_rate1m", "{{strategy}} p99"),
                ],
            ),
            (
                "Drains by outcome",
                "drain_all_pages calls per second by strategy and status (skipped: a reclaim drain found one running).",
                "ops",
                [("strategy_status:pcpsim_drain_all:rate1m", "{{strategy}} {{status}}")],
            ),
            (
                "Skipped drains",
                "Drains skipped since the coordinator started, by strategy and trigger.",
                "short",
                [('sum by (strategy, trigger) (pcpsim_drain_all_total{status="skipped"})', "{{strategy}} {{trigger}}")],
            ),
            (
                "Pages drained per CPU",
                "Base pages per second drained from each CPU's pcp lists.",
                "short",
                [("strategy_cpu:pcpsim_drain_pages:rate1m", "{{strategy}} cpu{{cpu}}")],
            ),
            (
                "Per-CPU drain time p99",
                "One CPU's part of a drain as the drainer saw it (workqueue: queued -> flush returned).",
                "s",
                [("strategy_cpu:pcpsim_drain_cpu_duration_seconds:p99_rate1m", "{{strategy}} cpu{{cpu}}")],
            ),
            (
                "Per-CPU drain wait p99",
                "workqueue: queued -> started on the CPU; remote: waiting for the pcp lock.",
                "s",
                [("strategy_cpu:pcpsim_drain_cpu_wait_seconds:p99_rate1m", "{{strategy}} cpu{{cpu}}")],
            ),
            (
                "Drain running",
                "1 while pcpu_drain_mutex is held (a drain or an audit).",
                "short",
                [("pcpsim_drain_running", "running")],
            ),
            (
                "Per-CPU drain failures",
                "Per-CPU drains per second that failed (RPC error, flush timeout, zone refusal).",
                "ops",
                [
                    (
                        f"sum by (strategy, cpu) (rate(pcpsim_drain_cpu_failures_total[{RATE}]))",
                        "{{strategy}} cpu{{cpu}}",
                    )
                ],
            ),
        ],
    ),
    "pcp-zone": (
        "pcpsim: pcp lists and zone",
        [
            (
                "pcp count per CPU",
                "pcp->count (base pages on all lists) and pcp->high.",
                "short",
                [("pcpsim_pcp_count_pages", "cpu{{cpu}} count"), ("pcpsim_pcp_high_pages", "cpu{{cpu}} high")],
            ),
            (
                "pcp pages by order",
                "Base pages on each CPU's pcp lists by order (9: the THP list).",
                "short",
                [("sum by (cpu, order) (pcpsim_pcp_pages)", "cpu{{cpu}} order {{order}}")],
            ),
            (
                "pcp trylock failures",
                "Fast-path pcp trylocks per second that found the lock held elsewhere.",
                "ops",
                [("cpu_path:pcpsim_pcp_trylock_failures:rate1m", "cpu{{cpu}} {{path}}")],
            ),
            (
                "Buddy fallbacks",
                "Allocations and frees per second that went to the buddy instead of the pcp.",
                "ops",
                [("cpu_path:pcpsim_pcp_buddy_fallbacks:rate1m", "cpu{{cpu}} {{path}}")],
            ),
            (
                "pcp lock contention",
                "Share of time each CPU's tasks lost to a held pcp lock.",
                "percentunit",
                [(f"sum by (cpu) (rate(pcpsim_pcp_lock_contention_seconds_total[{RATE}]))", "cpu{{cpu}}")],
            ),
            (
                "zone->lock waits",
                "Share of time each CPU's zone requests (refills, frees, drains) queued for zone->lock behind "
                "other CPUs, as the zone timed them.",
                "percentunit",
                [(f"sum by (cpu) (rate(pcpsim_zone_lock_wait_seconds_total[{RATE}]))", "cpu{{cpu}}")],
            ),
            (
                "Pages freed from pcp lists",
                "Base pages per second freed to the zone: reason high (count reached high) or drain.",
                "short",
                [("cpu_reason:pcpsim_pcp_freed_pages:rate1m", "cpu{{cpu}} {{reason}}")],
            ),
            (
                "Remote pcp lock hold p99",
                "How long a remote drainer held a CPU's pcp lock.",
                "s",
                [(q99("pcpsim_pcp_lock_hold_seconds", "cpu"), "cpu{{cpu}}")],
            ),
            (
                "Zone free pages vs watermarks",
                "Free base pages in the buddy allocator (not counting pcp lists) "
                "against the min, low and high watermarks.",
                "short",
                [("pcpsim_zone_free_pages", "free"), ("pcpsim_zone_watermark_pages", "{{level}}")],
            ),
            (
                "Zone free blocks by order",
                "free_area[order].nr_free.",
                "short",
                [("pcpsim_zone_free_blocks", "order {{order}}")],
            ),
            (
                "Zone reclaim and refusals",
                "ZONE_RECLAIM_ACTIVE, and refills or buddy allocations refused per second below the min watermark.",
                "short",
                [
                    ("pcpsim_zone_reclaim_active", "reclaim active"),
                    (f"rate(pcpsim_zone_refusals_total[{RATE}])", "refusals/s"),
                ],
            ),
            (
                "zone->lock busy",
                "Share of wall time zone->lock was held.",
                "percentunit",
                [(f"rate(pcpsim_zone_lock_hold_seconds_total[{RATE}])", "zone->lock")],
            ),
        ],
    ),
    "cluster": (
        "pcpsim: cluster health",
        [
            (
                "Nodes up",
                "1 if the coordinator has current heartbeats from the CPU.",
                "short",
                [("pcpsim_node_up", "cpu{{cpu}} {{role}}")],
            ),
            (
                "Scrape targets up",
                "Prometheus reached each process's /metrics.",
                "short",
                [('up{job=~"pcpsim-.*"}', "{{job}} {{cpu}}")],
            ),
            (
                "Heartbeat age",
                "Time since each CPU's last heartbeat (down past --failure-timeout-ms).",
                "s",
                [("pcpsim_node_heartbeat_age_seconds", "cpu{{cpu}}")],
            ),
            (
                "Registrations",
                "Registrations per CPU (a restart adds one).",
                "short",
                [("pcpsim_node_registrations_total", "cpu{{cpu}}")],
            ),
            (
                "RPC rate",
                "RPCs served per second, by process kind and method.",
                "reqps",
                [("job_method:pcpsim_rpc_requests:rate1m", "{{job}} {{method}}")],
            ),
            (
                "RPC errors",
                "Share of RPCs that did not end OK, by process kind and method.",
                "percentunit",
                [("job_method:pcpsim_rpc_errors:ratio_rate1m", "{{job}} {{method}}")],
            ),
            (
                "RPC duration p99",
                "Server-side time to serve an RPC.",
                "s",
                [("job_method:pcpsim_rpc_duration_seconds:p99_rate1m", "{{job}} {{method}}")],
            ),
            (
                "Last audit",
                "1 if the last audit found every page exactly once; lost and duplicated base pages.",
                "short",
                [
                    ("pcpsim_audit_ok", "ok"),
                    ("pcpsim_audit_lost_pages", "lost"),
                    ("pcpsim_audit_duplicated_pages", "duplicated"),
                    ("pcpsim_audits_total", "audits"),
                ],
            ),
            (
                "Task step errors",
                "Task or IRQ steps per second that failed and were skipped.",
                "ops",
                [(f"sum by (cpu) (rate(pcpsim_cpu_step_errors_total[{RATE}]))", "cpu{{cpu}}")],
            ),
        ],
    ),
}


def panel(pid: int, title: str, description: str, unit: str, targets, x: int, y: int) -> dict:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 0}}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "range": True, "refId": chr(ord("A") + i)}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard(name: str) -> dict:
    title, panels = DASHBOARDS[name]
    return {
        "uid": f"pcpsim-{name}",
        "title": title,
        "tags": ["pcpsim"],
        "editable": True,
        "description": "Generated by deploy/grafana/generate.py: edit that and regenerate, not this file.",
        "schemaVersion": 39,
        "version": 1,
        "timezone": "browser",
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": []},
        "links": [],
        "panels": [panel(i + 1, *p, x=12 * (i % 2), y=8 * (i // 2)) for i, p in enumerate(panels)],
    }


def render(name: str) -> str:
    return json.dumps(dashboard(name), indent=2, sort_keys=True) + "\n"


def queries(rate_interval: str = "1m") -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) for every panel target, $__rate_interval replaced by `rate_interval`."""
    return [
        (name, title, expr.replace(RATE, rate_interval))
        for name, (_, panels) in DASHBOARDS.items()
        for title, _desc, _unit, targets in panels
        for expr, _legend in targets
    ]


def write(out_dir: str = OUT_DIR) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name in DASHBOARDS:
        path = os.path.join(out_dir, f"pcpsim-{name}.json")
        with open(path, "w") as f:
            f.write(render(name))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(sys.argv[1] if len(sys.argv) > 1 else OUT_DIR):
        print(path)
