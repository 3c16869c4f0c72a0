"""Transport security for both services: bearer tokens with roles, TLS and mutual TLS,
message size limits, and strict decoding of requests.

Roles. A caller presents `authorization: Bearer <secret>`; the server maps the secret to
a role and checks the method against ACCESS, the one role table (the health service
is exempt: probes carry no secret):
- `node`: a simulated CPU. It may use the zone and membership RPCs of the coordinator,
  and DrainAllPages only with TRIGGER_RECLAIM (direct reclaim runs on a node); nothing
  of the Node service (lock, drain, queue work, pause: only the coordinator may).
- `operator`: the coordinator calling its nodes, and the CLI: everything.
A method missing from ACCESS is refused (fail closed): adding an RPC means adding a row.

Token files. A process reads one file of `role=secret` lines (`#` comments allowed). It
presents the secret of its own role (a node `node`, the coordinator and the CLI
`operator`) and its server accepts every role the file names. A line
`role.sha256=<hex>` lets a server accept a role without holding its secret: `pcpsim
cluster up` gives nodes only the operator secret's digest, so a node's file cannot be
used to drive other nodes. A line `node.key=<key>` binds node credentials to CPUs: the
server accepts `cpuN.<HMAC-SHA256(key, "cpuN")>` as the node of CPU N only, and a bound
node may name no other CPU in a request (`cluster up` gives each node its own; a shared
`node=` secret, as the Kubernetes manifests use, may act for any CPU). Secrets are
compared as SHA-256 digests or MACs with hmac.compare_digest (constant time, and the
length of a secret does not leak), and never appear in a message, a log line or an
exception.

TLS. `--tls-cert/--tls-key` make a server speak TLS and are also the certificate a
process presents when it dials (the same certificate both ways: a node is a server and
a client); `--tls-ca` is the CA a process checks the servers it dials against and, with
`--tls-client-auth`, the clients that dial it (mutual TLS).

Message size. A server refuses (RESOURCE_EXHAUSTED, before buffering it whole) any request
larger than MAX_REQUEST_BYTES, computed from the largest legitimate request. Replies may be
larger (a Snapshot of a node holding many pages): MAX_REPLY_BYTES bounds what a client takes.
"""

import argparse
import dataclasses
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import sys
from collections import namedtuple

import grpc
from google.protobuf.message import DecodeError
from prometheus_client import Counter

from node.api import validate
from node.shared.transport import CHANNEL_OPTIONS
from node.api.v1 import pcpsim_pb2 as pb
from node.shared.config import split_host_port
from node.mm.constants import MAX_ORDER, MIGRATE_TYPES

NODE, OPERATOR = "node", "operator"
ROLES = (NODE, OPERATOR)
ALWAYS = None  # an ACCESS entry: the role may call the method with any request

_COORD, _NODE_SVC = "/pcpsim.v1.Coordinator/", "/pcpsim.v1.Node/"
_HEALTH = "/grpc.health.v1.Health/"


def _reclaim_only(request, cpu) -> bool:
    """A node may start a drain only as direct reclaim does: a global, skippable one."""
    return request.trigger == pb.TRIGGER_RECLAIM


def _own_cpu(request, cpu) -> bool:
    """A node bound to a CPU speaks only for it (`cpu` None: an unbound node secret)."""
    return cpu is None or request.cpu == cpu


def _own_cpu_op(request, cpu) -> bool:
    """The same for the operation a stream request carries (none: the servicer refuses it)."""
    op = request.WhichOneof("op")
    return op is None or _own_cpu(getattr(request, op), cpu)


