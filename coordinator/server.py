"""The coordinator's gRPC servicer: each method converts its request, calls membership,
registration, the zone, the drainer or the range and hotplug services, and converts the
result. Domain errors and faults are applied around every method by node.shared.interceptors.
"""

import functools

from coordinator import audit_rule
from coordinator.audit import audit_cluster
from coordinator.membership_rule import answer_heartbeat
from coordinator.zone_service import NODE
from node.api import validate
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.mm.constants import MAX_ORDER
from node.mm.profile import DEFAULT_KERNEL
from node.shared.reply_stream import serve_ops


class CoordinatorServicer(pb_grpc.CoordinatorServicer):
    def __init__(
        self,
        membership,
        registration,
        zone_service,
        drainer,
        pageset,
        recovery,
        time_scale: float,
        metrics_address: str = "",
        on_audit=None,
        faults=None,
        kernel: str = DEFAULT_KERNEL,
        contig=None,
        hotplug=None,
        epoch: int = 0,
    ):
        self.membership = membership
        self.registration = registration  # coordinator.registration.Registration
        self.zone = zone_service
        self.drainer = drainer
        self.pageset = pageset  # coordinator.pageset.Pageset: high and batch now
        self.recovery = recovery  # coordinator.recovery.Recovery
        self.time_scale = time_scale
        self.metrics_address = metrics_address  # this process's /metrics host:port, reported in GetState
        self.on_audit = on_audit  # called with each completed audit's report (coordinator.metrics.AuditMetrics)
        self.faults = faults  # node.shared.faults.Faults: set by the chaos nemesis
        self.kernel = kernel  # the kernel profile every CPU runs (node.mm.profile), sent at registration
        self.contig = contig  # coordinator.contig.ContigRanges: alloc_contig_range, offline_pages
        self.hotplug = hotplug  # coordinator.cpu_hotplug.CpuHotplug
        self.epoch = epoch  # this process's epoch (coordinator.store), in every reply to a node (node.epoch)
        self._zone_ops = {"rmqueue": ("rmqueue", self._rmqueue), "free": ("free", self._free_pages)}

    def zone_info(self) -> pb.ZoneInfo:
        z = self.zone.zone
        return pb.ZoneInfo(
            start_pfn=z.start_pfn,
            spanned_pages=z.spanned_pages,
            managed_pages=z.managed_pages,
            free_pages=z.free_pages,
            watermark_min=z.watermark["min"],
            watermark_low=z.watermark["low"],
            watermark_high=z.watermark["high"],
            nr_free=[z.nr_free(o) for o in range(MAX_ORDER)],
            reclaim_active=z.reclaim_active,
            below_high=z.below_high,
        )

    async def Register(self, request, context):
        # Validate before anything changes (coordinator.registration).
        m = self.membership
        m.check_registration(request.cpu, request.address, request.role, request.metrics_address, request.incarnation)
        holdings = validate.page_list(request.holdings) if request.resume else []
        reclaimed, resumed = await self.registration.register(
            request.cpu,
            request.address,
            request.role,
            request.metrics_address,
            request.incarnation,
            request.resume,
            holdings,
            request.holdings_epoch,
        )
        return pb.RegisterReply(
            nr_cpus=m.nr_cpus,
            high=self.pageset.high,
            high_max=self.pageset.high_max,
            batch=self.pageset.batch,
            zone=self.zone_info(),
            time_scale=self.time_scale,
            reclaimed_pages=reclaimed,
            lease_ms=round(m.lease * 1000),
            dead_ms=round(m.dead_timeout * 1000),
            resumed=resumed,
            recovering=self.recovery.active,
            strategy=self.drainer.default_strategy,
            kernel=self.kernel,
            heartbeat_interval_ms=round(m.heartbeat_interval() * 1000),
            coordinator_epoch=self.epoch,
        )

    async def Heartbeat(self, request, context):
        return answer_heartbeat(
            self.membership, request, self.zone.zone, self.pageset, self.recovery.active, self.epoch
        )

    async def Rmqueue(self, request, context):
        return await self._rmqueue(request)

    async def FreePages(self, request, context):
        return await self._free_pages(request)

    async def ZoneStream(self, request_iterator, context):
        """The same operations as Rmqueue and FreePages on one long-lived stream per node
        (a message on an open stream costs a fraction of a unary call). Each reply carries the coordinator's
        epoch: the interceptor puts it on every reply, a refusal's too (build_server's reply_fields)."""
        async for reply in serve_ops(request_iterator, pb.ZoneReply, self._zone_ops):
            yield reply

    def _check_zone_caller(self, cpu: int, incarnation: str) -> None:
        self.recovery.check_over()
        self.membership.live(cpu, incarnation)  # fencing: a dead or replaced CPU changes nothing

    def _as_live(self, cpu: int, incarnation: str, operation):
        """Under zone->lock: operation() only if the caller is still live. The
        check before queueing is not enough: the CPU may be declared dead while its request waits
        for zone->lock, and page_alloc_cpu_dead (queued behind it) would then take back pages the
        request was given after the node had stopped using its pcp."""
        self.membership.live(cpu, incarnation)
        return operation()

    async def _rmqueue(self, request) -> pb.RmqueueReply:
        cpu = validate.cpu(request.cpu, self.membership.nr_cpus)
        order = validate.order(request.order)
        mt = validate.migratetype(request.migratetype)
        count = validate.count(request.count, 1 << 12)
        validate.transfer_id(request.transfer_id)
        self._check_zone_caller(cpu, request.incarnation)
        reply, waited = await self.zone.waited(
            self._as_live,
            cpu,
            request.incarnation,
            functools.partial(self.zone.rmqueue, cpu, order, mt, count, request.transfer_id, request.incarnation),
        )
        return pb.RmqueueReply(
            pfn=reply.pfns,
            watermark_ok=reply.watermark_ok,
            free_pages=reply.free_pages,
            reclaim_active=reply.reclaim_active,
            pageblocks=self._pageblocks(request.pageblock_version),
            lock_wait_s=waited,
            below_high=reply.below_high,
        )

    def _pageblocks(self, known: int) -> pb.Pageblocks | None:
        """The zone's pageblock types, for a node whose copy is older (node.zone_client)."""
        blocks = self.zone.pageblocks(known, self.epoch)
        if blocks is None:
            return None
        version, first_pfn, migratetype = blocks
        return pb.Pageblocks(version=version, first_pfn=first_pfn, migratetype=migratetype)

    async def _free_pages(self, request) -> pb.FreePagesReply:
        cpu = validate.cpu(request.cpu, self.membership.nr_cpus)
        pages = validate.page_list(request.pages)
        if not pages:
            raise validate.InvalidArgument("no pages to free")
        validate.transfer_id(request.transfer_id)
        self._check_zone_caller(cpu, request.incarnation)
        reply, waited = await self.zone.waited(
            self._as_live,
            cpu,
            request.incarnation,
            functools.partial(
                self.zone.free_pages, cpu, pages, request.transfer_id, request.incarnation, NODE, request.commit
            ),
        )
        return pb.FreePagesReply(
            free_pages=reply.free_pages,
            reclaim_active=reply.reclaim_active,
            pageblocks=self._pageblocks(request.pageblock_version),
            lock_wait_s=waited,
            below_high=reply.below_high,
        )

    async def DrainAllPages(self, request, context):
        self.recovery.check_over()
        record = await self.drainer.drain_all_pages(request.strategy, request.force_all_cpus, request.trigger)
        return record.to_pb()

    async def GetState(self, request, context):
        m = self.membership
        nodes = [
            pb.NodeInfo(
                cpu=x.cpu,
                address=x.address,
                role=x.role,
                up=m.is_up(x),
                heartbeat_age_s=m.clock() - x.last_heartbeat,
                pcp_count=x.pcp_count,
                metrics_address=x.metrics_address,
                dead=x.dead,
                incarnation=x.incarnation,
            )
            for _, x in sorted(m.members.items())
        ]
        return pb.ClusterState(
            nodes=nodes,
            zone=self.zone_info(),
            default_strategy=self.drainer.default_strategy,
            high=self.pageset.high,
            batch=self.pageset.batch,
            time_scale=self.time_scale,
            metrics_address=self.metrics_address,
            recovering=self.recovery.active,
            lease_ms=round(m.lease * 1000),
            dead_ms=round(m.dead_timeout * 1000),
            kernel=self.kernel,
            coordinator_epoch=self.epoch,
        )

    async def GetDrainHistory(self, request, context):
        reply = pb.DrainHistory(drains=[r.to_pb() for r in self.drainer.history])
        if request.reset:
            self.drainer.history.clear()
        return reply

    async def Audit(self, request, context):
        self.recovery.check_over()
        report = await audit_cluster(self.membership, self.zone, self.drainer, self.on_audit)
        return audit_rule.reply(report)

    async def SetFaults(self, request, context):
        return self.faults.set(request, "coordinator", self.membership.nr_cpus)

    async def AllocContigRange(self, request, context):
        # A range operation drains (pcpu_drain_mutex) and hands pages out: not while the zone is rebuilt.
        self.recovery.check_over()
        result = await self.contig.alloc_contig_range(request.start_pfn, request.nr_pages, request.timeout_ms)
        return result.to_pb()

    async def OfflinePages(self, request, context):
        self.recovery.check_over()
        result = await self.contig.offline_pages(request.start_pfn, request.nr_pages, request.timeout_ms)
        return result.to_pb()

    async def ReleaseRange(self, request, context):
        owner = await self.contig.release(request.start_pfn, request.nr_pages)
        return pb.ReleaseRangeReply(owner=owner, free_pages=self.zone.zone.free_pages)

    async def SetCpuOnline(self, request, context):
        cpu = validate.cpu(request.cpu, self.membership.nr_cpus)
        record = await self.hotplug.set_online(cpu, request.online)
        return pb.CpuOnlineReply(
            drain=record.to_pb() if record else None,
            high=self.pageset.high,
            batch=self.pageset.batch,
            online_cpus=self.membership.alive(),
        )
