from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Strategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRATEGY_UNSPECIFIED: _ClassVar[Strategy]
    STRATEGY_WORKQUEUE: _ClassVar[Strategy]
    STRATEGY_REMOTE: _ClassVar[Strategy]
    STRATEGY_RCU_SWAP: _ClassVar[Strategy]
    STRATEGY_QPW: _ClassVar[Strategy]

class Trigger(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIGGER_UNSPECIFIED: _ClassVar[Trigger]
    TRIGGER_DEMAND: _ClassVar[Trigger]
    TRIGGER_RECLAIM: _ClassVar[Trigger]
    TRIGGER_ALLOC_CONTIG: _ClassVar[Trigger]
    TRIGGER_MEMORY_OFFLINE: _ClassVar[Trigger]
    TRIGGER_CPU_HOTPLUG: _ClassVar[Trigger]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_HOUSEKEEPING: _ClassVar[Role]
    ROLE_ISOLATED_PREEMPTIBLE: _ClassVar[Role]
    ROLE_ISOLATED_RT: _ClassVar[Role]
    ROLE_IDLE: _ClassVar[Role]

class WorkKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORK_UNSPECIFIED: _ClassVar[WorkKind]
    WORK_DRAIN_LOCAL_PAGES: _ClassVar[WorkKind]

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_IN: _ClassVar[Direction]
    DIRECTION_OUT: _ClassVar[Direction]
STRATEGY_UNSPECIFIED: Strategy
STRATEGY_WORKQUEUE: Strategy
STRATEGY_REMOTE: Strategy
STRATEGY_RCU_SWAP: Strategy
STRATEGY_QPW: Strategy
TRIGGER_UNSPECIFIED: Trigger
TRIGGER_DEMAND: Trigger
TRIGGER_RECLAIM: Trigger
TRIGGER_ALLOC_CONTIG: Trigger
TRIGGER_MEMORY_OFFLINE: Trigger
TRIGGER_CPU_HOTPLUG: Trigger
ROLE_UNSPECIFIED: Role
ROLE_HOUSEKEEPING: Role
ROLE_ISOLATED_PREEMPTIBLE: Role
ROLE_ISOLATED_RT: Role
ROLE_IDLE: Role
WORK_UNSPECIFIED: WorkKind
WORK_DRAIN_LOCAL_PAGES: WorkKind
DIRECTION_UNSPECIFIED: Direction
DIRECTION_IN: Direction
DIRECTION_OUT: Direction

class PageList(_message.Message):
    __slots__ = ("pfn", "order", "migratetype")
    PFN_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    MIGRATETYPE_FIELD_NUMBER: _ClassVar[int]
    pfn: _containers.RepeatedScalarFieldContainer[int]
    order: _containers.RepeatedScalarFieldContainer[int]
    migratetype: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, pfn: _Optional[_Iterable[int]] = ..., order: _Optional[_Iterable[int]] = ..., migratetype: _Optional[_Iterable[int]] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CpuRequest(_message.Message):
    __slots__ = ("cpu",)
    CPU_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    def __init__(self, cpu: _Optional[int] = ...) -> None: ...

class PcpState(_message.Message):
    __slots__ = ("cpu", "count", "high", "batch", "free_factor", "list_pages", "locked", "remote_token", "high_min", "high_max")
    CPU_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    FREE_FACTOR_FIELD_NUMBER: _ClassVar[int]
    LIST_PAGES_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    REMOTE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HIGH_MIN_FIELD_NUMBER: _ClassVar[int]
    HIGH_MAX_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    count: int
    high: int
    batch: int
    free_factor: int
    list_pages: _containers.RepeatedScalarFieldContainer[int]
    locked: bool
    remote_token: int
    high_min: int
    high_max: int
    def __init__(self, cpu: _Optional[int] = ..., count: _Optional[int] = ..., high: _Optional[int] = ..., batch: _Optional[int] = ..., free_factor: _Optional[int] = ..., list_pages: _Optional[_Iterable[int]] = ..., locked: _Optional[bool] = ..., remote_token: _Optional[int] = ..., high_min: _Optional[int] = ..., high_max: _Optional[int] = ...) -> None: ...

class PcpLockDrainRequest(_message.Message):
    __slots__ = ("cpu", "lease_ms", "left", "request_id")
    CPU_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    lease_ms: int
    left: int
    request_id: int
    def __init__(self, cpu: _Optional[int] = ..., lease_ms: _Optional[int] = ..., left: _Optional[int] = ..., request_id: _Optional[int] = ...) -> None: ...

class PcpLockDrainReply(_message.Message):
    __slots__ = ("token", "pages", "lock_wait_s", "left")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    LOCK_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    token: int
    pages: PageList
    lock_wait_s: float
    left: int
    def __init__(self, token: _Optional[int] = ..., pages: _Optional[_Union[PageList, _Mapping]] = ..., lock_wait_s: _Optional[float] = ..., left: _Optional[int] = ...) -> None: ...

class PcpUnlockRequest(_message.Message):
    __slots__ = ("cpu", "token", "commit")
    CPU_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    token: int
    commit: bool
    def __init__(self, cpu: _Optional[int] = ..., token: _Optional[int] = ..., commit: _Optional[bool] = ...) -> None: ...

class RcuSwapRequest(_message.Message):
    __slots__ = ("cpu", "gp_timeout_ms", "lease_ms", "request_id")
    CPU_FIELD_NUMBER: _ClassVar[int]
    GP_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    gp_timeout_ms: int
    lease_ms: int
    request_id: int
    def __init__(self, cpu: _Optional[int] = ..., gp_timeout_ms: _Optional[int] = ..., lease_ms: _Optional[int] = ..., request_id: _Optional[int] = ...) -> None: ...

class RcuSwapReply(_message.Message):
    __slots__ = ("token", "pages", "grace_period_s", "gp_ok")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    GP_OK_FIELD_NUMBER: _ClassVar[int]
    token: int
    pages: PageList
    grace_period_s: float
    gp_ok: bool
    def __init__(self, token: _Optional[int] = ..., pages: _Optional[_Union[PageList, _Mapping]] = ..., grace_period_s: _Optional[float] = ..., gp_ok: _Optional[bool] = ...) -> None: ...

class RcuReleaseRequest(_message.Message):
    __slots__ = ("cpu", "token", "commit")
    CPU_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    token: int
    commit: bool
    def __init__(self, cpu: _Optional[int] = ..., token: _Optional[int] = ..., commit: _Optional[bool] = ...) -> None: ...

class AbandonRequest(_message.Message):
    __slots__ = ("cpu", "request_id")
    CPU_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    request_id: int
    def __init__(self, cpu: _Optional[int] = ..., request_id: _Optional[int] = ...) -> None: ...

class AbandonReply(_message.Message):
    __slots__ = ("aborted",)
    ABORTED_FIELD_NUMBER: _ClassVar[int]
    aborted: bool
    def __init__(self, aborted: _Optional[bool] = ...) -> None: ...

class PcpControlRequest(_message.Message):
    __slots__ = ("lock_drain", "unlock", "rcu_swap", "rcu_release", "abandon")
    LOCK_DRAIN_FIELD_NUMBER: _ClassVar[int]
    UNLOCK_FIELD_NUMBER: _ClassVar[int]
    RCU_SWAP_FIELD_NUMBER: _ClassVar[int]
    RCU_RELEASE_FIELD_NUMBER: _ClassVar[int]
    ABANDON_FIELD_NUMBER: _ClassVar[int]
    lock_drain: PcpLockDrainRequest
    unlock: PcpUnlockRequest
    rcu_swap: RcuSwapRequest
    rcu_release: RcuReleaseRequest
    abandon: AbandonRequest
    def __init__(self, lock_drain: _Optional[_Union[PcpLockDrainRequest, _Mapping]] = ..., unlock: _Optional[_Union[PcpUnlockRequest, _Mapping]] = ..., rcu_swap: _Optional[_Union[RcuSwapRequest, _Mapping]] = ..., rcu_release: _Optional[_Union[RcuReleaseRequest, _Mapping]] = ..., abandon: _Optional[_Union[AbandonRequest, _Mapping]] = ...) -> None: ...

class PcpControlReply(_message.Message):
    __slots__ = ("lock_drain", "unlocked", "rcu_swap", "rcu_released", "abandoned", "code", "error")
    LOCK_DRAIN_FIELD_NUMBER: _ClassVar[int]
    UNLOCKED_FIELD_NUMBER: _ClassVar[int]
    RCU_SWAP_FIELD_NUMBER: _ClassVar[int]
    RCU_RELEASED_FIELD_NUMBER: _ClassVar[int]
    ABANDONED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    lock_drain: PcpLockDrainReply
    unlocked: Empty
    rcu_swap: RcuSwapReply
    rcu_released: Empty
    abandoned: AbandonReply
    code: str
    error: str
    def __init__(self, lock_drain: _Optional[_Union[PcpLockDrainReply, _Mapping]] = ..., unlocked: _Optional[_Union[Empty, _Mapping]] = ..., rcu_swap: _Optional[_Union[RcuSwapReply, _Mapping]] = ..., rcu_released: _Optional[_Union[Empty, _Mapping]] = ..., abandoned: _Optional[_Union[AbandonReply, _Mapping]] = ..., code: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class QueueWorkRequest(_message.Message):
    __slots__ = ("cpu", "kind")
    CPU_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    kind: WorkKind
    def __init__(self, cpu: _Optional[int] = ..., kind: _Optional[_Union[WorkKind, str]] = ...) -> None: ...

class QueueWorkReply(_message.Message):
    __slots__ = ("work_id",)
    WORK_ID_FIELD_NUMBER: _ClassVar[int]
    work_id: int
    def __init__(self, work_id: _Optional[int] = ...) -> None: ...

class FlushWorkRequest(_message.Message):
    __slots__ = ("cpu", "work_id", "timeout_ms")
    CPU_FIELD_NUMBER: _ClassVar[int]
    WORK_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    work_id: int
    timeout_ms: int
    def __init__(self, cpu: _Optional[int] = ..., work_id: _Optional[int] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class FlushWorkReply(_message.Message):
    __slots__ = ("done", "queue_delay_s", "run_s", "pages")
    DONE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DELAY_S_FIELD_NUMBER: _ClassVar[int]
    RUN_S_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    done: bool
    queue_delay_s: float
    run_s: float
    pages: int
    def __init__(self, done: _Optional[bool] = ..., queue_delay_s: _Optional[float] = ..., run_s: _Optional[float] = ..., pages: _Optional[int] = ...) -> None: ...

class RunStateRequest(_message.Message):
    __slots__ = ("cpu", "paused", "cpu_offline")
    CPU_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    CPU_OFFLINE_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    paused: bool
    cpu_offline: bool
    def __init__(self, cpu: _Optional[int] = ..., paused: _Optional[bool] = ..., cpu_offline: _Optional[bool] = ...) -> None: ...

class RunStateReply(_message.Message):
    __slots__ = ("was_paused",)
    WAS_PAUSED_FIELD_NUMBER: _ClassVar[int]
    was_paused: bool
    def __init__(self, was_paused: _Optional[bool] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ("cpu", "reset", "events_from_s", "events_to_s")
    CPU_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FROM_S_FIELD_NUMBER: _ClassVar[int]
    EVENTS_TO_S_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    reset: bool
    events_from_s: float
    events_to_s: float
    def __init__(self, cpu: _Optional[int] = ..., reset: _Optional[bool] = ..., events_from_s: _Optional[float] = ..., events_to_s: _Optional[float] = ...) -> None: ...

class CpuEvent(_message.Message):
    __slots__ = ("lane", "kind", "start_s", "end_s")
    LANE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    lane: str
    kind: str
    start_s: float
    end_s: float
    def __init__(self, lane: _Optional[str] = ..., kind: _Optional[str] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ...) -> None: ...

class LatencyTaskStats(_message.Message):
    __slots__ = ("kind", "wake_latency_s", "runs", "deadline_misses", "stolen_s", "noise_events", "max_single_noise_s", "period_s", "misses_by_cause")
    class StolenSEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class NoiseEventsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class MissesByCauseEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    WAKE_LATENCY_S_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MISSES_FIELD_NUMBER: _ClassVar[int]
    STOLEN_S_FIELD_NUMBER: _ClassVar[int]
    NOISE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_SINGLE_NOISE_S_FIELD_NUMBER: _ClassVar[int]
    PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    MISSES_BY_CAUSE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    wake_latency_s: _containers.RepeatedScalarFieldContainer[float]
    runs: int
    deadline_misses: int
    stolen_s: _containers.ScalarMap[str, float]
    noise_events: _containers.ScalarMap[str, int]
    max_single_noise_s: float
    period_s: float
    misses_by_cause: _containers.ScalarMap[str, int]
    def __init__(self, kind: _Optional[str] = ..., wake_latency_s: _Optional[_Iterable[float]] = ..., runs: _Optional[int] = ..., deadline_misses: _Optional[int] = ..., stolen_s: _Optional[_Mapping[str, float]] = ..., noise_events: _Optional[_Mapping[str, int]] = ..., max_single_noise_s: _Optional[float] = ..., period_s: _Optional[float] = ..., misses_by_cause: _Optional[_Mapping[str, int]] = ...) -> None: ...

class NodeStats(_message.Message):
    __slots__ = ("cpu", "role", "task", "drain_work_items", "drain_wait_max_s", "trylock_failures", "buddy_fallbacks", "alloc_failures", "allocs", "frees", "busy_s", "events")
    CPU_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    DRAIN_WORK_ITEMS_FIELD_NUMBER: _ClassVar[int]
    DRAIN_WAIT_MAX_S_FIELD_NUMBER: _ClassVar[int]
    TRYLOCK_FAILURES_FIELD_NUMBER: _ClassVar[int]
    BUDDY_FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    ALLOC_FAILURES_FIELD_NUMBER: _ClassVar[int]
    ALLOCS_FIELD_NUMBER: _ClassVar[int]
    FREES_FIELD_NUMBER: _ClassVar[int]
    BUSY_S_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    role: Role
    task: LatencyTaskStats
    drain_work_items: int
    drain_wait_max_s: float
    trylock_failures: int
    buddy_fallbacks: int
    alloc_failures: int
    allocs: int
    frees: int
    busy_s: float
    events: _containers.RepeatedCompositeFieldContainer[CpuEvent]
    def __init__(self, cpu: _Optional[int] = ..., role: _Optional[_Union[Role, str]] = ..., task: _Optional[_Union[LatencyTaskStats, _Mapping]] = ..., drain_work_items: _Optional[int] = ..., drain_wait_max_s: _Optional[float] = ..., trylock_failures: _Optional[int] = ..., buddy_fallbacks: _Optional[int] = ..., alloc_failures: _Optional[int] = ..., allocs: _Optional[int] = ..., frees: _Optional[int] = ..., busy_s: _Optional[float] = ..., events: _Optional[_Iterable[_Union[CpuEvent, _Mapping]]] = ...) -> None: ...

class GrantRecord(_message.Message):
    __slots__ = ("token", "outcome", "pages", "granted_at", "ended_at", "lease_s", "committed_after_expiry", "stale_commits_refused")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[GrantRecord.Outcome]
        HELD: _ClassVar[GrantRecord.Outcome]
        COMMITTED: _ClassVar[GrantRecord.Outcome]
        ABORTED: _ClassVar[GrantRecord.Outcome]
        EXPIRED: _ClassVar[GrantRecord.Outcome]
    OUTCOME_UNSPECIFIED: GrantRecord.Outcome
    HELD: GrantRecord.Outcome
    COMMITTED: GrantRecord.Outcome
    ABORTED: GrantRecord.Outcome
    EXPIRED: GrantRecord.Outcome
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    LEASE_S_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_AFTER_EXPIRY_FIELD_NUMBER: _ClassVar[int]
    STALE_COMMITS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    token: int
    outcome: GrantRecord.Outcome
    pages: int
    granted_at: float
    ended_at: float
    lease_s: float
    committed_after_expiry: bool
    stale_commits_refused: int
    def __init__(self, token: _Optional[int] = ..., outcome: _Optional[_Union[GrantRecord.Outcome, str]] = ..., pages: _Optional[int] = ..., granted_at: _Optional[float] = ..., ended_at: _Optional[float] = ..., lease_s: _Optional[float] = ..., committed_after_expiry: _Optional[bool] = ..., stale_commits_refused: _Optional[int] = ...) -> None: ...

class NodeSnapshot(_message.Message):
    __slots__ = ("cpu", "pcp", "pcp_pages", "allocated", "inflight", "errors", "grants", "incarnation", "rejoins", "lease_left_s", "running", "coordinator_epoch", "registered_epoch", "stale_requests_refused", "stale_replies_ignored")
    CPU_FIELD_NUMBER: _ClassVar[int]
    PCP_FIELD_NUMBER: _ClassVar[int]
    PCP_PAGES_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    REJOINS_FIELD_NUMBER: _ClassVar[int]
    LEASE_LEFT_S_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_EPOCH_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_EPOCH_FIELD_NUMBER: _ClassVar[int]
    STALE_REQUESTS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    STALE_REPLIES_IGNORED_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    pcp: PcpState
    pcp_pages: PageList
    allocated: PageList
    inflight: PageList
    errors: _containers.RepeatedScalarFieldContainer[str]
    grants: _containers.RepeatedCompositeFieldContainer[GrantRecord]
    incarnation: str
    rejoins: int
    lease_left_s: float
    running: bool
    coordinator_epoch: int
    registered_epoch: int
    stale_requests_refused: int
    stale_replies_ignored: int
    def __init__(self, cpu: _Optional[int] = ..., pcp: _Optional[_Union[PcpState, _Mapping]] = ..., pcp_pages: _Optional[_Union[PageList, _Mapping]] = ..., allocated: _Optional[_Union[PageList, _Mapping]] = ..., inflight: _Optional[_Union[PageList, _Mapping]] = ..., errors: _Optional[_Iterable[str]] = ..., grants: _Optional[_Iterable[_Union[GrantRecord, _Mapping]]] = ..., incarnation: _Optional[str] = ..., rejoins: _Optional[int] = ..., lease_left_s: _Optional[float] = ..., running: _Optional[bool] = ..., coordinator_epoch: _Optional[int] = ..., registered_epoch: _Optional[int] = ..., stale_requests_refused: _Optional[int] = ..., stale_replies_ignored: _Optional[int] = ...) -> None: ...

class FaultRule(_message.Message):
    __slots__ = ("direction", "method", "peer", "delay_ms", "drop", "drop_reply", "fail")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    DROP_FIELD_NUMBER: _ClassVar[int]
    DROP_REPLY_FIELD_NUMBER: _ClassVar[int]
    FAIL_FIELD_NUMBER: _ClassVar[int]
    direction: Direction
    method: str
    peer: int
    delay_ms: int
    drop: float
    drop_reply: float
    fail: float
    def __init__(self, direction: _Optional[_Union[Direction, str]] = ..., method: _Optional[str] = ..., peer: _Optional[int] = ..., delay_ms: _Optional[int] = ..., drop: _Optional[float] = ..., drop_reply: _Optional[float] = ..., fail: _Optional[float] = ...) -> None: ...

class FaultsRequest(_message.Message):
    __slots__ = ("rules", "cost_factor", "stop_mid_drain", "seed")
    RULES_FIELD_NUMBER: _ClassVar[int]
    COST_FACTOR_FIELD_NUMBER: _ClassVar[int]
    STOP_MID_DRAIN_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[FaultRule]
    cost_factor: float
    stop_mid_drain: bool
    seed: int
    def __init__(self, rules: _Optional[_Iterable[_Union[FaultRule, _Mapping]]] = ..., cost_factor: _Optional[float] = ..., stop_mid_drain: _Optional[bool] = ..., seed: _Optional[int] = ...) -> None: ...

class FaultsReply(_message.Message):
    __slots__ = ("injected",)
    class InjectedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    INJECTED_FIELD_NUMBER: _ClassVar[int]
    injected: _containers.ScalarMap[str, int]
    def __init__(self, injected: _Optional[_Mapping[str, int]] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("cpu", "address", "role", "incarnation", "metrics_address", "resume", "holdings", "holdings_epoch")
    CPU_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    METRICS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    HOLDINGS_FIELD_NUMBER: _ClassVar[int]
    HOLDINGS_EPOCH_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    address: str
    role: Role
    incarnation: str
    metrics_address: str
    resume: bool
    holdings: PageList
    holdings_epoch: int
    def __init__(self, cpu: _Optional[int] = ..., address: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., incarnation: _Optional[str] = ..., metrics_address: _Optional[str] = ..., resume: _Optional[bool] = ..., holdings: _Optional[_Union[PageList, _Mapping]] = ..., holdings_epoch: _Optional[int] = ...) -> None: ...

class ZoneInfo(_message.Message):
    __slots__ = ("start_pfn", "spanned_pages", "managed_pages", "free_pages", "watermark_min", "watermark_low", "watermark_high", "nr_free", "reclaim_active", "below_high")
    START_PFN_FIELD_NUMBER: _ClassVar[int]
    SPANNED_PAGES_FIELD_NUMBER: _ClassVar[int]
    MANAGED_PAGES_FIELD_NUMBER: _ClassVar[int]
    FREE_PAGES_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_MIN_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_LOW_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_HIGH_FIELD_NUMBER: _ClassVar[int]
    NR_FREE_FIELD_NUMBER: _ClassVar[int]
    RECLAIM_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    BELOW_HIGH_FIELD_NUMBER: _ClassVar[int]
    start_pfn: int
    spanned_pages: int
    managed_pages: int
    free_pages: int
    watermark_min: int
    watermark_low: int
    watermark_high: int
    nr_free: _containers.RepeatedScalarFieldContainer[int]
    reclaim_active: bool
    below_high: bool
    def __init__(self, start_pfn: _Optional[int] = ..., spanned_pages: _Optional[int] = ..., managed_pages: _Optional[int] = ..., free_pages: _Optional[int] = ..., watermark_min: _Optional[int] = ..., watermark_low: _Optional[int] = ..., watermark_high: _Optional[int] = ..., nr_free: _Optional[_Iterable[int]] = ..., reclaim_active: _Optional[bool] = ..., below_high: _Optional[bool] = ...) -> None: ...

class RegisterReply(_message.Message):
    __slots__ = ("reclaimed_pages", "nr_cpus", "high", "batch", "high_max", "zone", "time_scale", "strategy", "kernel", "heartbeat_interval_ms", "lease_ms", "dead_ms", "resumed", "recovering", "coordinator_epoch")
    RECLAIMED_PAGES_FIELD_NUMBER: _ClassVar[int]
    NR_CPUS_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    HIGH_MAX_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    TIME_SCALE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    DEAD_MS_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    RECOVERING_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_EPOCH_FIELD_NUMBER: _ClassVar[int]
    reclaimed_pages: int
    nr_cpus: int
    high: int
    batch: int
    high_max: int
    zone: ZoneInfo
    time_scale: float
    strategy: Strategy
    kernel: str
    heartbeat_interval_ms: int
    lease_ms: int
    dead_ms: int
    resumed: bool
    recovering: bool
    coordinator_epoch: int
    def __init__(self, reclaimed_pages: _Optional[int] = ..., nr_cpus: _Optional[int] = ..., high: _Optional[int] = ..., batch: _Optional[int] = ..., high_max: _Optional[int] = ..., zone: _Optional[_Union[ZoneInfo, _Mapping]] = ..., time_scale: _Optional[float] = ..., strategy: _Optional[_Union[Strategy, str]] = ..., kernel: _Optional[str] = ..., heartbeat_interval_ms: _Optional[int] = ..., lease_ms: _Optional[int] = ..., dead_ms: _Optional[int] = ..., resumed: _Optional[bool] = ..., recovering: _Optional[bool] = ..., coordinator_epoch: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("cpu", "pcp_count", "incarnation")
    CPU_FIELD_NUMBER: _ClassVar[int]
    PCP_COUNT_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    pcp_count: int
    incarnation: str
    def __init__(self, cpu: _Optional[int] = ..., pcp_count: _Optional[int] = ..., incarnation: _Optional[str] = ...) -> None: ...

class HeartbeatReply(_message.Message):
    __slots__ = ("free_pages", "reclaim_active", "high", "batch", "high_max", "recovering", "heartbeat_interval_ms", "coordinator_epoch", "below_high")
    FREE_PAGES_FIELD_NUMBER: _ClassVar[int]
    RECLAIM_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    HIGH_MAX_FIELD_NUMBER: _ClassVar[int]
    RECOVERING_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_EPOCH_FIELD_NUMBER: _ClassVar[int]
    BELOW_HIGH_FIELD_NUMBER: _ClassVar[int]
    free_pages: int
    reclaim_active: bool
    high: int
    batch: int
    high_max: int
    recovering: bool
    heartbeat_interval_ms: int
    coordinator_epoch: int
    below_high: bool
    def __init__(self, free_pages: _Optional[int] = ..., reclaim_active: _Optional[bool] = ..., high: _Optional[int] = ..., batch: _Optional[int] = ..., high_max: _Optional[int] = ..., recovering: _Optional[bool] = ..., heartbeat_interval_ms: _Optional[int] = ..., coordinator_epoch: _Optional[int] = ..., below_high: _Optional[bool] = ...) -> None: ...

class RmqueueRequest(_message.Message):
    __slots__ = ("cpu", "order", "migratetype", "count", "transfer_id", "incarnation", "pageblock_version")
    CPU_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    MIGRATETYPE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    PAGEBLOCK_VERSION_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    order: int
    migratetype: int
    count: int
    transfer_id: str
    incarnation: str
    pageblock_version: int
    def __init__(self, cpu: _Optional[int] = ..., order: _Optional[int] = ..., migratetype: _Optional[int] = ..., count: _Optional[int] = ..., transfer_id: _Optional[str] = ..., incarnation: _Optional[str] = ..., pageblock_version: _Optional[int] = ...) -> None: ...

class RmqueueReply(_message.Message):
    __slots__ = ("pfn", "watermark_ok", "free_pages", "reclaim_active", "pageblocks", "lock_wait_s", "below_high")
    PFN_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_OK_FIELD_NUMBER: _ClassVar[int]
    FREE_PAGES_FIELD_NUMBER: _ClassVar[int]
    RECLAIM_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    PAGEBLOCKS_FIELD_NUMBER: _ClassVar[int]
    LOCK_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    BELOW_HIGH_FIELD_NUMBER: _ClassVar[int]
    pfn: _containers.RepeatedScalarFieldContainer[int]
    watermark_ok: bool
    free_pages: int
    reclaim_active: bool
    pageblocks: Pageblocks
    lock_wait_s: float
    below_high: bool
    def __init__(self, pfn: _Optional[_Iterable[int]] = ..., watermark_ok: _Optional[bool] = ..., free_pages: _Optional[int] = ..., reclaim_active: _Optional[bool] = ..., pageblocks: _Optional[_Union[Pageblocks, _Mapping]] = ..., lock_wait_s: _Optional[float] = ..., below_high: _Optional[bool] = ...) -> None: ...

class FreePagesRequest(_message.Message):
    __slots__ = ("cpu", "pages", "transfer_id", "incarnation", "pageblock_version", "commit")
    CPU_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    PAGEBLOCK_VERSION_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    pages: PageList
    transfer_id: str
    incarnation: str
    pageblock_version: int
    commit: bool
    def __init__(self, cpu: _Optional[int] = ..., pages: _Optional[_Union[PageList, _Mapping]] = ..., transfer_id: _Optional[str] = ..., incarnation: _Optional[str] = ..., pageblock_version: _Optional[int] = ..., commit: _Optional[bool] = ...) -> None: ...

class FreePagesReply(_message.Message):
    __slots__ = ("free_pages", "reclaim_active", "pageblocks", "lock_wait_s", "below_high")
    FREE_PAGES_FIELD_NUMBER: _ClassVar[int]
    RECLAIM_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    PAGEBLOCKS_FIELD_NUMBER: _ClassVar[int]
    LOCK_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    BELOW_HIGH_FIELD_NUMBER: _ClassVar[int]
    free_pages: int
    reclaim_active: bool
    pageblocks: Pageblocks
    lock_wait_s: float
    below_high: bool
    def __init__(self, free_pages: _Optional[int] = ..., reclaim_active: _Optional[bool] = ..., pageblocks: _Optional[_Union[Pageblocks, _Mapping]] = ..., lock_wait_s: _Optional[float] = ..., below_high: _Optional[bool] = ...) -> None: ...

class Pageblocks(_message.Message):
    __slots__ = ("version", "first_pfn", "migratetype")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRST_PFN_FIELD_NUMBER: _ClassVar[int]
    MIGRATETYPE_FIELD_NUMBER: _ClassVar[int]
    version: int
    first_pfn: int
    migratetype: bytes
    def __init__(self, version: _Optional[int] = ..., first_pfn: _Optional[int] = ..., migratetype: _Optional[bytes] = ...) -> None: ...

class ZoneRequest(_message.Message):
    __slots__ = ("rmqueue", "free")
    RMQUEUE_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    rmqueue: RmqueueRequest
    free: FreePagesRequest
    def __init__(self, rmqueue: _Optional[_Union[RmqueueRequest, _Mapping]] = ..., free: _Optional[_Union[FreePagesRequest, _Mapping]] = ...) -> None: ...

class ZoneReply(_message.Message):
    __slots__ = ("rmqueue", "free", "code", "error", "coordinator_epoch")
    RMQUEUE_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_EPOCH_FIELD_NUMBER: _ClassVar[int]
    rmqueue: RmqueueReply
    free: FreePagesReply
    code: str
    error: str
    coordinator_epoch: int
    def __init__(self, rmqueue: _Optional[_Union[RmqueueReply, _Mapping]] = ..., free: _Optional[_Union[FreePagesReply, _Mapping]] = ..., code: _Optional[str] = ..., error: _Optional[str] = ..., coordinator_epoch: _Optional[int] = ...) -> None: ...

class DrainAllRequest(_message.Message):
    __slots__ = ("strategy", "force_all_cpus", "trigger")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    FORCE_ALL_CPUS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    strategy: Strategy
    force_all_cpus: bool
    trigger: Trigger
    def __init__(self, strategy: _Optional[_Union[Strategy, str]] = ..., force_all_cpus: _Optional[bool] = ..., trigger: _Optional[_Union[Trigger, str]] = ...) -> None: ...

class DrainCpuResult(_message.Message):
    __slots__ = ("cpu", "pages", "duration_s", "wait_s", "ok", "error", "grace_period_s")
    CPU_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    WAIT_S_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    pages: int
    duration_s: float
    wait_s: float
    ok: bool
    error: str
    grace_period_s: float
    def __init__(self, cpu: _Optional[int] = ..., pages: _Optional[int] = ..., duration_s: _Optional[float] = ..., wait_s: _Optional[float] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ..., grace_period_s: _Optional[float] = ...) -> None: ...

class DrainAllReply(_message.Message):
    __slots__ = ("status", "strategy", "duration_s", "cpus_marked", "cpus", "trigger", "started_at", "grace_period_s", "mutex_wait_s")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[DrainAllReply.Status]
        DONE: _ClassVar[DrainAllReply.Status]
        SKIPPED: _ClassVar[DrainAllReply.Status]
        FAILED: _ClassVar[DrainAllReply.Status]
    STATUS_UNSPECIFIED: DrainAllReply.Status
    DONE: DrainAllReply.Status
    SKIPPED: DrainAllReply.Status
    FAILED: DrainAllReply.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    CPUS_MARKED_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    MUTEX_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    status: DrainAllReply.Status
    strategy: Strategy
    duration_s: float
    cpus_marked: _containers.RepeatedScalarFieldContainer[int]
    cpus: _containers.RepeatedCompositeFieldContainer[DrainCpuResult]
    trigger: Trigger
    started_at: float
    grace_period_s: float
    mutex_wait_s: float
    def __init__(self, status: _Optional[_Union[DrainAllReply.Status, str]] = ..., strategy: _Optional[_Union[Strategy, str]] = ..., duration_s: _Optional[float] = ..., cpus_marked: _Optional[_Iterable[int]] = ..., cpus: _Optional[_Iterable[_Union[DrainCpuResult, _Mapping]]] = ..., trigger: _Optional[_Union[Trigger, str]] = ..., started_at: _Optional[float] = ..., grace_period_s: _Optional[float] = ..., mutex_wait_s: _Optional[float] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("cpu", "address", "role", "up", "heartbeat_age_s", "pcp_count", "metrics_address", "dead", "incarnation")
    CPU_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_AGE_S_FIELD_NUMBER: _ClassVar[int]
    PCP_COUNT_FIELD_NUMBER: _ClassVar[int]
    METRICS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    address: str
    role: Role
    up: bool
    heartbeat_age_s: float
    pcp_count: int
    metrics_address: str
    dead: bool
    incarnation: str
    def __init__(self, cpu: _Optional[int] = ..., address: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., up: _Optional[bool] = ..., heartbeat_age_s: _Optional[float] = ..., pcp_count: _Optional[int] = ..., metrics_address: _Optional[str] = ..., dead: _Optional[bool] = ..., incarnation: _Optional[str] = ...) -> None: ...

class ClusterState(_message.Message):
    __slots__ = ("nodes", "zone", "default_strategy", "high", "batch", "time_scale", "metrics_address", "kernel", "recovering", "lease_ms", "dead_ms", "coordinator_epoch")
    NODES_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    TIME_SCALE_FIELD_NUMBER: _ClassVar[int]
    METRICS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    RECOVERING_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    DEAD_MS_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_EPOCH_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    zone: ZoneInfo
    default_strategy: Strategy
    high: int
    batch: int
    time_scale: float
    metrics_address: str
    kernel: str
    recovering: bool
    lease_ms: int
    dead_ms: int
    coordinator_epoch: int
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ..., zone: _Optional[_Union[ZoneInfo, _Mapping]] = ..., default_strategy: _Optional[_Union[Strategy, str]] = ..., high: _Optional[int] = ..., batch: _Optional[int] = ..., time_scale: _Optional[float] = ..., metrics_address: _Optional[str] = ..., kernel: _Optional[str] = ..., recovering: _Optional[bool] = ..., lease_ms: _Optional[int] = ..., dead_ms: _Optional[int] = ..., coordinator_epoch: _Optional[int] = ...) -> None: ...

class DrainHistoryRequest(_message.Message):
    __slots__ = ("reset",)
    RESET_FIELD_NUMBER: _ClassVar[int]
    reset: bool
    def __init__(self, reset: _Optional[bool] = ...) -> None: ...

class DrainHistory(_message.Message):
    __slots__ = ("drains",)
    DRAINS_FIELD_NUMBER: _ClassVar[int]
    drains: _containers.RepeatedCompositeFieldContainer[DrainAllReply]
    def __init__(self, drains: _Optional[_Iterable[_Union[DrainAllReply, _Mapping]]] = ...) -> None: ...

class AuditReply(_message.Message):
    __slots__ = ("ok", "total_pages", "lost", "duplicated", "unexpected", "lost_pfns", "duplicated_pfns", "errors", "where")
    class WhereEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    OK_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PAGES_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    DUPLICATED_FIELD_NUMBER: _ClassVar[int]
    UNEXPECTED_FIELD_NUMBER: _ClassVar[int]
    LOST_PFNS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATED_PFNS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    total_pages: int
    lost: int
    duplicated: int
    unexpected: int
    lost_pfns: _containers.RepeatedScalarFieldContainer[int]
    duplicated_pfns: _containers.RepeatedScalarFieldContainer[int]
    errors: _containers.RepeatedScalarFieldContainer[str]
    where: _containers.ScalarMap[str, int]
    def __init__(self, ok: _Optional[bool] = ..., total_pages: _Optional[int] = ..., lost: _Optional[int] = ..., duplicated: _Optional[int] = ..., unexpected: _Optional[int] = ..., lost_pfns: _Optional[_Iterable[int]] = ..., duplicated_pfns: _Optional[_Iterable[int]] = ..., errors: _Optional[_Iterable[str]] = ..., where: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ContigRangeRequest(_message.Message):
    __slots__ = ("start_pfn", "nr_pages", "timeout_ms")
    START_PFN_FIELD_NUMBER: _ClassVar[int]
    NR_PAGES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    start_pfn: int
    nr_pages: int
    timeout_ms: int
    def __init__(self, start_pfn: _Optional[int] = ..., nr_pages: _Optional[int] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class ContigRangeReply(_message.Message):
    __slots__ = ("ok", "start_pfn", "nr_pages", "duration_s", "drains", "attempts", "busy_pfn", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    START_PFN_FIELD_NUMBER: _ClassVar[int]
    NR_PAGES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    DRAINS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BUSY_PFN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    start_pfn: int
    nr_pages: int
    duration_s: float
    drains: _containers.RepeatedCompositeFieldContainer[DrainAllReply]
    attempts: int
    busy_pfn: int
    error: str
    def __init__(self, ok: _Optional[bool] = ..., start_pfn: _Optional[int] = ..., nr_pages: _Optional[int] = ..., duration_s: _Optional[float] = ..., drains: _Optional[_Iterable[_Union[DrainAllReply, _Mapping]]] = ..., attempts: _Optional[int] = ..., busy_pfn: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class CpuOnlineRequest(_message.Message):
    __slots__ = ("cpu", "online")
    CPU_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    online: bool
    def __init__(self, cpu: _Optional[int] = ..., online: _Optional[bool] = ...) -> None: ...

class CpuOnlineReply(_message.Message):
    __slots__ = ("drain", "high", "batch", "online_cpus")
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ONLINE_CPUS_FIELD_NUMBER: _ClassVar[int]
    drain: DrainAllReply
    high: int
    batch: int
    online_cpus: int
    def __init__(self, drain: _Optional[_Union[DrainAllReply, _Mapping]] = ..., high: _Optional[int] = ..., batch: _Optional[int] = ..., online_cpus: _Optional[int] = ...) -> None: ...

class ReleaseRangeRequest(_message.Message):
    __slots__ = ("start_pfn", "nr_pages")
    START_PFN_FIELD_NUMBER: _ClassVar[int]
    NR_PAGES_FIELD_NUMBER: _ClassVar[int]
    start_pfn: int
    nr_pages: int
    def __init__(self, start_pfn: _Optional[int] = ..., nr_pages: _Optional[int] = ...) -> None: ...

class ReleaseRangeReply(_message.Message):
    __slots__ = ("owner", "free_pages")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    FREE_PAGES_FIELD_NUMBER: _ClassVar[int]
    owner: str
    free_pages: int
    def __init__(self, owner: _Optional[str] = ..., free_pages: _Optional[int] = ...) -> None: ...
