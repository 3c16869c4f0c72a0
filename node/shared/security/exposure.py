"""The warning a server gives when it is reachable beyond this machine without TLS or
without tokens."""

import ipaddress
import logging

from node.shared.config import split_host_port
from node.shared.security.settings import Security

log = logging.getLogger(__name__)


def exposure_warning(listen: str, tls: bool, auth: bool) -> str | None:
    """A warning if a server on `listen` (HOST:PORT) is reachable beyond this machine without
    TLS or without tokens (ValueError if `listen` is malformed)."""
    host = split_host_port(listen)[0]
    missing = [what for what, on in (("TLS", tls), ("token authentication", auth)) if not on]
    if _loopback(host) or not missing:
        return None
    return (
        f"warning: listening on {host}, reachable from other machines, without {' or '.join(missing)}: "
        "anyone who reaches the port can " + ("read the traffic" if auth else "drain CPUs and move pages")
    )


def process_warning(listen: str, sec: Security) -> str | None:
    return exposure_warning(listen, bool(sec.tls and sec.tls.cert), sec.auth)


def warn(message: str | None) -> None:
    if message:
        log.warning("%s", message)


def _loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
