"""Plumbing both processes (node and coordinator) use; nothing here models the kernel.

- config       flags that may also come from PCPSIM_* variables; host:port parsing
- logs         one log format and --log-level
- server       build_server: one gRPC server, built the same way for both processes
- in_flight    the handlers a server runs, so its stop waits for them
- interceptors domain errors to status codes, and run-time faults, for unary calls and streams
- cpulist      CPU lists ("2-3") and the role of each CPU
- timebase     kernel time against wall time, and the modelled costs
- security/    roles, tokens, TLS, request limits and their interceptors
- faults       run-time faults (delay, drop, fail, partition) set by the chaos nemesis
- rpc_metrics  per-RPC Prometheus metrics (an interceptor)
- buckets      histogram buckets both processes' latency metrics share
- exposition   serving /metrics
- health       the gRPC health service; health_probe its command-line probe
- reply_stream request/reply over one long-lived bidirectional stream
- transport    channel options shared by every client
- lifecycle    stopping on SIGTERM/SIGINT
- transfer_log --transfer-log: every page joining or leaving an owner, for the chaos checker
"""