# Method -> {role: ALWAYS or a predicate (decoded request, caller's bound CPU or None); on a
# stream, every request}. Every method of both services has a row (tests/unit/test_security.py
# checks against the proto).
ACCESS = {
    _COORD + "Register": {NODE: _own_cpu, OPERATOR: ALWAYS},
    _COORD + "Heartbeat": {NODE: _own_cpu, OPERATOR: ALWAYS},
    _COORD + "Rmqueue": {NODE: _own_cpu, OPERATOR: ALWAYS},
    _COORD + "FreePages": {NODE: _own_cpu, OPERATOR: ALWAYS},
    _COORD + "ZoneStream": {NODE: _own_cpu_op, OPERATOR: ALWAYS},
    _COORD + "DrainAllPages": {NODE: _reclaim_only, OPERATOR: ALWAYS},
    _COORD + "GetState": {OPERATOR: ALWAYS},
    _COORD + "GetDrainHistory": {OPERATOR: ALWAYS},
    _COORD + "Audit": {OPERATOR: ALWAYS},
    _COORD + "SetFaults": {OPERATOR: ALWAYS},  # the chaos nemesis runs as the operator
    _COORD + "AllocContigRange": {OPERATOR: ALWAYS},
    _COORD + "OfflinePages": {OPERATOR: ALWAYS},
    _COORD + "ReleaseRange": {OPERATOR: ALWAYS},
    _COORD + "SetCpuOnline": {OPERATOR: ALWAYS},
    _NODE_SVC + "GetPcp": {OPERATOR: ALWAYS},
    _NODE_SVC + "PcpLockDrain": {OPERATOR: ALWAYS},
    _NODE_SVC + "PcpUnlock": {OPERATOR: ALWAYS},
    _NODE_SVC + "PcpControl": {OPERATOR: ALWAYS},
    _NODE_SVC + "QueueWork": {OPERATOR: ALWAYS},
    _NODE_SVC + "FlushWork": {OPERATOR: ALWAYS},
    _NODE_SVC + "SetRunState": {OPERATOR: ALWAYS},
    _NODE_SVC + "Snapshot": {OPERATOR: ALWAYS},
    _NODE_SVC + "GetStats": {OPERATOR: ALWAYS},
    _NODE_SVC + "SetFaults": {OPERATOR: ALWAYS},
}

MIN_SECRET_CHARS = 16
PLACEHOLDER = "REPLACE-ME"  # how deploy/k8s/secret.yaml's placeholder secrets begin
_LINE = re.compile(r"([a-z]+)(\.sha256|\.key)?=(\S+)")
_BOUND = re.compile(r"cpu([0-9]{1,7})\.([0-9a-f]{64})")  # a CPU-bound node token


# ------------------------------------------------------------------ message size
def _largest_request_bytes() -> int:
    """The largest legitimate request: a page list of MAX_PAGES_PER_MESSAGE blocks with the
    widest encodings (a 10-byte pfn varint, the top order and migratetype), either freed on
    the zone stream with the longest transfer id, or reported as a node's holdings when it
    registers again, with the longest names (membership.MAX_NAME: 255)."""
    n = validate.MAX_PAGES_PER_MESSAGE
    pages = pb.PageList(pfn=[(1 << 64) - 1] * n, order=[MAX_ORDER - 1] * n, migratetype=[MIGRATE_TYPES - 1] * n)
    name = "x" * 255
    free = pb.ZoneRequest(free=pb.FreePagesRequest(cpu=(1 << 32) - 1, pages=pages, incarnation=name,
                                                   transfer_id="x" * validate.MAX_TRANSFER_ID))
    register = pb.RegisterRequest(cpu=(1 << 32) - 1, address=name, role=max(pb.Role.values()), incarnation=name,
                                  metrics_address=name, resume=True, holdings=pages)
    return max(free.ByteSize(), register.ByteSize())


