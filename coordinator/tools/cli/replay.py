"""`pcpsim replay`: a post-merge pcp bug replayed on the pure model (node.mm.bugs), one line a profile."""

from node.mm import bugs
from node.mm import profile as profiles


def cmd_replay(args) -> int:
    replay = bugs.REPLAYS[args.replay]
    failed = False
    for name in args.kernel or bugs.VARIANTS[args.replay]:
        result = replay(profiles.get(name))
        facts = " ".join(f"{k}={v}" for k, v in result.facts.items())
        print(f"{args.replay} under {name}: {'FAILED' if result.findings else 'passed'}  {facts}")
        for finding in result.findings:
            print(f"  - {finding}")
        failed = failed or bool(result.findings)
    return 1 if failed else 0
