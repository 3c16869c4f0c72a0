"""Serving a process's /metrics: the `--metrics-listen` flag of `python -m node` and `python -m coordinator`.

Each process exposes its own registry (never prometheus_client's global REGISTRY, so
tests and several simulated CPUs in one interpreter never share state) on its own
port, with prometheus_client's threaded HTTP server: scrapes run on that server's
threads, never on the CPU thread or the event loop. Port 0 picks a free port; the
bound address is what a process reports (a node in RegisterRequest, the coordinator
on stderr and in GetState) so service discovery can find it.
"""

import argparse
import contextlib
import socket
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, disable_created_metrics, start_http_server

OFF = "off"


def listen_address(text: str) -> tuple[str, int] | None:
    """argparse type for --metrics-listen: HOST:PORT, or "off" (None: no endpoint)."""
    if text.strip().lower() == OFF:
        return None
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        port_no = int(port)
    except ValueError:
        port_no = -1
    if not sep or not host or not 0 <= port_no <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or {OFF!r}, got {text!r}")
    return host, port_no


def add_metrics_listen_flag(parser) -> None:
    """`--metrics-listen` (PCPSIM_METRICS_LISTEN), the same for both processes."""
    parser.add_argument(
        "--metrics-listen",
        type=listen_address,
        default="127.0.0.1:0",
        env="PCPSIM_METRICS_LISTEN",
        help="/metrics HTTP address HOST:PORT, or 'off'",
    )


def process_registry() -> CollectorRegistry:
    """A process's registry: its own (not the global one), with the standard process_* metrics.

    Also turns off the `_created` series prometheus_client adds to every counter and histogram:
    Prometheus does not use them, and they would double the series count. This setting is
    process-wide, which is why only the process entry points call this."""
    disable_created_metrics()
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    return registry


@dataclass
class MetricsEndpoint:
    address: str  # host:port actually bound
    _server: WSGIServer

    def close(self) -> None:
        """Stop serving and release the port, at once. prometheus_client runs `serve_forever` with its
        default poll of 0.5 s, and `shutdown()` waits for the loop's next look at its flag: half a second
        at worst on every process's exit (every cluster stop waits for it, nodes then coordinator). A
        connection wakes the loop's select, so the flag is seen as soon as `shutdown()` has set it; the
        connections are closed unanswered (the handler reads an empty request)."""
        stopping = threading.Thread(target=self._server.shutdown, name="metrics-shutdown")
        stopping.start()
        host, port = str(self._server.server_address[0]), int(self._server.server_address[1])
        while stopping.is_alive():
            with contextlib.suppress(OSError):  # the listener is already closing: shutdown() returns on its own
                socket.create_connection((host, port), timeout=0.5).close()
            stopping.join(0.02)
        self._server.server_close()


def serve(listen: tuple[str, int] | None, registry) -> MetricsEndpoint | None:
    """Serve `registry` at http://HOST:PORT/metrics on a daemon thread; None if `listen` is None."""
    if listen is None:
        return None
    host, port = listen
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    return MetricsEndpoint(f"{shown}:{bound}", server)