# Rounded up to a KiB: 769 KiB. Every other request is a few hundred bytes at most.
MAX_REQUEST_BYTES = (_largest_request_bytes() // 1024 + 1) * 1024
# The largest reply is a Snapshot: three page lists of a node (pcp, allocated, in flight).
# 12 bytes a block at worst, so 64 MiB covers 5.5 M blocks (21 GiB of base pages in one node's
# hands, more than a node holds with any working set the zone can back).
MAX_REPLY_BYTES = 64 << 20


def server_options() -> list:
    return [("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.max_send_message_length", MAX_REPLY_BYTES)]


def channel_options() -> list:
    """Size limits, and node.shared.transport's fast reconnects (every channel here is one
    between pcpsim processes)."""
    return [("grpc.max_receive_message_length", MAX_REPLY_BYTES),
            ("grpc.max_send_message_length", MAX_REQUEST_BYTES), *CHANNEL_OPTIONS]


# ------------------------------------------------------------------ configuration
class SecurityError(ValueError):
    """A token file or certificate is missing or malformed (the message names no secret)."""


@dataclasses.dataclass(frozen=True)
class Tls:
    cert: bytes | None = None  # PEM: this process's certificate chain (server, and client when dialling)
    key: bytes | None = None
    ca: bytes | None = None    # PEM: the CA peers are checked against (None: system roots when dialling)
    client_auth: bool = False  # a server requires and checks client certificates


@dataclasses.dataclass(frozen=True)
class Security:
    # repr=False: a Security in an assertion message or a log line shows no secret.
    token: str | None = dataclasses.field(default=None, repr=False)  # the secret this process presents
    accept: tuple = dataclasses.field(default=(), repr=False)  # (role, sha256 digest) a server accepts; () and
    keys: tuple = dataclasses.field(default=(), repr=False)    # no (role, key) for CPU-bound tokens: auth off
    tls: Tls | None = None

    @property
    def auth(self) -> bool:
        return bool(self.accept or self.keys)


INSECURE = Security()


def parse_token_file(text: str, where: str) -> tuple[dict, dict]:
    """From `role=secret`, `role.sha256=hex` and `node.key=key` lines: ({role: (secret or
    None, digest)}, {role: key})."""
    roles, keys = {}, {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if not m or m.group(1) not in ROLES:
            raise SecurityError(f"{where}:{no}: expected ROLE=SECRET, ROLE.sha256=HEX or node.key=KEY with ROLE "
                                f"one of {', '.join(ROLES)}")
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
            raise SecurityError(f"{where}:{no}: the {role} secret is still the placeholder of "
                                f"deploy/k8s/secret.yaml: generate real ones (pcpsim tokens DIR)")
        if len(value) < MIN_SECRET_CHARS:
            raise SecurityError(f"{where}:{no}: the {role} secret is shorter than {MIN_SECRET_CHARS} characters")
        if kind == ".key":
            if role != NODE:
                raise SecurityError(f"{where}:{no}: only node credentials are bound to CPUs")
            keys[role] = value.encode()
        else:
            roles[role] = (value, _digest(value))
    if not roles and not keys:
        raise SecurityError(f"{where}: no role in the token file")
    return roles, keys


def load_token_file(path: str, role: str) -> Security:
    """The Security of a process presenting `role`, from its token file."""
    try:
        st = os.stat(path)
        with open(path) as f:
            text = f.read()
    except OSError as err:
        raise SecurityError(f"cannot read token file {path}: {err.strerror}") from None
    if st.st_mode & 0o004:
        raise SecurityError(f"token file {path} is readable by every user (mode {st.st_mode & 0o777:o}): "
                            f"chmod o-r it")
    roles, keys = parse_token_file(text, path)
    secret = roles.get(role, (None, b""))[0]
    if secret is None:
        raise SecurityError(f"token file {path} has no {role} secret (this process authenticates as {role})")
    return Security(token=secret, accept=tuple((r, d) for r, (_, d) in sorted(roles.items())),
                    keys=tuple(sorted(keys.items())))


def bound_token(key: bytes, cpu: int) -> str:
    """The node token of CPU `cpu` under a `node.key`."""
    return f"cpu{cpu}." + hmac.new(key, f"cpu{cpu}".encode(), hashlib.sha256).hexdigest()


def _read(path: str | None, what: str) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise SecurityError(f"cannot read {what} {path}: {err.strerror}") from None
    if b"-----BEGIN " not in data:
        raise SecurityError(f"{what} {path} is not PEM")
    return data


def load_tls(cert: str | None, key: str | None, ca: str | None, client_auth: bool) -> Tls | None:
    if not (cert or key or ca or client_auth):
        return None
    if bool(cert) != bool(key):
        raise SecurityError("--tls-cert and --tls-key go together")
    if client_auth and not ca:
        raise SecurityError("--tls-client-auth needs --tls-ca (the CA client certificates are checked against)")
    return Tls(_read(cert, "certificate"), _read(key, "private key"), _read(ca, "CA certificate"), client_auth)


def add_arguments(p: argparse.ArgumentParser, env: bool = True) -> None:
    """--token-file and the TLS flags; each also a PCPSIM_* variable when `p` takes env=."""
    def arg(*names, var, **kw):
        if env:
            p.add_argument(*names, env=var, **kw)
        else:
            p.add_argument(*names, default=os.environ.get(var) or kw.pop("default", None), **kw)
    arg("--token-file", var="PCPSIM_TOKEN_FILE",
        help="file of ROLE=SECRET lines (node, operator) for bearer-token authentication; "
             "without it RPCs are not authenticated")
    arg("--tls-cert", var="PCPSIM_TLS_CERT", help="PEM certificate: serve TLS, and present it when dialling")
    arg("--tls-key", var="PCPSIM_TLS_KEY", help="PEM private key of --tls-cert")
    arg("--tls-ca", var="PCPSIM_TLS_CA", help="PEM CA: dial with TLS and check servers (and clients, "
                                               "with --tls-client-auth) against it")
    if env:
        p.add_argument("--tls-client-auth", action="store_true", env="PCPSIM_TLS_CLIENT_AUTH",
                       help="require client certificates signed by --tls-ca (mutual TLS)")
    else:
        p.add_argument("--tls-client-auth", action="store_true", help=argparse.SUPPRESS)


def from_args(args, role: str, error) -> Security:
    """The Security the flags describe; `error` (parser.error) on a bad file."""
    try:
        sec = load_token_file(args.token_file, role) if args.token_file else INSECURE
        return dataclasses.replace(sec, tls=load_tls(args.tls_cert, args.tls_key, args.tls_ca,
                                                      args.tls_client_auth))
    except SecurityError as err:
        error(str(err))


def exposure_warning(listen: str, tls: bool, auth: bool) -> str | None:
    """A warning if a server on `listen` (HOST:PORT) is reachable beyond this machine without
    TLS or without tokens (ValueError if `listen` is malformed)."""
    host = split_host_port(listen)[0]
    missing = [what for what, on in (("TLS", tls), ("token authentication", auth)) if not on]
    if _loopback(host) or not missing:
        return None
    return (f"warning: listening on {host}, reachable from other machines, without {' or '.join(missing)}: "
            "anyone who reaches the port can " + ("read the traffic" if auth else "drain CPUs and move pages"))


def process_warning(listen: str, sec: Security) -> str | None:
    return exposure_warning(listen, bool(sec.tls and sec.tls.cert), sec.auth)


def _loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def generate_token_files(directory: str, nr_cpus: int | None = None) -> dict[str, str]:
    """Fresh secrets, written (mode 0600) as the files handed out: {"coordinator": path,
    "operator": path, and "node": path, or with `nr_cpus` "node-cpu0" ... : path}. A node
    file holds the node secret (bound to its CPU with `nr_cpus`) and only the digest of
    the operator one."""
    operator = secrets.token_urlsafe(32)
    operator_digest = f"{OPERATOR}.sha256={_digest(operator).hex()}\n"
    files = {"operator": f"{OPERATOR}={operator}\n"}
    if nr_cpus is None:
        node = secrets.token_urlsafe(32)
        files["coordinator"] = f"{NODE}={node}\n{OPERATOR}={operator}\n"
        files["node"] = f"{NODE}={node}\n" + operator_digest
    else:
        key = secrets.token_urlsafe(32)
        files["coordinator"] = f"{NODE}.key={key}\n{OPERATOR}={operator}\n"
        for cpu in range(nr_cpus):
            files[f"node-cpu{cpu}"] = f"{NODE}={bound_token(key.encode(), cpu)}\n" + operator_digest
    os.makedirs(directory, mode=0o700, exist_ok=True)
    paths = {}
    for name, text in files.items():
        path = os.path.join(directory, f"{name}.token")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        paths[name] = path
    return paths


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


# ------------------------------------------------------------------ server side
def add_port(server, listen: str, sec: Security) -> int:
    """Bind `listen` with TLS if this process has a certificate; returns the bound port."""
    tls = sec.tls
    if tls is None or tls.cert is None:
        return server.add_insecure_port(listen)
    creds = grpc.ssl_server_credentials([(tls.key, tls.cert)], root_certificates=tls.ca,
                                        require_client_auth=tls.client_auth)
    return server.add_secure_port(listen, creds)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates, authorizes and strictly decodes every call but health checks.

    Refusals: no or a malformed `authorization` header -> UNAUTHENTICATED (reason
    missing_token); an unknown secret -> UNAUTHENTICATED (bad_token); a method without a
    row in ACCESS -> PERMISSION_DENIED (unlisted); a role the row does not allow, or a
    request its predicate refuses -> PERMISSION_DENIED (role). Each is counted in
    pcpsim_rpc_refused_total{reason}. With auth off (no token file) only decoding applies.

    Decoding: requests reach the servicer decoded here, so bytes that are no valid message
    get INVALID_ARGUMENT (gRPC's own deserializer would answer INTERNAL)."""

    REASONS = ("missing_token", "bad_token", "unlisted", "role", "undecodable")

    def __init__(self, sec: Security, registry):
        self._accept = sec.accept
        self._keys = sec.keys
        refused = Counter("pcpsim_rpc_refused_total", "RPCs refused before reaching the servicer, by reason.",
                          ["reason"], registry=registry)
        self._refused = {r: refused.labels(r) for r in self.REASONS}

    def role_of(self, metadata) -> tuple[str, int | None]:
        """The role whose secret the call presents, and the CPU it is bound to (None: any);
        raises _Refused if none."""
        header = [v for k, v in (metadata or ()) if k == "authorization"]
        if len(header) != 1 or not isinstance(header[0], str) or not header[0].startswith("Bearer "):
            raise _Refused(grpc.StatusCode.UNAUTHENTICATED, "missing_token",
                           "this cluster requires a bearer token (authorization: Bearer ...)")
        token = header[0][len("Bearer "):]
        presented = _digest(token)
        role, cpu = None, None
        for r, digest in self._accept:  # every role compared: no early exit
            if hmac.compare_digest(presented, digest):
                role = r
        bound = _BOUND.fullmatch(token) if self._keys else None
        for r, key in self._keys:
            if bound and hmac.compare_digest(bound_token(key, int(bound.group(1))), token):
                role, cpu = r, int(bound.group(1))
        if role is None:
            raise _Refused(grpc.StatusCode.UNAUTHENTICATED, "bad_token", "the bearer token is not valid here")
        return role, cpu

    async def intercept_service(self, continuation, details):
        method = details.method
        if method.startswith(_HEALTH):
            return await continuation(details)
        refusal, predicate, cpu = None, ALWAYS, None
        try:
            if self._accept or self._keys:
                role, cpu = self.role_of(details.invocation_metadata)
                rules = ACCESS.get(method)
                if rules is None:
                    raise _Refused(grpc.StatusCode.PERMISSION_DENIED, "unlisted", f"{method} is open to no role")
                if role not in rules:
                    raise _Refused(grpc.StatusCode.PERMISSION_DENIED, "role",
                                   f"role {role} may not call {method}")
                predicate = rules[role]
        except _Refused as err:
            refusal = err
        handler = await continuation(details)
        if handler is None:
            return None
        return self._wrap(handler, refusal, predicate, cpu)

    def _wrap(self, handler, refusal, predicate, cpu):
        deserialize = handler.request_deserializer
        refused = self._refused

        async def refuse(context, err):
            refused[err.reason].inc()
            await context.abort(err.code, err.detail)

        async def decode(raw, context):
            try:
                request = deserialize(raw) if deserialize else raw
            except DecodeError:
                await refuse(context, _Refused(grpc.StatusCode.INVALID_ARGUMENT, "undecodable",
                                               "the request is not a valid message"))
            if predicate is not None and not predicate(request, cpu):
                await refuse(context, _Refused(grpc.StatusCode.PERMISSION_DENIED, "role",
                                               "these credentials may not make this request"
                                               + ("" if cpu is None else f" (they are cpu {cpu}'s)")))
            return request

        if handler.unary_unary:
            behavior = handler.unary_unary

            async def unary(raw, context):
                if refusal:
                    await refuse(context, refusal)
                return await behavior(await decode(raw, context), context)
            return grpc.unary_unary_rpc_method_handler(unary, response_serializer=handler.response_serializer)
        if handler.stream_stream:
            behavior = handler.stream_stream

            async def stream(raw_iterator, context):
                if refusal:
                    await refuse(context, refusal)

                async def requests():
                    async for raw in raw_iterator:
                        yield await decode(raw, context)
                async for reply in behavior(requests(), context):
                    yield reply
            return grpc.stream_stream_rpc_method_handler(stream, response_serializer=handler.response_serializer)
        # No unary-stream or stream-unary method exists; refuse rather than pass one unchecked.
        raise RuntimeError(f"no auth wrapper for the kind of handler {handler}")


class _Refused(Exception):
    def __init__(self, code, reason: str, detail: str):
        super().__init__(detail)
        self.code, self.reason, self.detail = code, reason, detail


# ------------------------------------------------------------------ client side
def channel(address: str, sec: Security) -> grpc.Channel:
    """A sync channel to `address` with this process's TLS settings and token."""
    opts = channel_options()
    creds = _channel_credentials(sec)
    ch = grpc.secure_channel(address, creds, opts) if creds else grpc.insecure_channel(address, opts)
    return grpc.intercept_channel(ch, _SyncToken(sec.token)) if sec.token else ch


def aio_channel(address: str, sec: Security) -> grpc.aio.Channel:
    """An asyncio channel to `address` with this process's TLS settings and token."""
    opts = channel_options()
    creds = _channel_credentials(sec)
    interceptors = [_AioUnaryToken(sec.token), _AioStreamToken(sec.token)] if sec.token else None
    if creds:
        return grpc.aio.secure_channel(address, creds, opts, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, opts, interceptors=interceptors)


def _channel_credentials(sec: Security):
    tls = sec.tls
    if tls is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=tls.ca, private_key=tls.key,
                                        certificate_chain=tls.cert)


def _with_token(metadata, token: str) -> list:
    return [*(metadata or ()), ("authorization", f"Bearer {token}")]


class _Details(namedtuple("_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                                       "compression")), grpc.ClientCallDetails):
    pass


class _SyncToken(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the bearer token to every call (both services have only these two kinds)."""

    def __init__(self, token: str):
        self._token = token

    def _details(self, d):
        return _Details(d.method, d.timeout, _with_token(d.metadata, self._token), d.credentials,
                        getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def __repr__(self):  # never show the secret
        return "<bearer token>"


class _AioToken:
    """grpc.aio files an interceptor under the first kind it is an instance of, so each
    kind gets its own object (aio_interceptors)."""

    def __init__(self, token: str):
        self._token = token

    def _details(self, d):
        return grpc.aio.ClientCallDetails(d.method, d.timeout, _with_token(d.metadata, self._token),
                                          d.credentials, d.wait_for_ready)

    def __repr__(self):
        return "<bearer token>"


class _AioUnaryToken(_AioToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._details(details), request)


class _AioStreamToken(_AioToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, details, request_iterator):
        return await continuation(self._details(details), request_iterator)


def warn(message: str | None) -> None:
    if message:
        print(f"pcpsim: {message}", file=sys.stderr, flush=True)
