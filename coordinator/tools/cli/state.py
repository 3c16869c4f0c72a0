"""What a running cluster holds: `state` (per-CPU pcp lists, the zone, an audit) and `audit`
(the stop-the-world page audit alone)."""

import json

from coordinator.tools.cli.connect import stub
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.mm.constants import (
    MIGRATE_PCPTYPES,
    MIGRATETYPE_NAMES,
    NR_LOWORDER_PCP_LISTS,
    THP_LIST_MOVABLE_APART,
    THP_LIST_PER_TYPE,
    THP_LIST_SHARED,
    nr_pcp_lists,
    pindex_to_order,
)
from node.shared import security

# A kernel's THP layout by how many lists it has (the wire carries the count): 15, 13 or 14.
_THP_LAYOUTS = {nr_pcp_lists(t): t for t in (THP_LIST_PER_TYPE, THP_LIST_SHARED, THP_LIST_MOVABLE_APART)}


def _list_label(pindex: int, nr_lists: int) -> str:
    """o<order>:<the migratetypes on that list>: Unm, Mov or Rec alone, initials joined when a THP list
    takes several (all three: "all")."""
    order = pindex_to_order(pindex)
    if pindex < NR_LOWORDER_PCP_LISTS:
        return f"o{order}:{MIGRATETYPE_NAMES[pindex % MIGRATE_PCPTYPES][:3]}"
    layout = _THP_LAYOUTS.get(nr_lists)
    if layout is None:  # not a layout pcpsim models: the list's number
        return f"o{order}:{pindex}"
    types = [mt for mt in range(MIGRATE_PCPTYPES) if NR_LOWORDER_PCP_LISTS + layout[mt] == pindex]
    if len(types) == 1:
        return f"o{order}:{MIGRATETYPE_NAMES[types[0]][:3]}"
    return f"o{order}:" + (
        "all" if len(types) == MIGRATE_PCPTYPES else "+".join(MIGRATETYPE_NAMES[mt][0] for mt in types)
    )


def cmd_state(args) -> int:
    channel, coord = stub(args)
    with channel:
        state = coord.GetState(pb.Empty(), timeout=10.0)
        pcps = {}
        for node in state.nodes:
            if node.up:
                with security.channel(node.address, args.security) as nch:
                    pcps[node.cpu] = pb_grpc.NodeStub(nch).GetPcp(pb.CpuRequest(cpu=node.cpu), timeout=5.0)
        audit = None if args.no_audit else coord.Audit(pb.Empty(), timeout=60.0)
    z = state.zone
    # Every CPU of a cluster runs one kernel, so one list layout (its THP lists are the kernel's).
    nr_lists = max((len(p.list_pages) for p in pcps.values()), default=0)
    if args.json:
        print(
            json.dumps(
                {
                    "zone": {
                        "start_pfn": z.start_pfn,  # the pfns cma-alloc, offline and release take
                        "end_pfn": z.start_pfn + z.spanned_pages,
                        "free_pages": z.free_pages,
                        "managed_pages": z.managed_pages,
                        "watermark": {"min": z.watermark_min, "low": z.watermark_low, "high": z.watermark_high},
                        "nr_free": list(z.nr_free),
                        "reclaim_active": z.reclaim_active,
                        "below_high": z.below_high,
                    },
                    "list_labels": [_list_label(i, nr_lists) for i in range(nr_lists)],  # of each cpu's "lists"
                    "cpus": [
                        {
                            "cpu": n.cpu,
                            "role": pb.Role.Name(n.role),
                            "up": n.up,
                            **(
                                {
                                    "count": pcps[n.cpu].count,
                                    "high": pcps[n.cpu].high,
                                    "batch": pcps[n.cpu].batch,
                                    "free_factor": pcps[n.cpu].free_factor,
                                    "lists": list(pcps[n.cpu].list_pages),
                                }
                                if n.cpu in pcps
                                else {}
                            ),
                        }
                        for n in state.nodes
                    ],
                    "audit": None
                    if audit is None
                    else {
                        "ok": audit.ok,
                        "lost": audit.lost,
                        "duplicated": audit.duplicated,
                        "errors": list(audit.errors),
                    },
                },
                indent=2,
            )
        )
        return 0 if audit is None or audit.ok else 1
    print(
        f"zone: pfns [{z.start_pfn}, {z.start_pfn + z.spanned_pages}); "
        f"{z.free_pages}/{z.managed_pages} pages free; watermarks min {z.watermark_min} "
        f"low {z.watermark_low} high {z.watermark_high}; reclaim_active {z.reclaim_active} "
        f"below_high {z.below_high}"
    )
    print("free blocks per order: " + " ".join(f"{o}:{n}" for o, n in enumerate(z.nr_free)))
    print(
        f"{'cpu':>4} {'role':<26} {'count':>6} {'high':>5} {'batch':>5} {'ff':>3}  "
        + " ".join(f"{_list_label(i, nr_lists):>7}" for i in range(nr_lists))
    )
    for n in state.nodes:
        p = pcps.get(n.cpu)
        if p is None:
            print(f"{n.cpu:>4} {pb.Role.Name(n.role):<26} DOWN (heartbeat {n.heartbeat_age_s:.1f}s ago)")
            continue
        print(
            f"{n.cpu:>4} {pb.Role.Name(n.role):<26} {p.count:>6} {p.high:>5} {p.batch:>5} "
            f"{p.free_factor:>3}  " + " ".join(f"{x:>7}" for x in p.list_pages)
        )
    if audit is not None:
        _print_audit(audit)
        return 0 if audit.ok else 1
    return 0


def _print_audit(audit) -> None:
    verdict = "ok" if audit.ok else "FAILED"
    print(
        f"audit {verdict}: {audit.total_pages} pages; lost {audit.lost}, duplicated {audit.duplicated}, "
        f"unexpected {audit.unexpected}; " + ", ".join(f"{k} {v}" for k, v in sorted(audit.where.items()))
    )
    for e in audit.errors:
        print(f"  {e}")


def cmd_audit(args) -> int:
    channel, coord = stub(args)
    with channel:
        audit = coord.Audit(pb.Empty(), timeout=60.0)
    _print_audit(audit)
    return 0 if audit.ok else 1
