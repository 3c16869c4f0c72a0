"""Token files: the secrets a process presents and the roles its server accepts.

A process reads one file of `role=secret` lines (`#` comments allowed). It presents the
secret of its own role (a node `node`, the coordinator and the CLI `operator`) and its
server accepts every role the file names. A line `role.sha256=<hex>` lets a server accept
a role without holding its secret: `pcpsim cluster up` gives nodes only the operator
secret's digest, so a node's file cannot be used to drive other nodes. A line
`node.key=<key>` binds node credentials to CPUs: the server accepts
`cpuN.<HMAC-SHA256(key, "cpuN")>` as the node of CPU N only, and a bound node may name no
other CPU in a request (`cluster up` gives each node its own; a shared `node=` secret, as
the Kubernetes manifests use, may act for any CPU).

The coordinator dials each node at the address the node registered, so whatever it presents
there a node can capture by registering an address of its own. It therefore presents the
`coordinator` role, never the operator's: with a `coordinator.key=<key>` line the token bound
to the CPU dialled, which only that CPU's file holds the digest of (`cluster up`), else one
`coordinator=` secret every node file holds the digest of (`pcpsim tokens`), else, from a file
that names no coordinator role, its own operator secret, as before that role existed.

Secrets are compared as SHA-256 digests or MACs with hmac.compare_digest (constant time, and
the length of a secret does not leak), and never appear in a message, a log line or an exception.
"""

import dataclasses
import hashlib
import hmac
import os
import re
import secrets
import tempfile

from node.shared.security.access import COORDINATOR, NODE, OPERATOR, ROLES
from node.shared.security.settings import Security, SecurityError

MIN_SECRET_CHARS = 16
PLACEHOLDER = "REPLACE-ME"  # how deploy/k8s/secret.yaml's placeholder secrets begin
_LINE = re.compile(r"([a-z]+)(\.sha256|\.key)?=(\S+)")
_BOUND = re.compile(r"cpu([0-9]{1,7})\.([0-9a-f]{64})")  # a CPU-bound node token


def parse_token_file(text: str, where: str) -> tuple[dict[str, tuple[str | None, bytes]], dict[str, bytes]]:
    """From `role=secret`, `role.sha256=hex` and `node.key=key` / `coordinator.key=key` lines:
    ({role: (secret or None, digest)}, {role: key})."""
    roles: dict[str, tuple[str | None, bytes]] = {}
    keys: dict[str, bytes] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if not m or m.group(1) not in ROLES:
            raise SecurityError(
                f"{where}:{no}: expected ROLE=SECRET, ROLE.sha256=HEX or ROLE.key=KEY (node, coordinator) "
                f"with ROLE one of {', '.join(ROLES)}"
            )
        role, kind, value = m.groups()
        if role in (keys if kind == ".key" else roles):
            raise SecurityError(f"{where}:{no}: role {role}{kind or ''} given twice")
        if kind == ".sha256":
            try:
                digest = bytes.fromhex(value)
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise SecurityError(f"{where}:{no}: {role}.sha256 is not 64 hex digits")
            roles[role] = (None, digest)
            continue
        if value.startswith(PLACEHOLDER):
            raise SecurityError(
                f"{where}:{no}: the {role} secret is still the placeholder of "
                f"deploy/k8s/secret.yaml: generate real ones (pcpsim tokens DIR)"
            )
        if len(value) < MIN_SECRET_CHARS:
            raise SecurityError(f"{where}:{no}: the {role} secret is shorter than {MIN_SECRET_CHARS} characters")
        if kind == ".key":
            if role not in (NODE, COORDINATOR):
                raise SecurityError(f"{where}:{no}: only node and coordinator credentials are bound to CPUs")
            keys[role] = value.encode()
        else:
            roles[role] = (value, _digest(value))
    if not roles and not keys:
        raise SecurityError(f"{where}: no role in the token file")
    return roles, keys


