"""Channel and server options shared by every long-lived channel between pcpsim processes.

gRPC backs off reconnecting to an address that refused it: 1 s at first, growing to two
minutes. A coordinator that restarts, or a node that comes back, must be reached again
within the bounds the protocol works to (the coordinator's recovery window, the dead
timeout: about a second), so reconnection is retried every 100 ms to 500 ms instead.
gRPC also takes the smallest backoff as the bound on one connection attempt, so an
attempt that reaches a listener whose process is frozen gives up as fast.

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

CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
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
