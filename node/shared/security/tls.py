"""TLS and mutual TLS: the credentials a server binds with and a client dials with, from the files
node.shared.security.certs read.

`--tls-cert/--tls-key` make a server speak TLS and are also the certificate a process
presents when it dials (the same certificate both ways: a node is a server and a client);
`--tls-ca` is the CA a process checks the servers it dials against and, with
`--tls-client-auth`, the clients that dial it (mutual TLS).
"""

import grpc

from node.shared.security.settings import Security, Tls


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
