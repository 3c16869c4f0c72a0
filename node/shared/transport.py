"""Channel options shared by every long-lived channel between pcpsim processes.

gRPC backs off reconnecting to an address that refused it: 1 s at first, growing to two
minutes. A coordinator that restarts, or a node that comes back, must be reached again
within the bounds the protocol works to (the coordinator's recovery window, the dead
timeout: about a second), so reconnection is retried every 100 ms to 500 ms instead.
"""

CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]
