"""Commands that act on a running cluster's memory: `drain` (drain_all_pages), `cma-alloc` and
`offline` (a contiguous range, with its drains), `release` (the range back) and `cpu` (hotplug)."""

import json

from coordinator.drain.record import STRATEGIES, STRATEGY_NAMES, TRIGGER_NAMES
from coordinator.tools.cli.connect import stub
from node.api.v1 import pcpsim_pb2 as pb


def kus(seconds: float, scale: float) -> str:
    return f"{seconds * 1e3:.2f} ms ({seconds / scale * 1e6:.1f} us kernel)"


def cmd_drain(args) -> int:
    channel, coord = stub(args)
    with channel:
        r = coord.DrainAllPages(
            pb.DrainAllRequest(
                strategy=STRATEGIES[args.strategy], force_all_cpus=args.force_all_cpus, trigger=pb.TRIGGER_DEMAND
            ),
            timeout=120.0,
        )
        scale = coord.GetState(pb.Empty(), timeout=10.0).time_scale
    if args.json:
        print(
            json.dumps(
                {
                    "status": pb.DrainAllReply.Status.Name(r.status),
                    "strategy": STRATEGY_NAMES[r.strategy],
                    "duration_s": r.duration_s,
                    "cpus": [
                        {
                            "cpu": c.cpu,
                            "pages": c.pages,
                            "duration_s": c.duration_s,
                            "wait_s": c.wait_s,
                            "ok": c.ok,
                            "error": c.error,
                        }
                        for c in r.cpus
                    ],
                },
                indent=2,
            )
        )
    else:
        print(
            f"drain_all_pages ({STRATEGY_NAMES[r.strategy]}, {TRIGGER_NAMES[r.trigger]}): "
            f"{pb.DrainAllReply.Status.Name(r.status)} in {kus(r.duration_s, scale)}, "
            f"CPUs marked {list(r.cpus_marked)}"
        )
        for c in r.cpus:
            print(
                f"  cpu{c.cpu}: {c.pages:5d} pages  done at {kus(c.duration_s, scale)}  "
                f"waited {kus(c.wait_s, scale)}" + ("" if c.ok else f"  FAILED: {c.error}")
            )
    return 0 if r.status == pb.DrainAllReply.DONE else 1


def cmd_contig(args) -> int:
    channel, coord = stub(args)
    request = pb.ContigRangeRequest(start_pfn=args.start_pfn or 0, nr_pages=args.pages, timeout_ms=args.timeout_ms)
    with channel:
        call = coord.AllocContigRange if args.command == "cma-alloc" else coord.OfflinePages
        r = call(request, timeout=args.timeout_ms / 1000.0 + 120.0)
        scale = coord.GetState(pb.Empty(), timeout=10.0).time_scale
    drains = [
        {
            "status": pb.DrainAllReply.Status.Name(d.status),
            "trigger": TRIGGER_NAMES[d.trigger],
            "strategy": STRATEGY_NAMES[d.strategy],
            "duration_s": d.duration_s,
            "cpus_marked": list(d.cpus_marked),
            "pages": sum(c.pages for c in d.cpus),
        }
        for d in r.drains
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "ok": r.ok,
                    "start_pfn": r.start_pfn,
                    "nr_pages": r.nr_pages,
                    "duration_s": r.duration_s,
                    "attempts": r.attempts,
                    "busy_pfn": r.busy_pfn,
                    "error": r.error,
                    "drains": drains,
                },
                indent=2,
            )
        )
    else:
        print(
            f"{args.command} [{r.start_pfn}, {r.start_pfn + r.nr_pages}): {'ok' if r.ok else 'FAILED'} in "
            f"{kus(r.duration_s, scale)} after {r.attempts} attempt(s)" + ("" if r.ok else f": {r.error}")
        )
        for d in drains:
            print(
                f"  drain_all_pages ({d['strategy']}, {d['trigger']}): {d['status']} in "
                f"{kus(d['duration_s'], scale)}, CPUs marked {d['cpus_marked']}, {d['pages']} pages"
            )
    return 0 if r.ok else 1


def cmd_cpu(args) -> int:
    channel, coord = stub(args)
    with channel:
        r = coord.SetCpuOnline(pb.CpuOnlineRequest(cpu=args.cpu, online=args.action == "online"), timeout=120.0)
        scale = coord.GetState(pb.Empty(), timeout=10.0).time_scale
    print(f"cpu{args.cpu} {args.action}: {r.online_cpus} CPUs online, high {r.high}, batch {r.batch}")
    if r.HasField("drain"):
        d = r.drain
        print(
            f"  drain_pages(cpu{args.cpu}) ({STRATEGY_NAMES[d.strategy]}, {TRIGGER_NAMES[d.trigger]}): "
            f"{pb.DrainAllReply.Status.Name(d.status)} in {kus(d.duration_s, scale)}, "
            f"{sum(c.pages for c in d.cpus)} pages" + "".join(f"  FAILED: {c.error}" for c in d.cpus if not c.ok)
        )
        return 0 if d.status == pb.DrainAllReply.DONE else 1
    return 0


def cmd_release(args) -> int:
    channel, coord = stub(args)
    with channel:
        r = coord.ReleaseRange(pb.ReleaseRangeRequest(start_pfn=args.start_pfn, nr_pages=args.pages), timeout=30.0)
    print(f"released {r.owner} range [{args.start_pfn}, {args.start_pfn + args.pages}); zone free pages {r.free_pages}")
    return 0
