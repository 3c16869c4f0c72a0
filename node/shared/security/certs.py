"""Reading the TLS files a process is given: its certificate and key, and the CA it checks peers against
(PEM, checked here so that a wrong file is refused before anything dials or binds). Without grpc: the
flags that name them are parsed by every `pcpsim` command (node.shared.security.tls turns them into
credentials).
"""

from node.shared.security.settings import SecurityError, Tls


def load_tls(cert: str | None, key: str | None, ca: str | None, client_auth: bool) -> Tls | None:
    if not (cert or key or ca or client_auth):
        return None
    if bool(cert) != bool(key):
        raise SecurityError("--tls-cert and --tls-key go together")
    if client_auth and not ca:
        raise SecurityError("--tls-client-auth needs --tls-ca (the CA client certificates are checked against)")
    return Tls(_read(cert, "certificate"), _read(key, "private key"), _read(ca, "CA certificate"), client_auth)


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
