"""The zone as the CPU thread sees it: the model's ZoneOps over gRPC to the coordinator.

The pure pcp functions (node.mm.pcp) call rmqueue_bulk / rmqueue_buddy /
free_pcppages_bulk / free_one_page on a zone object; here each becomes one request
to the coordinator's zone service, sent from the CPU thread on the node's long-lived zone
stream (node.shared.reply_stream), which blocks until the reply, so the CPU is occupied for as
long as the zone takes (the coordinator holds zone->lock for the modeled cost). Every
transfer carries an idempotency key; a request whose stream breaks or times out is
retried with the same key on a new stream until its outcome is known, so the zone
applies it at most once and a lost reply neither loses nor duplicates a page.

Deviation: the kernel checks the zone watermark before touching the pcp lists
(zone_watermark_fast). Here the zone refuses a refill or buddy allocation that would
take it under its min watermark, and reports it (`watermark_failed`), and the node
runs direct reclaim then; the free-page count and ZONE_RECLAIM_ACTIVE come back with
every reply, like the racy vmstat reads the kernel makes.

Pageblock types: the zone's bitmap of pageblock migratetypes lives with the coordinator's zone. A
reply carries a copy of it whenever this node's copy is out of date (every request names the
version it has; a steal or an isolation makes a new one), and get_pageblock_migratetype() reads the
copy, as free_unref_page_prepare()'s get_pfnblock_migratetype() reads the bitmap with no lock.
Deviation: the copy is as new as this node's last zone reply. A block another CPU stole (or
alloc_contig_range isolated) since then keeps its old type here until the next refill or flush,
where the kernel's read would see it at once.
"""

import itertools
import time

import grpc

from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.api.validate import to_page_list
from node.epoch import CoordinatorEpoch
from node.mm.constants import pageblock_order
from node.shared.faults import InjectedRpcError
from node.shared.reply_stream import ReplyStream, StreamBroken
from node.shared.transfer_log import blocks
from node.wall_ids import WALL_IDS
from node.zone_retry_rule import (
    STREAM_TIMEOUT_S,
    UNAVAILABLE_RETRIES,
    ZoneRefused,
    unavailable_pause,
    unknown_outcome_pause,
)

_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


