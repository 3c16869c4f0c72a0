"""What a process's transport security is: its token and the roles it accepts, its TLS
material; and the error a bad token file or certificate raises."""

import dataclasses


class SecurityError(ValueError):
    """A token file or certificate is missing or malformed (the message names no secret)."""


@dataclasses.dataclass(frozen=True)
class Tls:
    cert: bytes | None = None  # PEM: this process's certificate chain (server, and client when dialling)
    key: bytes | None = None
    ca: bytes | None = None  # PEM: the CA peers are checked against (None: system roots when dialling)
    client_auth: bool = False  # a server requires and checks client certificates


@dataclasses.dataclass(frozen=True)
class Security:
    # repr=False: a Security in an assertion message or a log line shows no secret.
    token: str | None = dataclasses.field(default=None, repr=False)  # the secret this process presents
    accept: tuple = dataclasses.field(default=(), repr=False)  # (role, sha256 digest) a server accepts; () and
    keys: tuple = dataclasses.field(default=(), repr=False)  # no (role, key) for CPU-bound tokens: auth off
    # What the coordinator presents to a node in place of `token`: a `coordinator.key`, from which the
    # token bound to the CPU dialled is derived, or one `coordinator` secret (tokens.toward_cpu).
    node_dial: bytes | str | None = dataclasses.field(default=None, repr=False)
    tls: Tls | None = None
    # Headers every call this process makes carries besides its token, as (key, value) pairs:
    # the coordinator's epoch on its calls to nodes (node.epoch).
    metadata: tuple = ()

    @property
    def auth(self) -> bool:
        return bool(self.accept or self.keys)


INSECURE = Security()
