"""The `pcpsim` command (entry point `main`; `python -m coordinator.tools.cli`).

parser    the argparse tree and the usage text (`pcpsim --help`)
parser_cluster  the parsers of the commands that start or act on a cluster (cluster up, drain, ...)
flags     flag types: whole numbers, fractions, strategy lists, trigger mixes, cost model and task set files
connect   reaching a running cluster: state file, address, operator credentials, stub
errors    CliError: a refusal, printed as `pcpsim: error: ...` with exit 2
paths     where a command will write (--out, --run-dir, --json, ...), checked before it runs
cluster   cluster up, tokens
ops       drain, cma-alloc, offline, release, cpu
state     state, audit
run       compare, report, bench
chaos     chaos run, chaos check
sweep     chaos sweep, chaos sweep-merge
replay    replay (node.mm.bugs on the pure model)
kernels   kernels (what each kernel profile models)
"""

import importlib
import os
import sys

from coordinator.tools.cli.errors import CliError
from coordinator.tools.cli.parser import build_parser

# Each command's (module, function), the module imported when the command runs: the commands of the
# virtual engine (compare and chaos run with --engine virtual, chaos sweep, replay, kernels, report)
# then load no grpc (tests/unit/test_no_grpc.py).
COMMANDS = {
    "cluster": ("cluster", "cmd_cluster_up"),
    "tokens": ("cluster", "cmd_tokens"),
    "drain": ("ops", "cmd_drain"),
    "state": ("state", "cmd_state"),
    "audit": ("state", "cmd_audit"),
    "compare": ("run", "cmd_compare"),
    "cma-alloc": ("ops", "cmd_contig"),
    "offline": ("ops", "cmd_contig"),
    "release": ("ops", "cmd_release"),
    "cpu": ("ops", "cmd_cpu"),
    "report": ("run", "cmd_report"),
    "bench": ("run", "cmd_bench"),
    "chaos": ("chaos", "cmd_chaos"),
    "replay": ("replay", "cmd_replay"),
    "kernels": ("kernels", "cmd_kernels"),
    "chaos-sweep": ("sweep", "cmd_sweep"),  # set by the subcommands themselves (cli.sweep.add_parsers)
    "chaos-sweep-merge": ("sweep", "cmd_sweep_merge"),
}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    module, function = COMMANDS[args.command]
    try:
        return getattr(importlib.import_module(f"{__name__}.{module}"), function)(args)
    except CliError as err:
        print(f"pcpsim: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        # An RPC error can only come from a command that loaded grpc; the others never import it.
        grpc = sys.modules.get("grpc")
        if grpc is None or not isinstance(err, grpc.RpcError):
            raise
        print(f"pcpsim: error: the cluster answered {err.code().name}: {err.details()}", file=sys.stderr)
        return 2
