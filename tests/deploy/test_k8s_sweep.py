"""The seed sweep's Kubernetes Indexed Job (deploy/k8s/sweep): a kustomization of its own whose
pods' --count follows the Job's completions, a command the CLI accepts, and pods run here as the
Job runs them. (Strict schema validation: test_k8s_manifests.py covers every file under deploy/k8s.)

Running the pods: each gets the Job's command and env list resolved as the kubelet does (values,
$(VAR) references to earlier entries, limits.cpu through resourceFieldRef, JOB_COMPLETION_INDEX set
as in an Indexed Job's pod), `python` replaced by this interpreter and the results claim's mount
path by a local directory. Changed, as a user's overlay would: the seeds (a few) and completions
(2, with PCPSIM_SWEEP_COUNT, as the kustomization's replacement copies it). Then the merge Job's
command, on the same directory.
"""

import math
import os
import shutil
import subprocess
import sys

import yaml
from kubernetes_validate import utils as kv

from coordinator.tools.chaos.sweep import shards
from coordinator.tools.cli import build_parser
from tests.deploy.manifests import K8S, expand, load_all, only_container

SWEEP = os.path.join(K8S, "sweep")


def job(name: str) -> dict:
    docs = [d for f in ("job.yaml", "merge-job.yaml") for d in load_all(os.path.join(SWEEP, f))]
    [doc] = [d for d in docs if d["metadata"]["name"] == name]
    return doc


def kustomization() -> dict:
    return load_all(os.path.join(SWEEP, "kustomization.yaml"))[0]


def container_env(container: dict, overrides: dict[str, str]) -> dict[str, str]:
    """The container's env list as the kubelet builds it, with `overrides` for plain values."""
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        name = entry["name"]
        if "value" in entry:
            env[name] = expand(overrides.get(name, str(entry["value"])), env)
            continue
        ref = entry["valueFrom"]["resourceFieldRef"]
        assert ref["containerName"] == container["name"] and ref["resource"] == "limits.cpu", ref
        limit = container["resources"]["limits"]["cpu"]
        cores = int(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
        env[name] = str(math.ceil(cores / float(ref["divisor"])))  # the kubelet rounds up
    return env


def pod_argv(container: dict, env: dict[str, str], mounts: dict[str, str]) -> list[str]:
    """command + args with $(VAR) expanded, `python` -> this interpreter, mount paths -> local dirs."""
    cmd = [expand(a, env) for a in container["command"] + container.get("args", [])]
    assert cmd[0] == "python"
    for path, local in mounts.items():
        cmd = [a.replace(path, local) for a in cmd]
    return [sys.executable, *cmd[1:]]


def test_the_sweep_kustomization_lists_the_job_and_its_claim_but_not_the_merge():
    assert set(kustomization()["resources"]) == {"job.yaml", "results.yaml"}
    assert sorted(os.listdir(SWEEP)) == ["job.yaml", "kustomization.yaml", "merge-job.yaml", "results.yaml"]


def test_the_job_is_indexed_its_count_is_its_completions_and_both_jobs_share_the_claim():
    sweep, merge = job("pcpsim-sweep"), job("pcpsim-sweep-merge")
    spec = sweep["spec"]
    assert spec["completionMode"] == "Indexed" and spec["template"]["spec"]["restartPolicy"] == "Never"
    c = only_container(sweep)
    env = container_env(c, {})
    assert env["PCPSIM_SWEEP_COUNT"] == str(spec["completions"])
    assert int(env["PCPSIM_SWEEP_JOBS"]) >= 1
    [replacement] = kustomization()["replacements"]
    assert replacement["source"] == {"kind": "Job", "name": "pcpsim-sweep", "fieldPath": "spec.completions"}
    [claim] = load_all(os.path.join(SWEEP, "results.yaml"))
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # every pod writes its shard there at once
    for j in (sweep, merge):
        [volume] = j["spec"]["template"]["spec"]["volumes"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        [mount] = only_container(j)["volumeMounts"]
        assert (mount["name"], mount["mountPath"]) == (volume["name"], "/results")
    args = build_parser().parse_args(pod_argv(c, env, {})[3:])
    assert (args.command, args.out, args.shrink, args.index) == ("chaos-sweep", "/results", True, None)
    assert args.count == spec["completions"] and args.seeds[0] == env["PCPSIM_SWEEP_SEEDS"]
    assert args.noise == env["PCPSIM_SWEEP_NOISE"] == "none"  # the sweep's own default: shipped runs unchanged
    margs = build_parser().parse_args(pod_argv(only_container(merge), {}, {})[3:])
    assert margs.command == "chaos-sweep-merge" and margs.shards == ["/results"]


def test_kustomize_renders_a_changed_completions_into_the_pods_count(tmp_path):
    assert shutil.which("kubectl"), "kubectl (with its built-in kustomize) is needed for this test"
    copy = tmp_path / "sweep"
    shutil.copytree(SWEEP, copy)
    with open(copy / "kustomization.yaml", "a") as f:
        f.write(
            "patches:\n  - target: {kind: Job, name: pcpsim-sweep}\n"
            """    patch: '[{"op": "replace", "path": "/spec/completions", "value": 3}]'\n"""
        )
    out = subprocess.run(["kubectl", "kustomize", str(copy)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(out.stdout) if d}
    assert docs["Job"]["spec"]["completions"] == 3
    assert container_env(only_container(docs["Job"]), {})["PCPSIM_SWEEP_COUNT"] == "3"
    for doc in docs.values():
        assert doc["metadata"]["namespace"] == "pcpsim"
        kv.validate(doc, kv.latest_version(), strict=True)


def test_two_pods_run_as_the_indexed_job_runs_them_and_the_merge_job_merges_them(tmp_path):
    sweep, merge = job("pcpsim-sweep"), job("pcpsim-sweep-merge")
    results = tmp_path / "results"
    results.mkdir()
    c = only_container(sweep)
    env = container_env(c, {"PCPSIM_SWEEP_SEEDS": "1-4", "PCPSIM_SWEEP_COUNT": "2", "PCPSIM_SWEEP_NOISE": "quiet"})
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PCPSIM_", "JOB_COMPLETION_INDEX"))}
    for index in (0, 1):
        pod = {**base, **env, "JOB_COMPLETION_INDEX": str(index)}
        out = subprocess.run(
            pod_argv(c, env, {"/results": str(results)}),
            env=pod,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert out.returncode == 0, out.stdout + out.stderr  # a shard that ran to its end
        assert f"shard {index} of 2" in out.stdout
        assert (results / f"shard-{index}-of-2.json").exists()
    out = subprocess.run(
        pod_argv(only_container(merge), {}, {"/results": str(results)}),
        env=base,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    merged = shards.read(str(results / "merged.json"))
    assert merged.seeds_run == [1, 2, 3, 4] and shards.missing(merged) == []
    assert out.returncode == shards.exit_code(merged), out.stdout + out.stderr
    assert "4 seeds run (16 runs)" in out.stdout
    assert merged.noise == "quiet"  # every pod ran under the model the Job's environment names
