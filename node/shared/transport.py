"""Channel and server options of every channel between pcpsim processes.

gRPC backs off reconnecting to an address that refused it: 1 s at first, growing to two
minutes. A coordinator that restarts, or a node that comes back, must be reached again
within the bounds the protocol works to (the coordinator's recovery window, the dead
timeout: about a second), so reconnection is retried every 100 ms to 500 ms instead.

gRPC bounds one connection attempt (TCP, then the server's HTTP/2 SETTINGS frame) by
grpc.min_reconnect_backoff_ms, its MIN_CONNECT_TIMEOUT (grpc/grpc doc/connection-backoff.md:
an attempt's deadline is the later of the next backoff and now + MIN_CONNECT_TIMEOUT).
Two kinds of channel want two bounds:
- a peer's: the long-lived channels of a node to its coordinator and of the coordinator to
  each node. They redial on their own and their callers ask again, so an attempt that
  reaches a listener whose process is frozen (a stopped coordinator beside its replacement
  on the same address) gives up after PEER_CONNECT_TIMEOUT_MS and the next one is made.
- a caller's: a tool asking a cluster (the CLI, compare, the chaos harness, the health
  probe), whose call is not asked again. Its own deadline bounds it, not a handshake: with
  100 ms, a host loaded enough to finish a loopback handshake later failed the call at
  once, though the process was up (UNAVAILABLE, "connection attempt timed out before
  receiving SETTINGS frame": the project's CI run of 4dd802e, docs/benchmarks.md).
  CALLER_CONNECT_TIMEOUT_MS is gRPC's own default (20 s): past the deadline of most calls here,
  and a loopback handshake that takes longer is one no process is answering.

A peer whose process is frozen (SIGSTOP, a host suspended or cut off) keeps its TCP
connection open: the kernel still acknowledges, nothing answers. HTTP/2 keepalive pings
(answered by gRPC's core, whatever the Python side is doing) find it within
KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS and the channel dials again, so a replacement
coordinator on the same address is reached (docs/protocol.md, "Coordinator epoch").
Every server accepts those pings (SERVER_OPTIONS), or it would close the connection for
pinging too often.
"""

KEEPALIVE_TIME_MS = 1000
KEEPALIVE_TIMEOUT_MS = 1500

PEER_CONNECT_TIMEOUT_MS = 100
CALLER_CONNECT_TIMEOUT_MS = 20_000

CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    # gRPC 1.85 waits for any ping's ack this long (default a minute), keepalive pings included.
    ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.http2.min_time_between_pings_ms", KEEPALIVE_TIME_MS // 2),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]

SERVER_OPTIONS = [
    ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_ping_strikes", 0),
]


def channel_options(peer: bool) -> list:
    """CHANNEL_OPTIONS with the bound on one connection attempt of a peer's or a caller's channel."""
    bound = PEER_CONNECT_TIMEOUT_MS if peer else CALLER_CONNECT_TIMEOUT_MS
    return [*CHANNEL_OPTIONS, ("grpc.min_reconnect_backoff_ms", bound)]