def load_token_file(path: str, role: str) -> Security:
    """The Security of a process presenting `role`, from its token file."""
    try:
        with open(path) as f:
            # The mode of the file read, not of whatever was at the path a moment before.
            st = os.fstat(f.fileno())
            text = f.read()
    except OSError as err:
        raise SecurityError(f"cannot read token file {path}: {err.strerror}") from None
    if st.st_mode & 0o004:
        raise SecurityError(f"token file {path} is readable by every user (mode {st.st_mode & 0o777:o}): chmod o-r it")
    roles, keys = parse_token_file(text, path)
    secret = roles.get(role, (None, b""))[0]
    if secret is None:
        raise SecurityError(f"token file {path} has no {role} secret (this process authenticates as {role})")
    # A coordinator key derives what this process presents to nodes; only node keys are accepted.
    dial = keys.pop(COORDINATOR, None) or roles.get(COORDINATOR, (None, b""))[0]
    return Security(
        token=secret,
        accept=tuple((r, d) for r, (_, d) in sorted(roles.items())),
        keys=tuple(sorted(keys.items())),
        node_dial=dial,
    )


def toward_cpu(sec: Security, cpu: int) -> Security:
    """What the coordinator presents when it dials the node of CPU `cpu` (the module's docstring)."""
    if sec.node_dial is None:
        return sec
    token = bound_token(sec.node_dial, cpu) if isinstance(sec.node_dial, bytes) else sec.node_dial
    return dataclasses.replace(sec, token=token)


def bound_token(key: bytes, cpu: int) -> str:
    """The token of CPU `cpu` under a `node.key` (the node's) or a `coordinator.key` (the coordinator's
    toward that node's)."""
    return f"cpu{cpu}." + hmac.new(key, f"cpu{cpu}".encode(), hashlib.sha256).hexdigest()


def identify(token: str, accept: tuple, keys: tuple) -> tuple[str | None, int | None]:
    """The role whose secret `token` is, among a Security's `accept` and `keys`, and the CPU
    it is bound to (None: any); (None, None) if it is no accepted secret. Every role is
    compared, with no early exit, so the time taken does not tell which one matched."""
    presented = _digest(token)
    role, cpu = None, None
    for r, digest in accept:
        if hmac.compare_digest(presented, digest):
            role = r
    bound = _BOUND.fullmatch(token) if keys else None
    for r, key in keys:
        if bound and hmac.compare_digest(bound_token(key, int(bound.group(1))), token):
            role, cpu = r, int(bound.group(1))
    return role, cpu


def generate_token_files(directory: str, nr_cpus: int | None = None) -> dict[str, str]:
    """Fresh secrets, written (mode 0600) as the files handed out: {"coordinator": path,
    "operator": path, and "node": path, or with `nr_cpus` "node-cpu0" ... : path}. A node
    file holds the node secret (bound to its CPU with `nr_cpus`) and only the digests of
    the operator secret and of what the coordinator presents to it (bound to its CPU with
    `nr_cpus`)."""
    operator = secrets.token_urlsafe(32)
    operator_digest = f"{OPERATOR}.sha256={_digest(operator).hex()}\n"
    files = {"operator": f"{OPERATOR}={operator}\n"}
    if nr_cpus is None:
        node, coordinator = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        files["coordinator"] = f"{NODE}={node}\n{COORDINATOR}={coordinator}\n{OPERATOR}={operator}\n"
        files["node"] = f"{NODE}={node}\n{operator_digest}{COORDINATOR}.sha256={_digest(coordinator).hex()}\n"
    else:
        key, dial = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        files["coordinator"] = f"{NODE}.key={key}\n{COORDINATOR}.key={dial}\n{OPERATOR}={operator}\n"
        for cpu in range(nr_cpus):
            toward = _digest(bound_token(dial.encode(), cpu)).hex()
            files[f"node-cpu{cpu}"] = (
                f"{NODE}={bound_token(key.encode(), cpu)}\n{operator_digest}{COORDINATOR}.sha256={toward}\n"
            )
    os.makedirs(directory, mode=0o700, exist_ok=True)
    paths = {}
    for name, text in files.items():
        path = os.path.join(directory, f"{name}.token")
        _write_private(path, text)
        paths[name] = path
    return paths


def _write_private(path: str, text: str) -> None:
    """Write `text` as a new file at `path`, mode 0600. Opening the path itself would keep the
    mode of a file already there (a fresh secret in an old 0644 file) and follow a symlink
    there (the secret written wherever it points): a new file renamed over the path does
    neither."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".token-")  # O_EXCL, mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
