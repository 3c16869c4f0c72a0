"""Reading the deployment files of deploy/ for the tests: Kubernetes manifests, compose.yaml.

Also how a manifest's container becomes a process here: its env list resolved the way the
kubelet does (fieldRef, then $(VAR) references to earlier entries), and its cluster names
(Services, pods' DNS names, wildcard listen addresses) replaced by loopback ones.
"""

import os
import re

import yaml

from node.shared import security

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO, "deploy")
K8S = os.path.join(DEPLOY, "k8s")
COMPOSE = os.path.join(DEPLOY, "compose.yaml")
KUSTOMIZATION = os.path.join(K8S, "kustomization.yaml")
SERVICEMONITOR = os.path.join(K8S, "servicemonitor.yaml")


def load_all(path: str) -> list[dict]:
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def k8s_files() -> list[str]:
    """Every manifest under deploy/k8s (the kustomization itself excluded)."""
    out = []
    for root, _dirs, files in os.walk(K8S):
        out += [os.path.join(root, f) for f in files if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml"]
    return sorted(out)


def k8s_objects() -> list[dict]:
    return [doc for path in k8s_files() for doc in load_all(path)]


def find(kind: str, name: str | None = None) -> dict:
    found = [d for d in k8s_objects() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def only_container(workload: dict) -> dict:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']}: expected one container"
    return containers[0]


def kustomization() -> dict:
    return load_all(KUSTOMIZATION)[0]


def compose() -> dict:
    return load_all(COMPOSE)[0]


# ------------------------------------------------------------ env, as the kubelet builds it
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(value: str, env: dict) -> str:
    """Kubernetes' $(VAR) expansion: earlier entries only; $$ escapes; unknown refs stay."""
    return _REF.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


def pod_env(container: dict, pod_name: str, namespace: str) -> dict[str, str]:
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace}
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = expand(str(entry["value"]), env)
        else:
            ref = entry["valueFrom"]["fieldRef"]["fieldPath"]
            assert ref in fields, f"{entry['name']}: fieldRef {ref} not supported by this test"
            env[entry["name"]] = fields[ref]
    return env


def argv(container: dict, python: str) -> list[str]:
    """The container's command line, with the image's `python` replaced by `python`."""
    cmd = list(container.get("command", [])) + list(container.get("args", []))
    assert cmd and cmd[0] == "python", f"expected a python command, got {cmd}"
    return [python, *cmd[1:]]


def service_names(service: str, namespace: str) -> set[str]:
    """Every DNS spelling of a Service."""
    return {service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"}


def local_token_files(directory: str) -> dict[str, str]:
    """Fresh token files as a deployment makes them (`pcpsim tokens DIR`), by the Secret key they
    stand for ("coordinator.token", "node.token"; and "operator.token", the CLI's)."""
    return {os.path.basename(p): p for p in security.generate_token_files(directory).values()}


def with_local_state(env: dict[str, str], directory: str) -> dict[str, str]:
    """`env` with PCPSIM_STATE_DIR, the state volume's mount, replaced by a local directory (made here)."""
    if "PCPSIM_STATE_DIR" not in env:
        return env
    os.makedirs(directory, exist_ok=True)
    return {**env, "PCPSIM_STATE_DIR": directory}


def with_local_tokens(env: dict[str, str], files: dict[str, str]) -> dict[str, str]:
    """`env` with PCPSIM_TOKEN_FILE, a path in the Secret's mount, replaced by the local file of that key."""
    key = os.path.basename(env["PCPSIM_TOKEN_FILE"])
    assert key in files, f"PCPSIM_TOKEN_FILE names {key}, which no token file stands for"
    return {**env, "PCPSIM_TOKEN_FILE": files[key]}
