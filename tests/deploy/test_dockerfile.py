"""deploy/Dockerfile, read as text: one image for both roles, on the official slim Python image
by default or on the base given as BASE (`make test-containers` builds it with podman on a local
Debian base, deploy/containers/), the project installed with pip into a virtual environment first
on PATH, a non-root user, ports the processes use, and a HEALTHCHECK through the gRPC health
service with a probe that exists."""

import os
import re
import shlex

from node.shared.config import split_host_port
from tests.deploy.manifests import DEPLOY, REPO

DOCKERFILE = os.path.join(DEPLOY, "Dockerfile")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), with continuation lines joined and comments dropped."""
    text = open(DOCKERFILE).read()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def env_of() -> dict[str, str]:
    env = {}
    for word, rest in instructions():
        if word == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(rest)))
    return env


def test_one_image_on_the_slim_python_image_by_default_installs_the_project():
    """BASE defaults to python:3.11-slim; the same steps work on Debian's python3 (which refuses a
    system-wide pip install, hence the venv); nothing is installed with apt, so nothing else
    differs between the two bases."""
    ins = instructions()
    assert ins[0] == ("ARG", "BASE=python:3.11-slim")
    assert ins[1] == ("FROM", "${BASE}")
    assert sum(1 for w, _ in ins if w == "FROM") == 1
    runs = " ".join(rest for w, rest in ins if w == "RUN")
    assert "python3 -m venv /opt/pcpsim/venv" in runs
    assert re.search(r"pip install \.(\s|$)", runs)
    assert "apt-get" not in runs
    assert env_of()["PATH"].startswith("/opt/pcpsim/venv/bin:")
    for word, rest in ins:
        if word == "COPY":
            *sources, _dest = shlex.split(rest)
            for src in sources:
                assert os.path.exists(os.path.join(REPO, src)), f"COPY {src}: not in the repository"


def test_it_runs_as_a_non_root_user_with_the_uid_the_manifests_expect():
    users = [rest for w, rest in instructions() if w == "USER"]
    assert users and users[-1].split(":")[0] == "10001"


def test_default_ports_are_the_exposed_ones():
    env = env_of()
    ports = {split_host_port(env[v])[1] for v in ("PCPSIM_LISTEN", "PCPSIM_METRICS_LISTEN")}
    exposed = {int(p) for w, rest in instructions() if w == "EXPOSE" for p in rest.split()}
    assert ports == exposed == {50051, 9100}


def test_healthcheck_asks_the_grpc_health_service_through_a_module_that_exists():
    [check] = [rest for w, rest in instructions() if w == "HEALTHCHECK"]
    assert '"python", "-m", "node.shared.health_probe"' in check
    assert os.path.isfile(os.path.join(REPO, "node", "shared", "health_probe.py"))
