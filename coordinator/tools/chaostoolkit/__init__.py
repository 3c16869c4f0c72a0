"""A Chaos Toolkit driver for a running pcpsim cluster (`pcpsim cluster up`).

Chaos Toolkit calls plain Python functions by module path with the experiment's arguments:
`coordinator.tools.chaostoolkit.actions` (faults and drains) and
`coordinator.tools.chaostoolkit.probes` (audit, latency and drain figures over a window).
Each finds the cluster through the state file `cluster up` writes, as the CLI does
(`target`). Experiments are in deploy/chaostoolkit/; docs/protocol.md, "Chaos Toolkit".
"""
