"""deploy/compose.yaml: it parses; it names only the image built from the repository's
Dockerfile or well-known images; every port it publishes or dials is one a process really
listens on; every file it mounts exists in the repository; the processes accept its
environment; and its Prometheus config scrapes every pcpsim service at its metrics port."""

import os
import re
import shutil
import subprocess

from coordinator.__main__ import parse_args as coordinator_args
from node.__main__ import parse_args as node_args
from node.shared.config import split_host_port
from tests.deploy.manifests import DEPLOY, REPO, compose, load_all

WELL_KNOWN = {"prom/prometheus", "grafana/grafana"}
# Ports the third-party images listen on (their documented defaults; prometheus's is set in `command`).
THIRD_PARTY_PORTS = {"prom/prometheus": {9090}, "grafana/grafana": {3000}}


def services() -> dict:
    return compose()["services"]


def pcpsim_services() -> dict:
    return {name: s for name, s in services().items() if "build" in s}


def env(service: dict) -> dict[str, str]:
    e = service.get("environment", {})
    assert isinstance(e, dict), "environment as a mapping"
    return {k: str(v) for k, v in e.items()}


def image_repo(image: str) -> str:
    return image.rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image


def test_compose_parses_and_has_a_coordinator_nodes_prometheus_and_grafana():
    names = set(services())
    assert {"coordinator", "prometheus", "grafana"} <= names
    assert [n for n in sorted(names) if n.startswith("node")] == ["node0", "node1", "node2", "node3"]


def test_images_are_built_from_the_repository_dockerfile_or_well_known():
    for name, s in services().items():
        if "build" in s:
            context = os.path.normpath(os.path.join(DEPLOY, s["build"]["context"]))
            assert context == REPO, name
            assert os.path.isfile(os.path.join(context, s["build"]["dockerfile"])), name
            assert s["image"] == "pcpsim:latest", name
        else:
            repo = image_repo(s["image"])
            assert repo in WELL_KNOWN, f"{name}: {s['image']} is neither built here nor well known"
            assert ":" in s["image"] and not s["image"].endswith(":latest"), f"{name}: pin the tag"


def _listens(service: dict) -> set[int]:
    """Ports the service's process listens on."""
    if "build" in service:
        e = env(service)
        return {split_host_port(e[v])[1] for v in ("PCPSIM_LISTEN", "PCPSIM_METRICS_LISTEN")}
    return THIRD_PARTY_PORTS[image_repo(service["image"])]


def test_published_and_dialled_ports_are_ones_the_processes_listen_on():
    all_services = services()
    for name, s in all_services.items():
        for mapping in s.get("ports", []):
            host_ip, _host_port, container_port = str(mapping).split(":")
            assert host_ip == "127.0.0.1", f"{name}: publish on loopback only"
            assert int(container_port) in _listens(s), f"{name}: nothing listens on {container_port}"
    for name, s in pcpsim_services().items():
        e = env(s)
        for var in ("PCPSIM_COORDINATOR", "PCPSIM_ADVERTISE"):
            if var in e:
                host, port = split_host_port(e[var])
                assert host in all_services, f"{name}: {var} names no service ({host})"
                assert port == split_host_port(env(all_services[host])["PCPSIM_LISTEN"])[1], f"{name}: {var}"
        if "PCPSIM_ADVERTISE" in e:
            assert split_host_port(e["PCPSIM_ADVERTISE"])[0] == name, f"{name} advertises another name"


def test_the_processes_accept_the_compose_environment():
    """The coordinator expects as many CPUs as there are node services, each node is a distinct
    CPU 0..N-1 and the role map gives the roles the README's compare uses."""
    nodes = {n: s for n, s in pcpsim_services().items() if s["command"][-1] == "node"}
    roles = {}
    for _name, s in nodes.items():
        args = node_args([], environ=env(s), hostname=lambda: "compose")
        roles[args.cpu] = args.role
    coord = coordinator_args([], environ=env(services()["coordinator"]))
    assert sorted(roles) == list(range(coord.nodes))
    assert [roles[c] for c in sorted(roles)] == ["housekeeping", "housekeeping", "isolated-preemptible", "isolated-rt"]


def _mounts(service: dict) -> list[tuple[str, str]]:
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        out.append((source, target))
    return out


def test_every_mounted_file_exists_in_the_repository():
    for name, s in services().items():
        for source, _target in _mounts(s):
            assert source.startswith("./"), f"{name}: bind-mount {source} from the repository"
            path = os.path.normpath(os.path.join(DEPLOY, source))
            assert path.startswith(REPO + os.sep) and os.path.exists(path), f"{name}: {source} does not exist"


def test_prometheus_gets_the_projects_rules_and_scrapes_every_pcpsim_process():
    """Jobs and labels as `cluster up`'s file_sd targets: pcpsim-coordinator, pcpsim-node
    with cpu and role; the role labels follow the nodes' role map."""
    mounts = dict(_mounts(services()["prometheus"]))
    assert mounts["./prometheus/rules"] == "/etc/prometheus/rules"
    assert mounts["./compose/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = load_all(os.path.join(DEPLOY, "compose", "prometheus.yml"))[0]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services()["prometheus"]["command"]
    assert config["rule_files"] == ["rules/*.yml"]  # relative to /etc/prometheus
    targets = {}
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            for target in group["targets"]:
                targets[target] = (job["job_name"], group.get("labels", {}))
    expected = {}
    for name, s in pcpsim_services().items():
        port = split_host_port(env(s)["PCPSIM_METRICS_LISTEN"])[1]
        if name == "coordinator":
            expected[f"{name}:{port}"] = ("pcpsim-coordinator", {"role": "coordinator"})
        else:
            args = node_args([], environ=env(s), hostname=lambda: "compose")
            expected[f"{name}:{port}"] = ("pcpsim-node", {"cpu": str(args.cpu), "role": args.role})
    assert targets == expected


def test_grafana_is_provisioned_with_the_projects_dashboards():
    g = services()["grafana"]
    mounts = dict(_mounts(g))
    assert mounts["./grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    assert mounts["./grafana/dashboards"] == env(g)["PCPSIM_GRAFANA_DASHBOARDS"]
    [datasource] = load_all(os.path.join(DEPLOY, "compose/grafana-datasource.yml"))[0]["datasources"]
    [project] = load_all(os.path.join(DEPLOY, "grafana/provisioning/datasources/pcpsim.yml"))[0]["datasources"]
    assert datasource["uid"] == project["uid"]  # the dashboards refer to it
    assert datasource["url"] == "http://prometheus:9090"


def test_promtool_accepts_the_compose_prometheus_config(tmp_path):
    """Laid out as in the container: the config with the project's rules beside it."""
    assert shutil.which("promtool"), "promtool is needed: install Debian's prometheus package (make test does)"
    shutil.copy(os.path.join(DEPLOY, "compose", "prometheus.yml"), tmp_path / "prometheus.yml")
    shutil.copytree(os.path.join(DEPLOY, "prometheus", "rules"), tmp_path / "rules")
    out = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"SUCCESS: [1-9][0-9]* rule files found", out.stdout + out.stderr), out.stdout + out.stderr
