"""The `pcpsim` command (entry point `main`; `python -m coordinator.tools.cli`).

parser    the argparse tree and the usage text (`pcpsim --help`)
flags     flag types: whole numbers, fractions, strategy lists, trigger mixes
connect   reaching a running cluster: state file, address, operator credentials, stub
errors    CliError: a refusal, printed as `pcpsim: error: ...` with exit 2
cluster   cluster up, tokens
ops       drain, cma-alloc, offline, release, cpu
state     state, audit
run       compare, report, bench
chaos     chaos run, chaos check
sweep     chaos sweep, chaos sweep-merge
replay    replay (node.mm.bugs on the pure model)
kernels   kernels (what each kernel profile models)
"""

import os
import sys

import grpc

from coordinator.tools.cli.chaos import cmd_chaos
from coordinator.tools.cli.cluster import cmd_cluster_up, cmd_tokens
from coordinator.tools.cli.errors import CliError
from coordinator.tools.cli.kernels import cmd_kernels
from coordinator.tools.cli.ops import cmd_contig, cmd_cpu, cmd_drain, cmd_release
from coordinator.tools.cli.parser import build_parser
from coordinator.tools.cli.replay import cmd_replay
from coordinator.tools.cli.run import cmd_bench, cmd_compare, cmd_report
from coordinator.tools.cli.state import cmd_audit, cmd_state
from coordinator.tools.cli.sweep import cmd_sweep, cmd_sweep_merge

COMMANDS = {
    "tokens": cmd_tokens,
    "drain": cmd_drain,
    "state": cmd_state,
    "audit": cmd_audit,
    "compare": cmd_compare,
    "cma-alloc": cmd_contig,
    "offline": cmd_contig,
    "release": cmd_release,
    "cpu": cmd_cpu,
    "report": cmd_report,
    "bench": cmd_bench,
    "chaos": cmd_chaos,
    "replay": cmd_replay,
    "kernels": cmd_kernels,
    "chaos-sweep": cmd_sweep,  # set by the subcommands themselves (cli.sweep.add_parsers)
    "chaos-sweep-merge": cmd_sweep_merge,
}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "cluster":
            return cmd_cluster_up(args)
        return COMMANDS[args.command](args)
    except CliError as err:
        print(f"pcpsim: error: {err}", file=sys.stderr)
        return 2
    except grpc.RpcError as err:
        print(f"pcpsim: error: the cluster answered {err.code().name}: {err.details()}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
