"""deploy/compose.yaml, read offline: it parses; it names only the image built from the
repository's Dockerfile or well-known images; every port it publishes or dials is one a process
really listens on; every file it mounts exists in the repository; the processes accept its
environment; its Prometheus config scrapes every pcpsim service at its metrics port; Grafana is
behind a profile; and deploy/compose/secure.yaml gives every pcpsim service the token and TLS
files deploy/containers/secrets.py writes, which the processes accept.

The file is read with its `${VAR:-default}` variables at their defaults, as a user who sets none
gets it. `make test-containers` (deploy/containers/) runs the stack for real."""

import os
import re
import shutil
import subprocess
import sys

from coordinator.__main__ import parse_args as coordinator_args
from node.__main__ import parse_args as node_args
from node.shared import security
from node.shared.config import split_host_port
from node.shared.security.certs import load_tls
from node.shared.security.tokens import load_token_file
from tests.deploy.manifests import DEPLOY, REPO, load_all

WELL_KNOWN = {"prom/prometheus", "grafana/grafana"}
# Ports the third-party images listen on (their documented defaults; prometheus's is set in `command`).
THIRD_PARTY_PORTS = {"prom/prometheus": {9090}, "grafana/grafana": {3000}}


SECURE = os.path.join(DEPLOY, "compose", "secure.yaml")


def interpolate(value, environ: dict[str, str] | None = None):
    """`value` with Compose's ${VAR}, ${VAR:-default} and ${VAR:?message} replaced, from
    `environ` (default: none set, so defaults apply; an unset ${VAR:?} is an error)."""
    environ = environ or {}
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if environ.get(name):
            return environ[name]
        assert op != ":?", f"${{{name}}} must be set: {arg}"
        return arg if op == ":-" else ""

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:-|:\?)([^}]*))?\}", one, value)


def compose(environ: dict[str, str] | None = None) -> dict:
    return interpolate(load_all(os.path.join(DEPLOY, "compose.yaml"))[0], environ)


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


def test_only_grafana_is_behind_a_profile():
    """`up` without a profile starts all but Grafana (make test-containers cannot get its image);
    users add `--profile grafana`."""
    profiles = {name: s.get("profiles") for name, s in services().items() if s.get("profiles")}
    assert profiles == {"grafana": ["grafana"]}


def test_the_variables_default_to_what_users_get():
    """Host ports 50051 and 9090, the upstream Prometheus image; the test's values replace them."""
    mine = {
        "PCPSIM_COORDINATOR_PORT": "41001",
        "PCPSIM_PROMETHEUS_PORT": "41002",
        "PCPSIM_PROMETHEUS_IMAGE": "localhost/pcpsim-prometheus:2.42",
    }
    default, test = services(), compose(mine)["services"]
    assert default["coordinator"]["ports"] == ["127.0.0.1:50051:50051"]
    assert default["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]
    assert default["prometheus"]["image"] == "prom/prometheus:v2.42.0"
    assert test["coordinator"]["ports"] == ["127.0.0.1:41001:50051"]
    assert test["prometheus"]["ports"] == ["127.0.0.1:41002:9090"]
    assert test["prometheus"]["image"] == "localhost/pcpsim-prometheus:2.42"
    local = open(os.path.join(DEPLOY, "containers", "prometheus.Dockerfile")).read()
    assert 'ENTRYPOINT ["/usr/bin/prometheus"]' in local, "used like the upstream image: command = its flags"


def test_pcpsim_containers_run_read_only_with_a_small_tmp():
    for name, s in pcpsim_services().items():
        assert s["read_only"] is True, name
        assert [t.split(":")[0] for t in s["tmpfs"]] == ["/tmp"], name
    assert services()["prometheus"]["read_only"] is True


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
    named = set(compose().get("volumes", {}))
    assert named == {"prometheus-data"}
    for name, s in services().items():
        for source, _target in _mounts(s):
            if source in named:
                continue
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


def secure_services() -> dict:
    return load_all(SECURE)[0]["services"]


def test_secure_override_covers_every_pcpsim_service_and_nothing_else():
    assert set(secure_services()) == set(pcpsim_services())
    with_secrets = interpolate(secure_services(), {"PCPSIM_SECRETS": "/s"})
    for name, s in with_secrets.items():
        assert s["volumes"] == ["/s:/etc/pcpsim:ro"], name
    try:
        interpolate(secure_services())
    except AssertionError as err:
        assert "PCPSIM_SECRETS" in str(err)
    else:
        raise AssertionError("secure.yaml must refuse to start without PCPSIM_SECRETS")


def test_secure_override_names_files_secrets_py_writes_and_the_processes_accept_them(tmp_path):
    """secrets.py into a directory; every file the override names is there; the processes' own
    loaders accept each service's token file (with the role it runs as) and TLS files; and the
    processes parse the merged environment."""
    out = tmp_path / "s"
    r = subprocess.run(
        [sys.executable, "deploy/containers/secrets.py", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    plain = services()
    for name, s in secure_services().items():
        e = {k: str(v) for k, v in s["environment"].items()}
        local = {k: v.replace("/etc/pcpsim", str(out)) for k, v in e.items()}
        for var in ("PCPSIM_TOKEN_FILE", "PCPSIM_TLS_CERT", "PCPSIM_TLS_KEY", "PCPSIM_TLS_CA"):
            assert os.path.isfile(local[var]), f"{name}: {var} {e[var]} is not written by secrets.py"
        role = "coordinator" if name == "coordinator" else "node"
        assert os.path.basename(e["PCPSIM_TOKEN_FILE"]) == f"{role}.token"
        load_token_file(local["PCPSIM_TOKEN_FILE"], security.OPERATOR if role == "coordinator" else security.NODE)
        tls = load_tls(
            local["PCPSIM_TLS_CERT"],
            local["PCPSIM_TLS_KEY"],
            local["PCPSIM_TLS_CA"],
            e["PCPSIM_TLS_CLIENT_AUTH"] == "1",
        )
        assert tls is not None
        merged = {**env(plain[name]), **local}
        if role == "node":
            node_args([], environ=merged, hostname=lambda: "compose")
        else:
            coordinator_args([], environ=merged)
    load_token_file(str(out / "operator.token"), security.OPERATOR)
