"""deploy/: promtool accepts the Prometheus config and rules, the rules pass their promtool unit tests,
the rendered config points at the cluster, and the committed Grafana dashboards are what the generator
makes, with PromQL that parses.

promtool comes with the Debian package `prometheus` (`make test` installs it); without it these
tests fail, they do not skip.
"""

import glob
import importlib.util
import json
import os
import shutil
import subprocess

import pytest

from coordinator.tools import prometheus

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROM_DIR = os.path.join(REPO, "deploy", "prometheus")
GRAFANA_DIR = os.path.join(REPO, "deploy", "grafana")


def promtool(*args, cwd=None) -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: install the Debian package `prometheus` "
            "(sudo apt-get install prometheus), which provides it; `make test` does"
        )
    proc = subprocess.run([path, *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


def load_generator():
    spec = importlib.util.spec_from_file_location("pcpsim_grafana_generate", os.path.join(GRAFANA_DIR, "generate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_promtool_accepts_the_committed_config_and_its_rules():
    """`promtool check config` accepts deploy/prometheus/prometheus.yml (and the rule files it names)."""
    out = promtool("check", "config", os.path.join(PROM_DIR, "prometheus.yml"))
    assert "2 rule files found" in out


def test_promtool_accepts_the_rules():
    """`promtool check rules` accepts the recording and alerting rules."""
    promtool("check", "rules", *sorted(glob.glob(os.path.join(PROM_DIR, "rules", "*.yml"))))


def test_rules_pass_their_promtool_unit_tests():
    """`promtool test rules`: recording rules compute the hand-calculated values, alerts fire exactly when
    their condition has held for their `for`."""
    tests = sorted(glob.glob(os.path.join(PROM_DIR, "tests", "*.yml")))
    assert len(tests) >= 2
    promtool("test", "rules", *tests)


def test_rendered_config_names_the_targets_file_and_rules_by_absolute_path(tmp_path):
    """The rendered config reads the targets file next to the state file and the repo's rule files,
    scrapes at the asked interval with honor_labels, and promtool accepts it."""
    state = tmp_path / "state" / "cluster.json"
    targets = prometheus.targets_file(str(state))
    assert targets == str(tmp_path / "state" / "prometheus-targets.json")
    os.makedirs(os.path.dirname(targets))
    with open(targets, "w") as f:
        json.dump([{"targets": ["127.0.0.1:1"], "labels": {"job": "pcpsim-node", "cpu": "0"}}], f)
    text = prometheus.render_config(targets, scrape_interval="1s")
    assert json.dumps(targets) in text
    assert json.dumps(os.path.join(PROM_DIR, "rules", "*.yml")) in text
    assert "scrape_interval: 1s" in text and "evaluation_interval: 1s" in text
    assert "honor_labels: true" in text
    config = tmp_path / "elsewhere" / "prometheus.yml"
    config.parent.mkdir()
    config.write_text(text)
    out = promtool("check", "config", str(config), cwd=str(tmp_path))
    assert "2 rule files found" in out and "WARNING" not in out


def test_render_refuses_a_template_without_the_lines_it_rewrites(tmp_path):
    """A config whose targets line was edited away is an error naming the line, not a silent no-op."""
    template = tmp_path / "prometheus.yml"
    template.write_text("rule_files:\n  - rules/*.yml\n")
    with pytest.raises(prometheus.PrometheusError, match=r"prometheus-targets\.json"):
        prometheus.render_config("/x/targets.json", template=str(template))


def test_free_port_prefers_the_asked_port_only_while_it_is_free():
    """free_port returns the preferred port if nobody holds it, another one while somebody does."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        taken = s.getsockname()[1]
        s.listen()
        other = prometheus.free_port("127.0.0.1", taken)
        assert other != taken and other > 0
    assert prometheus.free_port("127.0.0.1", taken) == taken


def test_committed_dashboards_are_up_to_date(tmp_path):
    """Regenerating the Grafana dashboards gives exactly the committed files (no diff, none missing or extra)."""
    gen = load_generator()
    written = gen.write(str(tmp_path))
    committed = sorted(os.listdir(os.path.join(GRAFANA_DIR, "dashboards")))
    assert committed == sorted(os.path.basename(p) for p in written), (
        "run `python deploy/grafana/generate.py` and commit deploy/grafana/dashboards"
    )
    for path in written:
        with open(path) as new, open(os.path.join(GRAFANA_DIR, "dashboards", os.path.basename(path))) as old:
            assert new.read() == old.read(), (
                f"{os.path.basename(path)} is stale: run `python deploy/grafana/generate.py` and commit it"
            )


def test_dashboards_cover_the_four_views_and_use_the_provisioned_datasource():
    """Four dashboards (interference, drains, pcp and zone, cluster health), unique uids, every target on
    the datasource uid the provisioning file defines; the provider reads the dashboards folder."""
    gen = load_generator()
    assert set(gen.DASHBOARDS) == {"interference", "drains", "pcp-zone", "cluster"}
    with open(os.path.join(GRAFANA_DIR, "provisioning", "datasources", "pcpsim.yml")) as f:
        datasource = f.read()
    assert f"uid: {gen.DATASOURCE['uid']}" in datasource and "url: http://127.0.0.1:9090" in datasource
    with open(os.path.join(GRAFANA_DIR, "provisioning", "dashboards", "pcpsim.yml")) as f:
        assert "path: ${PCPSIM_GRAFANA_DASHBOARDS}" in f.read()
    uids = set()
    for name in gen.DASHBOARDS:
        d = gen.dashboard(name)
        uids.add(d["uid"])
        for p in d["panels"]:
            assert p["targets"], p["title"]
            assert all(t["datasource"] == gen.DATASOURCE for t in p["targets"])
    assert len(uids) == len(gen.DASHBOARDS)


def test_every_panel_query_parses(tmp_path):
    """Every panel's PromQL (with $__rate_interval substituted) is valid: promtool checks each as a rule."""
    gen = load_generator()
    queries = gen.queries("1m")
    assert len(queries) >= 30
    lines = ["groups:", "  - name: panels", "    rules:"]
    for i, (_dash, _title, expr) in enumerate(queries):
        lines += [f"      - record: panel:query:{i}", f"        expr: {json.dumps(expr)}"]
    rules = tmp_path / "panels.yml"
    rules.write_text("\n".join(lines) + "\n")
    out = promtool("check", "rules", str(rules))
    assert f"{len(queries)} rules found" in out
