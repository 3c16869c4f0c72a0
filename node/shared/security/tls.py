"""TLS and mutual TLS: the credentials a server binds with and a client dials with.

`--tls-cert/--tls-key` make a server speak TLS and are also the certificate a process
presents when it dials (the same certificate both ways: a node is a server and a client);
`--tls-ca` is the CA a process checks the servers it dials against and, with
`--tls-client-auth`, the clients that dial it (mutual TLS).
"""

import grpc

from node.shared.security.settings import Security, SecurityError, Tls


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


def add_port(server, listen: str, sec: Security) -> int:
    """Bind `listen` with TLS if this process has a certificate; returns the bound port."""
    tls = sec.tls
    if tls is None or tls.cert is None:
        return server.add_insecure_port(listen)
    assert tls.key is not None, "load_tls reads a key with every certificate"
    creds = grpc.ssl_server_credentials(
        [(tls.key, tls.cert)], root_certificates=tls.ca, require_client_auth=tls.client_auth
    )
    return server.add_secure_port(listen, creds)


def channel_credentials(tls: Tls | None) -> grpc.ChannelCredentials | None:
    """What a client dials with (None: no TLS)."""
    if tls is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert)
