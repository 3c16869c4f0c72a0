"""The Kubernetes manifests of deploy/k8s: valid against the Kubernetes schemas in strict
mode (offline, kubernetes-validate), consistent with each other (names, labels, ports,
probes), accepted by the processes' own flag parsers, and one knob (the CPU count) for
the StatefulSet's replicas and the coordinator's PCPSIM_NODES."""

import os
import shutil
import subprocess

import pytest
import yaml
from kubernetes_validate import utils as kv

from coordinator.__main__ import parse_args as coordinator_args
from node.__main__ import parse_args as node_args
from node.shared import security
from node.shared.config import split_host_port
from tests.deploy.manifests import (
    K8S,
    SERVICEMONITOR,
    find,
    k8s_files,
    k8s_objects,
    kustomization,
    load_all,
    local_token_files,
    only_container,
    pod_env,
    service_names,
    with_local_state,
    with_local_tokens,
)

# Native gRPC probes are GA from 1.27; validate against it and the newest schemas shipped.
K8S_VERSIONS = ("1.27.0", kv.latest_version())
CUSTOM = {("monitoring.coreos.com/v1", "ServiceMonitor")}  # a CRD: no upstream schema; checked below


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", k8s_files(), ids=os.path.basename)
def test_every_manifest_is_valid_against_the_kubernetes_schemas_in_strict_mode(path, version):
    """Strict: an unknown or misspelt field fails, not only a wrong type."""
    docs = load_all(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM:
            continue
        kv.validate(doc, version, strict=True)  # raises ValidationError / SchemaNotFoundError


def test_the_kustomization_lists_every_manifest_but_the_servicemonitor():
    """The ServiceMonitor's CRD may be missing: it is applied on its own, by Operator users. A
    subdirectory (sweep/) is a kustomization of its own (tests/deploy/test_k8s_sweep.py)."""
    listed = set(kustomization()["resources"])
    files = {os.path.relpath(p, K8S) for p in k8s_files() if os.path.dirname(p) == K8S}
    assert listed == files - {"servicemonitor.yaml"}
    assert all(os.path.exists(os.path.join(K8S, r)) for r in listed)


def test_one_knob_sets_the_cpu_count_everywhere():
    """`replicas` of the node StatefulSet is the knob; a replacement copies it into the
    coordinator's PCPSIM_NODES, which already agrees with it in the manifests."""
    k = kustomization()
    sts, coord = find("StatefulSet", "pcpsim-node"), find("Deployment", "pcpsim-coordinator")
    [knob] = k["replicas"]
    assert knob["name"] == sts["metadata"]["name"]
    assert knob["count"] == sts["spec"]["replicas"]
    [replacement] = [r for r in k["replacements"] if r["source"]["fieldPath"] == "spec.replicas"]
    assert replacement["source"] == {"kind": "StatefulSet", "name": "pcpsim-node", "fieldPath": "spec.replicas"}
    [target] = replacement["targets"]
    assert target["select"] == {"kind": "Deployment", "name": "pcpsim-coordinator"}
    assert target["fieldPaths"] == [
        f"spec.template.spec.containers.[name={only_container(coord)['name']}].env.[name=PCPSIM_NODES].value"
    ]
    env = {e["name"]: e.get("value") for e in only_container(coord)["env"]}
    assert env["PCPSIM_NODES"] == str(knob["count"])


def test_the_coordinators_nohz_full_is_the_nodes_isolated_cpus():
    """The nodes derive their roles from PCPSIM_ISOLATED; the coordinator is told the same CPUs as the
    machine's nohz_full= (qpw's key, and it refuses a node whose role disagrees): a replacement copies it."""
    sts, coord = find("StatefulSet", "pcpsim-node"), find("Deployment", "pcpsim-coordinator")
    node_env = {e["name"]: e.get("value") for e in only_container(sts)["env"]}
    coord_env = {e["name"]: e.get("value") for e in only_container(coord)["env"]}
    assert coord_env["PCPSIM_NOHZ_FULL"] == node_env["PCPSIM_ISOLATED"]
    [replacement] = [r for r in kustomization()["replacements"] if "PCPSIM_ISOLATED" in r["source"]["fieldPath"]]
    node = only_container(sts)["name"]
    assert replacement["source"] == {
        "kind": "StatefulSet",
        "name": "pcpsim-node",
        "fieldPath": f"spec.template.spec.containers.[name={node}].env.[name=PCPSIM_ISOLATED].value",
    }
    [target] = replacement["targets"]
    assert target["select"] == {"kind": "Deployment", "name": "pcpsim-coordinator"}
    assert target["fieldPaths"] == [
        f"spec.template.spec.containers.[name={only_container(coord)['name']}].env.[name=PCPSIM_NOHZ_FULL].value"
    ]


def test_kustomize_renders_the_knob_into_both_places(tmp_path):
    """Render with kubectl's kustomize after changing only the count and the nodes' isolated CPUs:
    replicas and PCPSIM_NODES follow (as a string), the coordinator's PCPSIM_NOHZ_FULL follows the
    nodes' PCPSIM_ISOLATED, and every rendered object is still valid."""
    assert shutil.which("kubectl"), "kubectl (with its built-in kustomize) is needed for this test"
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    text = (copy / "kustomization.yaml").read_text()
    assert text.count("count: 4") == 1
    (copy / "kustomization.yaml").write_text(text.replace("count: 4", "count: 7"))
    nodes = (copy / "node-statefulset.yaml").read_text()
    isolated = '- name: PCPSIM_ISOLATED\n              value: "2-3"'
    assert nodes.count(isolated) == 1
    (copy / "node-statefulset.yaml").write_text(nodes.replace(isolated, isolated.replace("2-3", "1-3")))
    out = subprocess.run(["kubectl", "kustomize", str(copy)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert by_kind[("StatefulSet", "pcpsim-node")]["spec"]["replicas"] == 7
    env = {e["name"]: e.get("value") for e in only_container(by_kind[("Deployment", "pcpsim-coordinator")])["env"]}
    assert env["PCPSIM_NODES"] == "7"
    assert env["PCPSIM_NOHZ_FULL"] == "1-3"
    assert all(d["metadata"]["namespace"] == "pcpsim" for d in docs if d["kind"] != "Namespace")
    for doc in docs:
        kv.validate(doc, kv.latest_version(), strict=True)


def _ports(container) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def _service_port(service, name) -> dict:
    [port] = [p for p in service["spec"]["ports"] if p["name"] == name]
    return port


@pytest.mark.parametrize(
    "workload, service",
    [(("StatefulSet", "pcpsim-node"), "pcpsim-node"), (("Deployment", "pcpsim-coordinator"), "pcpsim-coordinator")],
)
def test_ports_probes_and_annotations_match_what_the_process_listens_on(workload, service):
    """The gRPC port the process binds (PCPSIM_LISTEN) is the container's grpc port, the
    Service's grpc target and every probe's port; probes are native gRPC probes; the
    metrics port (PCPSIM_METRICS_LISTEN) is the annotated scrape port and the Service's."""
    w, svc = find(*workload), find("Service", service)
    c = only_container(w)
    env = {e["name"]: e.get("value") for e in c["env"]}
    grpc_port = split_host_port(env["PCPSIM_LISTEN"])[1]
    metrics_port = split_host_port(env["PCPSIM_METRICS_LISTEN"])[1]
    assert _ports(c) == {"grpc": grpc_port, "metrics": metrics_port}
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == grpc_port, probe
        assert set(c[probe]) - {
            "initialDelaySeconds",
            "periodSeconds",
            "timeoutSeconds",
            "failureThreshold",
            "successThreshold",
        } == {"grpc"}
    if "startupProbe" in c:
        assert c["startupProbe"]["grpc"]["port"] == grpc_port
    for name, port in (("grpc", grpc_port), ("metrics", metrics_port)):
        sp = _service_port(svc, name)
        assert sp["targetPort"] in (name, port) and sp["port"] == port
    annotations = w["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(metrics_port),
        "prometheus.io/path": "/metrics",
    }
    pod_labels = w["spec"]["template"]["metadata"]["labels"]
    assert w["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert set(c["resources"]) == {"requests", "limits"}
    assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory"}


def test_nodes_find_the_coordinator_and_advertise_themselves_by_stable_names():
    """No loopback anywhere: a node dials the coordinator's Service and registers the DNS
    name its headless Service gives its pod, at its own gRPC port."""
    sts, ns = find("StatefulSet", "pcpsim-node"), kustomization()["namespace"]
    headless = find("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    env = pod_env(only_container(sts), "pcpsim-node-2", ns)
    host, port = split_host_port(env["PCPSIM_COORDINATOR"])
    coord_svc = find("Service", "pcpsim-coordinator")
    assert host in service_names("pcpsim-coordinator", ns) and port == _service_port(coord_svc, "grpc")["port"]
    assert env["PCPSIM_ADVERTISE"] == f"pcpsim-node-2.pcpsim-node.{ns}.svc:{split_host_port(env['PCPSIM_LISTEN'])[1]}"
    for obj in k8s_objects():
        text = yaml.safe_dump(obj)
        assert "127.0.0.1" not in text and "localhost" not in text, obj["metadata"]["name"]


def test_the_processes_accept_the_manifests_environment(tmp_path):
    """Parsed by the real flag parsers, as the containers start (with real token files where the
    Secret is mounted): pod N is CPU N, with the role the map gives it, authenticating as a node;
    the coordinator expects as many CPUs as there are replicas and authenticates as the operator."""
    sts, coord, ns = find("StatefulSet", "pcpsim-node"), find("Deployment", "pcpsim-coordinator"), "pcpsim"
    files = local_token_files(str(tmp_path / "tokens"))
    roles = []
    for n in range(sts["spec"]["replicas"]):
        pod = f"pcpsim-node-{n}"
        args = node_args(
            [], environ=with_local_tokens(pod_env(only_container(sts), pod, ns), files), hostname=lambda pod=pod: pod
        )
        assert args.cpu == n and args.advertise.startswith(pod + ".")
        assert args.security.token == security.load_token_file(files["node.token"], security.NODE).token
        roles.append(args.role)
    assert roles == ["housekeeping", "housekeeping", "isolated-preemptible", "isolated-rt"]
    env = pod_env(only_container(coord), "pcpsim-coordinator-x", ns)
    args = coordinator_args([], environ=with_local_state(with_local_tokens(env, files), str(tmp_path / "state")))
    assert args.nodes == sts["spec"]["replicas"] and args.listen == "0.0.0.0:50051"
    assert args.store.directory == str(tmp_path / "state")
    assert args.security.token == security.load_token_file(files["operator.token"], security.OPERATOR).token


def test_every_pod_mounts_only_its_own_token_file_and_names_it_in_the_environment():
    """The Secret holds the coordinator's and the nodes' token files; each pod mounts only its
    own (read-only, not world-readable: the processes refuse that) and PCPSIM_TOKEN_FILE names
    it. The placeholder secrets have the right shape (a node's file holds only the operator
    secret's digest) and are refused by the processes until replaced."""
    secret = find("Secret", "pcpsim-token")
    assert set(secret["stringData"]) == {"coordinator.token", "node.token"}
    for workload, key, role in (
        (find("StatefulSet", "pcpsim-node"), "node.token", security.NODE),
        (find("Deployment", "pcpsim-coordinator"), "coordinator.token", security.OPERATOR),
    ):
        spec = workload["spec"]["template"]["spec"]
        c = only_container(workload)
        [volume] = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "pcpsim-token"]
        assert [item["key"] for item in volume["secret"]["items"]] == [key]
        assert volume["secret"]["defaultMode"] & 0o007 == 0
        [mount] = [m for m in c["volumeMounts"] if m["name"] == volume["name"]]
        assert mount["readOnly"] is True
        env = {e["name"]: e.get("value") for e in c["env"]}
        [item] = volume["secret"]["items"]
        assert env["PCPSIM_TOKEN_FILE"] == f"{mount['mountPath']}/{item['path']}"
        text = secret["stringData"][key]
        with pytest.raises(security.SecurityError, match="placeholder"):
            security.parse_token_file(text, key)
        lines = dict(line.split("=", 1) for line in text.split())
        if role == security.NODE:
            assert set(lines) == {"node", "operator.sha256", "coordinator.sha256"}
        else:
            assert set(lines) == {"node", "coordinator", "operator"}
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["enableServiceLinks"] is False  # no PCPSIM_COORDINATOR_PORT=tcp://... next to ours


def test_the_servicemonitor_selects_both_services_and_a_port_they_have():
    """Structural check of the Prometheus Operator CRD (no schema ships for it)."""
    [sm] = load_all(SERVICEMONITOR)
    assert (sm["apiVersion"], sm["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    assert set(sm) == {"apiVersion", "kind", "metadata", "spec"} and sm["metadata"]["name"]
    selector = sm["spec"]["selector"]["matchLabels"]
    services = [o for o in k8s_objects() if o["kind"] == "Service"]
    selected = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
    assert {s["metadata"]["name"] for s in selected} == {"pcpsim-node", "pcpsim-coordinator"}
    assert sm["spec"]["endpoints"]
    for endpoint in sm["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "honorLabels", "scrapeTimeout"}
        for s in selected:
            assert endpoint["port"] in {p["name"] for p in s["spec"]["ports"]}, s["metadata"]["name"]
        assert endpoint["path"] == "/metrics"


def test_the_coordinator_state_has_a_single_writer():
    """One coordinator at a time: one replica, Recreate, and its state directory on a ReadWriteOncePod
    claim (a second pod cannot mount it while the first holds it), mounted where PCPSIM_STATE_DIR points."""
    coord = find("Deployment", "pcpsim-coordinator")
    assert coord["spec"]["replicas"] == 1 and coord["spec"]["strategy"]["type"] == "Recreate"
    c = only_container(coord)
    state_dir = pod_env(c, "pcpsim-coordinator-x", kustomization()["namespace"])["PCPSIM_STATE_DIR"]
    [mount] = [m for m in c["volumeMounts"] if m["mountPath"] == state_dir]
    assert not mount.get("readOnly")
    [volume] = [v for v in coord["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    claim = find("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOncePod"]