class ZoneClient:
    def __init__(
        self,
        channel: grpc.Channel,
        cpu: int,
        incarnation: str,
        timeout: float = STREAM_TIMEOUT_S,
        unavailable_retries: int = UNAVAILABLE_RETRIES,
        faults=None,
        fenced=None,
        transfer_log=None,
        epoch=None,
    ):
        stub = pb_grpc.CoordinatorStub(channel)
        self._stream = ReplyStream(stub.ZoneStream, timeout, f"cpu{cpu}-zone")
        self.cpu = cpu
        self.incarnation = incarnation  # fencing: the zone refuses requests of a replaced incarnation
        self.faults = faults  # node.shared.faults.Faults: OUT faults on each message
        # A request refused unapplied (UNAVAILABLE) is tried again a few times, unless the
        # membership lease has run out (the coordinator is recovering or cannot hear us): node.zone_retry_rule.
        self.fenced = fenced or (lambda: False)
        self.unavailable_retries = unavailable_retries
        self.epoch = epoch or CoordinatorEpoch()  # node.epoch: a reply of a replaced coordinator is refused
        self._ids = itertools.count(1)
        self._boot = WALL_IDS.transfer_prefix()  # keys of a restarted node never collide
        self.free_pages = 0
        self.reclaim_active = False
        self.below_high = False  # ZONE_BELOW_HIGH, as the last reply or heartbeat said
        # The zone's pageblock migratetypes (version, first pfn, one byte a block); version 0: none yet.
        self._pageblocks: tuple[int, int, bytes] = (0, 0, b"")
        self.watermark_failed = False
        # Seconds this CPU's zone requests queued for zone->lock behind other holders, as the zone timed them.
        self.lock_wait_s = 0.0
        self.calls = 0
        self.unknown_outcomes = 0  # requests sent again because their outcome was unknown
        self.transfer_log = transfer_log  # node.shared.transfer_log.TransferLog, or None

    def close(self) -> None:
        self._stream.close()

    def _transfer_id(self) -> str:
        return f"cpu{self.cpu}-{self._boot}-{next(self._ids)}"

    def _call(self, request: pb.ZoneRequest) -> pb.ZoneReply:
        """Send until the answer is known. A broken stream or a lost reply leaves the outcome
        unknown (the zone may have applied it), and only the same request, sent again with
        its key, can tell: giving up there would lose the pages of a refill the zone made or
        duplicate those of a free it applied. So it is retried without limit, at most every
        half second: a coordinator that restarted answers UNAVAILABLE while it recovers (not
        applied: the caller may keep its pages) and one that declared this CPU dead answers
        FAILED_PRECONDITION (this CPU then discards everything anyway)."""
        op = f"ZoneStream.{request.WhichOneof('op')}"
        unavailable = 0
        attempt = 0
        while True:
            attempt += 1
            try:
                self.calls += 1
                if self.faults is not None:
                    self.faults.outbound_sync(op, self._stream.timeout)
                reply = self._stream.request(request)
            except (StreamBroken, InjectedRpcError) as err:
                if err.code() not in _RETRYABLE:
                    raise  # the stream itself was refused: the request never reached the zone
                self.unknown_outcomes += 1
                time.sleep(unknown_outcome_pause(attempt))
                continue
            if reply.code == "UNAVAILABLE":
                pause = unavailable_pause(unavailable, self.unavailable_retries, self.fenced())
                if pause is not None:
                    unavailable += 1
                    time.sleep(pause)  # refused unapplied (recovering, injected): try again soon
                    continue
            if reply.code:
                raise ZoneRefused(reply.code, reply.error, other_zone=self.epoch.unregistered(reply.coordinator_epoch))
            return self.epoch.admit_zone(reply)

    def _note(self, reply) -> None:
        self.free_pages = reply.free_pages
        self.reclaim_active = reply.reclaim_active
        self.below_high = reply.below_high
        self.lock_wait_s += reply.lock_wait_s
        if reply.HasField("pageblocks"):
            blocks = reply.pageblocks
            self._pageblocks = (blocks.version, blocks.first_pfn, blocks.migratetype)

    def get_pageblock_migratetype(self, pfn: int) -> int | None:
        """The pageblock's type in this node's copy; None before the zone sent one (a coordinator
        that does not send it), or for a pfn outside it."""
        _, first_pfn, types = self._pageblocks
        index = (pfn >> pageblock_order) - (first_pfn >> pageblock_order)
        return types[index] if 0 <= index < len(types) else None

    # ------------------------------------------------------------- ZoneOps
    def rmqueue_bulk(self, order: int, count: int, migratetype: int) -> list[int]:
        inc = self.incarnation  # a discard may take a new one while this waits for its answer
        answer = self._call(
            pb.ZoneRequest(
                rmqueue=pb.RmqueueRequest(
                    cpu=self.cpu,
                    order=order,
                    migratetype=migratetype,
                    count=count,
                    transfer_id=self._transfer_id(),
                    incarnation=inc,
                    pageblock_version=self._pageblocks[0],
                )
            )
        )
        reply = answer.rmqueue
        self._note(reply)
        self.watermark_failed = not reply.watermark_ok
        if self.transfer_log is not None and reply.pfn:
            # With the epoch of the zone that applied it (chaos.transfers: a superseded zone's refill).
            pages = [[pfn, order] for pfn in reply.pfn]
            self.transfer_log.write("refill", inc=inc, pages=pages, epoch=answer.coordinator_epoch)
        return list(reply.pfn)

    def rmqueue_buddy(self, order: int, migratetype: int) -> int | None:
        pfns = self.rmqueue_bulk(order, 1, migratetype)
        return pfns[0] if pfns else None

    def free_pcppages_bulk(self, pages, commit: bool = False) -> None:
        if not pages:
            return
        inc = self.incarnation
        log = self.transfer_log
        # The pages leave when the request is sent: the zone may apply it and hand them out before
        # the answer comes, or the answer may never come (this CPU declared dead meanwhile). If it
        # fails, the caller keeps them (a refused free changes nothing): they join again then;
        # unless another zone refused it (ZoneRefused.other_zone): they are given up then.
        if log is not None:
            log.write("free", inc=inc, pages=blocks(pages))
        try:
            reply = self._call(
                pb.ZoneRequest(
                    free=pb.FreePagesRequest(
                        cpu=self.cpu,
                        pages=to_page_list(pb.PageList, pages),
                        transfer_id=self._transfer_id(),
                        incarnation=inc,
                        pageblock_version=self._pageblocks[0],
                        commit=commit,
                    )
                )
            ).free
        except Exception as err:  # not the process's end (a kill unwinding a virtual CPU's fiber): it keeps nothing
            if isinstance(err, ZoneRefused) and err.other_zone:
                return  # given up: the new zone, which counts free what no node claims, owes them to nobody
            if log is not None:
                log.write("keep", inc=inc, pages=blocks(pages))
            raise
        self._note(reply)

    def free_one_page(self, pfn: int, order: int, migratetype: int) -> None:
        self.free_pcppages_bulk([(pfn, order, migratetype)])
