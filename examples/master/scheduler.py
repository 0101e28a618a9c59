"""The scheduler: placement, claims, progress, results, timeouts, retries, recovery.

Everything runs on the event loop thread, so there are no locks: a method runs
to completion between two awaits. State lives in the :class:`Store`; the
scheduler keeps small in-memory indexes over it (the queue order, the active
jobs, the nodes' mailboxes) that :meth:`Scheduler.start` rebuilds on restart.

Placement is event driven. A submit, a freed reservation or a new node sets a
flag and wakes the placement task, which walks the queue in order (live first,
then priority, then age) and asks :meth:`ResourceManager.reserve_any` for a
node. A job that fits nowhere is skipped, so smaller jobs behind it still get
placed; once one job of a scenario fails to fit, the rest of that scenario are
skipped for the pass (capacity only shrinks during a pass). The placed job goes
into the chosen node's mailbox, and the node's pending long-poll claim returns
at once.

With a shared ledger (the resource manager on Redis) every reservation is a lease
owned by this master (its duties-lease holder id), renewed every monitor tick: if
the master dies, between reserve and the store commit or later, the capacity comes
back when the lease runs out instead of staying taken for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context

from examples.common.scenarios import SCENARIOS
from examples.master.config import MasterConfig
from examples.master.errors import Conflict, Gone, Invalid, NotFound, Standby, StoreUnavailable
from examples.master.jobqueue import JobQueue, QueuedJob
from examples.master.lease import Lease
from examples.master.metrics import MasterMetrics, StateSource
from examples.master.store import ACTIVE, AttemptRecord, JobRecord, NodeRecord, Store
from ffrtmp_infra.resources import MemoryBackend, Reservation, ResourceError, ResourceManager
from ffrtmp_infra.tracing import extract_headers, inject_headers, job_assign, job_create

__all__ = ["ActiveJob", "NodeState", "Scheduler"]

log = logging.getLogger("examples.master.scheduler")


@dataclass
class NodeState:
    """A node's live state: heartbeat time, undelivered assignments, cancel notices."""

    record: NodeRecord
    last_heartbeat: float
    mailbox: deque[dict[str, Any]] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    cancels: set[str] = field(default_factory=set)

    @property
    def online(self) -> bool:
        """True while the node heartbeats in time."""
        return self.record.status == "online"


@dataclass
class ActiveJob:
    """An assigned or running attempt, indexed for the timeout checks."""

    job_id: str
    node_id: str
    attempt: int
    queue: str
    scenario: str
    status: str
    assigned_at: float
    last_activity: float


def _resource_request(scenario: str) -> dict[str, Any]:
    wanted = SCENARIOS[scenario].resources
    request = {k: wanted[k] for k in ("cpu", "gpu", "ram_gb") if k in wanted}
    request["extended"] = dict(wanted.get("extended") or {}) or None
    return request


class Scheduler:
    """Owns job and node state transitions; the HTTP routes are thin calls into it."""

    def __init__(
        self,
        store: Store,
        resources: ResourceManager,
        config: MasterConfig,
        *,
        metrics: MasterMetrics | None = None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.resources = resources
        self.config = config
        self.metrics = metrics or MasterMetrics()
        self.clock = clock
        self._jitter = jitter
        self.queue = JobQueue()
        self.nodes: dict[str, NodeState] = {}
        self.active: dict[str, ActiveJob] = {}
        self._on_node: dict[str, dict[str, ActiveJob]] = {}
        self._waiting: set[str] = set()
        self._fresh: set[str] = set()
        self._capacity_changed = True
        self._kick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._exclude_cache: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.placements = 0
        self.lease = Lease(store, config.lease_ttl, clock=clock)
        #: reservations in a shared ledger are leases of this master (see the module doc)
        self.shared_ledger = not isinstance(resources.backend, MemoryBackend)
        self._reservation_lease: dict[str, Any] = (
            {"owner": self.lease.holder, "ttl": config.reservation_lease}
            if self.shared_ledger
            else {}
        )
        #: True while another master holds the duties lease (see :mod:`examples.master.lease`)
        self.standby = False
        self._leased = False  # started with the lease loop (unit tests drive a bare scheduler)
        self._duties: list[asyncio.Task[None]] = []
        self.metrics.watch(
            StateSource(
                self.store.count_jobs_by_status,
                lambda: self.queue.counts(),
                self._node_counts,
                self.store.job_counters,
            )
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve as the active master if the duties lease is free, else stand by for it."""
        self._leased = True
        self.standby = True
        if self._renew_lease():
            self._take_over()
        else:
            log.info("standing by: master %s holds the duties lease", self.lease.current_holder())
        self._tasks = [asyncio.get_running_loop().create_task(self._lease_loop(), name="lease")]

    async def stop(self) -> None:
        """Stop the background tasks, persist heartbeat times and give the lease up."""
        tasks, self._tasks = [*self._tasks, *self._duties], []
        self._duties = []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for node in self.nodes.values():
            node.wakeup.set()
        if not self.standby:
            with contextlib.suppress(StoreUnavailable):
                self._save_heartbeats()
                self.lease.release()

    # -- the duties lease ------------------------------------------------------------------

    def _renew_lease(self) -> bool:
        try:
            return self.lease.renew()
        except StoreUnavailable as exc:
            log.warning("cannot renew the duties lease: %s", exc)
            return self.lease.held

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease.ttl / 3)
            held = self._renew_lease()
            if held and self.standby:
                try:
                    self._take_over()
                except StoreUnavailable as exc:
                    self._step_down(f"recovery failed: {exc}")
            elif not held and not self.standby:
                self._step_down("the duties lease expired or another master took it")

    def _take_over(self) -> None:
        log.warning(
            "holding the duties lease (%s): serving as the active master", self.lease.holder
        )
        self.standby = False
        self.recover()
        loop = asyncio.get_running_loop()
        self._duties = [
            loop.create_task(self._placement_loop(), name="placement"),
            loop.create_task(self._monitor_loop(), name="monitor"),
        ]
        self.kick(capacity=True)

    def _step_down(self, reason: str) -> None:
        """Stop acting at once and forget the in-memory state (the store keeps the truth)."""
        log.warning("standing by: %s", reason)
        self.standby = True
        for task in self._duties:
            task.cancel()
        self._duties = []
        for node_id, node in self.nodes.items():
            node.wakeup.set()
            if not self.shared_ledger:  # a shared one is the next active master's
                with contextlib.suppress(ResourceError):
                    self.resources.unregister_node(node_id)
        self.queue = JobQueue()
        self.nodes.clear()
        self.active.clear()
        self._on_node.clear()
        self._waiting.clear()
        self._fresh.clear()
        self._exclude_cache.clear()

    def _acting(self) -> bool:
        """True while this master may act (holds the lease, or runs alone in a unit test)."""
        try:
            self._require_active()
        except Standby:
            return False
        return True

    def _adopt_submitted(self) -> None:
        """Queue the jobs a standby master stored (it stores, the active master places)."""
        for job_id in self.store.queued_ids():
            if job_id not in self.queue and job_id not in self.active:
                job = self.store.get_job(job_id)
                if job is not None and job.status == "queued":
                    self._enqueue(job)

    def _require_active(self) -> None:
        """Raise :class:`Standby` unless this master holds the duties lease."""
        if self._leased and not self.standby and not self.lease.held:
            self._step_down("the duties lease ran out before it could be renewed")
        if self.standby:
            raise Standby(
                "this master is a standby: send worker traffic to the active master",
                {"role": "standby"},
            )

    def recover(self) -> None:
        """Rebuild the in-memory indexes from the store after a (re)start.

        Nodes get a fresh heartbeat grace period. Assigned and running
        attempts on known nodes keep their reservation: the worker may still be
        transcoding and will report with its attempt number. An assignment whose
        delivery was cut by the restart is not in the worker's heartbeat, so it
        is requeued as lost two heartbeat intervals later; attempts on nodes the
        master no longer knows are superseded and requeued at once. (Superseding
        every assigned attempt instead could place the same job on the same
        worker while its old attempt still runs.)
        """
        now = self.clock()
        for record in self.store.list_nodes():
            if record.status != "online":
                continue
            self.nodes[record.id] = NodeState(record=record, last_heartbeat=now)
            self._register_resources(record)
        with self.store.batch():
            for job in self.store.jobs_with_status(["queued"]):
                self._enqueue(job)
            for job in self.store.jobs_with_status(ACTIVE):
                node = self.nodes.get(job.node_id or "")
                if node is not None and self._re_reserve(job):
                    self._activate(
                        ActiveJob(
                            job.id,
                            node.record.id,
                            job.attempt,
                            job.queue,
                            job.scenario,
                            job.status,
                            job.assigned_at or now,
                            now,
                        )
                    )
                else:
                    self._end_attempt(job, "superseded", "not resumable after a master restart")
                    self._requeue(job, retry_at=None)
        if self.shared_ledger:  # nodes a previous master knew and the store says are gone
            with contextlib.suppress(ResourceError):
                for node_id in set(self.resources.snapshot().nodes) - set(self.nodes):
                    self.resources.unregister_node(node_id)
        log.info("recovered %d queued and %d active jobs", len(self.queue), len(self.active))

    def _re_reserve(self, job: JobRecord) -> bool:
        """Hold (or adopt, in a shared ledger) the reservation of an active job."""
        try:
            self.resources.reserve(
                job.id,
                job.node_id or "",
                **_resource_request(job.scenario),
                **self._reservation_lease,
            )
        except ResourceError as exc:
            log.warning("job %s no longer fits on node %s: %s", job.id, job.node_id, exc)
            return False
        return True

    def kick(self, *, capacity: bool = False) -> None:
        """Wake the placement task (``capacity=True`` when resources were freed)."""
        if capacity:
            self._capacity_changed = True
        self._kick.set()

    # -- jobs --------------------------------------------------------------------------------

    def submit(self, spec: dict[str, Any]) -> JobRecord:
        """Store a validated spec as a queued job and wake placement (any master)."""
        now = self.clock()
        job_id = str(uuid.uuid4())
        with job_create(job_id, scenario=spec["scenario"], queue=spec["queue"]):
            carrier = inject_headers()
            job = JobRecord(
                id=job_id,
                seq=self.store.next_seq(),
                status="queued",
                scenario=spec["scenario"],
                queue=spec["queue"],
                priority=spec["priority"],
                spec=spec,
                created_at=now,
                queued_at=now,
                trace=carrier,
            )
            self.store.insert_job(job)
        if not self.standby:  # else the active master adopts it on its next pass
            self._enqueue(job)
        return job

    def get_job(self, job_id: str) -> JobRecord:
        """The job (by id or sequence number); raises :class:`NotFound`."""
        job = self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"job {job_id[:80]!r} not found")
        return job

    def job_with_attempts(self, job_id: str) -> tuple[JobRecord, list[AttemptRecord]]:
        """The job and its attempt history; raises :class:`NotFound`."""
        job = self.get_job(job_id)
        return job, self.store.attempts(job.id)

    def list_jobs(self, **page: Any) -> list[JobRecord]:
        """A page of jobs, newest first: the filters and cursor of :meth:`Store.list_jobs`."""
        return self.store.list_jobs(**page)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued or active job; the worker learns it on its next report."""
        self._require_active()
        job = self.get_job(job_id)
        if job.status in ("completed", "failed", "canceled"):
            raise Conflict(f"job is already {job.status}", {"status": job.status})
        now = self.clock()
        with self.store.batch():
            self.queue.remove(job.id)
            self._fresh.discard(job.id)
            if job.status in ACTIVE:
                self._end_attempt(job, "canceled", "canceled by user")
                self._release(job.id)
                node = self.nodes.get(job.node_id or "")
                if node is not None:
                    node.cancels.add(job.id)
                    self._drop_from_mailbox(node, job.id)
            self.store.update_job(job.id, status="canceled", finished_at=now, retry_at=None)
        return self.get_job(job.id)

    def retry(self, job_id: str) -> JobRecord:
        """Put a failed or canceled job back in the queue with a fresh retry budget."""
        self._require_active()
        job = self.get_job(job_id)
        if job.status not in ("failed", "canceled"):
            raise Conflict(f"only failed or canceled jobs can be retried; job is {job.status}")
        with self.store.batch():
            self.store.update_job(job.id, failures=0, dead_letter=0, error=None)
            job.failures = 0
            self._requeue(job, retry_at=None)
        return self.get_job(job.id)

    # -- worker reports ----------------------------------------------------------------------

    def _current(self, job_id: str, node_id: Any, attempt: Any) -> tuple[JobRecord, ActiveJob]:
        job = self.get_job(job_id)
        active = self.active.get(job.id)
        if active is None or active.attempt != attempt or active.node_id != node_id:
            if job.status == "canceled" and job.attempt == attempt:
                raise Conflict("canceled", {"status": "canceled"})
            raise Conflict(
                "superseded",
                {"current_attempt": job.attempt, "status": job.status},
            )
        return job, active

    def attempt_node(self, job_id: str, attempt: int) -> str | None:
        """The node attempt ``attempt`` of a job was given to (``None`` if no such attempt)."""
        active = self.active.get(job_id)
        if active is not None and active.attempt == attempt:
            return active.node_id
        for record in self.store.attempts(job_id):
            if record.attempt == attempt:
                return record.node_id
        return None

    def progress(self, job_id: str, report: dict[str, Any]) -> None:
        """Record a progress report; the first one moves the job from assigned to running."""
        self._require_active()
        job, active = self._current(job_id, report["node_id"], report["attempt"])
        now = self.clock()
        active.last_activity = now
        changes: dict[str, Any] = {"progress": report, "last_activity": now}
        if active.status == "assigned":
            active.status = "running"
            changes.update(status="running", started_at=now)
            self.store.update_attempt(job.id, job.attempt, started_at=now)
        self.store.update_job(job.id, **changes)

    def result(self, job_id: str, report: dict[str, Any]) -> JobRecord:
        """Finish the current attempt: complete, retry with backoff, dead-letter, or requeue."""
        self._require_active()
        job, _ = self._current(job_id, report["node_id"], report["attempt"])
        now = self.clock()
        status = report["status"]
        with self.store.batch():
            self._release(job.id)
            if status == "completed":
                self._end_attempt(job, "completed", None)
                self.store.update_job(
                    job.id, status="completed", result=report, finished_at=now, error=None
                )
                self.metrics.job_duration.labels(job.scenario).observe(
                    max(0.0, now - (job.assigned_at or now))
                )
            elif status == "handed_back":
                self._end_attempt(job, "handed_back", report.get("error"))
                self._requeue(job, retry_at=None)
            else:
                error = report.get("error") or f"ffmpeg exited with {report.get('exit_code')}"
                self._end_attempt(job, "failed", error)
                self._fail_attempt(
                    job, error, result=report, retryable=report.get("retryable", True)
                )
        return self.get_job(job.id)

    # -- nodes -------------------------------------------------------------------------------

    def register_node(self, body: dict[str, Any]) -> NodeState:
        """Register a node or refresh an existing one (capacity updated, back online)."""
        self._require_active()
        now = self.clock()
        node_id = body["node_id"]
        previous = self.nodes.get(node_id)
        previous_encoders = previous.record.encoders if previous else None
        was_online = previous is not None and previous.online
        stored = previous.record if previous else self.store.get_node(node_id)
        if (stored is None or stored.status == "removed") and (
            self.store.count_nodes() >= self.config.max_nodes
        ):
            raise Invalid(
                f"the master holds its maximum of {self.config.max_nodes} nodes",
                {"field": "node_id"},
            )
        record = NodeRecord(
            id=node_id,
            status="online",
            capacity=body["capacity"],
            labels=body["labels"],
            encoders=body["encoders"],
            version=body["version"],
            registered_at=stored.registered_at if stored else now,
            last_heartbeat=now,
        )
        try:  # the resource manager has the last word on amounts and names: ask it first
            evicted = self._register_resources(record)
        except ResourceError as exc:
            field = "labels" if "label" in str(exc) else "capacity"
            raise Invalid(f"{field}: {exc}", {"field": field}) from None
        self.store.upsert_node(record)
        if previous is not None:
            previous.record = record
            previous.last_heartbeat = now
            state = previous
        else:
            state = NodeState(record=record, last_heartbeat=now)
            self.nodes[node_id] = state
        with self.store.batch():
            for job_id in evicted:
                job = self.store.get_job(job_id)
                if job is not None and job.status in ACTIVE:
                    self._end_attempt(job, "evicted", "node re-registered with less capacity")
                    self._release(job.id)
                    self._requeue(job, retry_at=None)
        if previous is None or previous_encoders != record.encoders or not was_online:
            self._exclude_cache.clear()
        self.kick(capacity=True)
        return state

    def _register_resources(self, record: NodeRecord) -> list[str]:
        capacity = record.capacity
        registered = self.resources.register_node(
            record.id,
            cpu=capacity["cpu"],
            gpu=capacity.get("gpu", 0),
            ram_gb=capacity.get("ram_gb", 0),
            labels=record.labels or None,
            extended=capacity.get("extended") or None,
        )
        return [getattr(r, "job_id", r) for r in getattr(registered, "no_longer_fit", ()) or ()]

    def node(self, node_id: str) -> NodeState:
        """The live state of an online or offline node; raises NotFound/Gone."""
        state = self.nodes.get(node_id)
        if state is None:
            record = self.store.get_node(node_id)
            if record is None:
                raise NotFound(f"node {node_id[:80]!r} not found")
            if record.status == "removed":
                raise Gone(f"node {node_id!r} was removed")
            state = NodeState(record=record, last_heartbeat=record.last_heartbeat)
        return state

    def list_nodes(self, *, after: str = "", limit: int = 100) -> list[NodeState]:
        """Nodes not removed, in id order, those with an id after ``after``."""
        records = self.store.list_nodes(after=after)
        return [self.node(r.id) for r in records if r.status != "removed"][:limit]

    def heartbeat(self, node_id: str, running: list[dict[str, Any]] | None) -> dict[str, Any]:
        """Refresh a node's liveness; answer with the jobs it must cancel.

        ``running`` is what the worker says it runs. An attempt the master
        thinks is on this node but that the worker no longer reports, and
        that showed no activity for two heartbeat intervals, was lost (say a
        worker restarted): it is requeued without counting as a failure.
        """
        self._require_active()
        state = self.nodes.get(node_id)
        if state is None or not state.online:
            record = self.store.get_node(node_id)
            if record is not None and record.status == "removed":
                raise Gone(f"node {node_id!r} was removed")
            raise NotFound(f"node {node_id[:80]!r} is not registered; register again")
        now = self.clock()
        state.last_heartbeat = now
        if running is not None:
            reported = {(r["job_id"], r["attempt"]) for r in running}
            grace = 2 * self.config.heartbeat_interval
            lost = [
                a
                for a in self.running_on(node_id)
                if (a.job_id, a.attempt) not in reported
                and now - max(a.assigned_at, a.last_activity) > grace
                and not any(m["job_id"] == a.job_id for m in state.mailbox)
            ]
            for active in lost:
                self._lose(active, "worker no longer reports the job")
            for job_id, _attempt in reported:
                current = self.active.get(job_id)
                if current is None or current.node_id != node_id:
                    # Canceled, finished, or reassigned elsewhere while this worker was away:
                    # stop it. (Notices name jobs, not attempts, so a newer attempt of the job
                    # on this same node is left alone; the old one gets 409 on its reports.)
                    state.cancels.add(job_id)
        cancels = sorted(state.cancels)
        state.cancels.clear()
        return {"status": "online", "cancel": cancels}

    def remove_node(self, node_id: str) -> list[str]:
        """Drain and remove a node; its active jobs are requeued. Returns their ids."""
        self._require_active()
        state = self.node(node_id)
        with contextlib.suppress(ResourceError):
            self.resources.drain(node_id)
        evicted = [a.job_id for a in self.running_on(node_id)]
        with self.store.batch():
            for job_id in evicted:
                self._lose(self.active[job_id], "node removed by operator")
            self.store.set_node_status(node_id, "removed")
        with contextlib.suppress(ResourceError):
            self.resources.unregister_node(node_id)
        state.record.status = "removed"
        self.nodes.pop(node_id, None)
        state.wakeup.set()
        self._exclude_cache.clear()
        self.kick(capacity=True)
        return evicted

    async def claim(self, node_id: str, wait: float) -> dict[str, Any] | None:
        """Long-poll: the next assignment for this node, or ``None`` after ``wait`` seconds."""
        self._require_active()
        state = self.nodes.get(node_id)
        if state is None:
            self.heartbeat(node_id, None)  # raises the NotFound/Gone the worker acts on
            raise AssertionError("unreachable")
        state.last_heartbeat = self.clock()
        deadline = time.monotonic() + min(wait, self.config.claim_wait_max)
        while True:
            if state.mailbox:
                assignment = state.mailbox.popleft()
                active = self.active.get(assignment["job_id"])
                if active is not None and active.attempt == assignment["attempt"]:
                    # The heartbeat grace for "the worker forgot it" starts at delivery.
                    active.assigned_at = self.clock()
                return assignment
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not state.online or self.standby:
                return None
            state.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wakeup.wait(), remaining)

    # -- placement ---------------------------------------------------------------------------

    async def _placement_loop(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            try:
                self.place()
            except Exception:
                log.exception("placement pass failed; retrying on the next event")
            await asyncio.sleep(0)

    def place(self) -> int:
        """Run one placement pass; returns how many jobs were placed."""
        if not self._acting() or not self.nodes or not self.queue:
            self._fresh.clear()
            return 0
        now = self.clock()
        if self._capacity_changed:
            self._capacity_changed = False
            candidates: Iterable[QueuedJob] = iter(self.queue)
        else:
            candidates = sorted(
                (j for j in map(self.queue.get, self._fresh) if j is not None),
                key=lambda j: j.key,
            )
        self._fresh.clear()
        no_fit: set[str] = set()
        queued_scenarios = self.queue.scenarios
        placed = 0
        with self.store.batch():
            for queued in candidates:
                if len(no_fit) == len(queued_scenarios) and no_fit >= queued_scenarios:
                    break  # nothing left in the queue can fit anywhere now
                if queued.retry_at is not None and queued.retry_at > now:
                    continue
                if queued.scenario in no_fit:
                    continue
                excluded = self._excluded_for(queued.scenario)
                if len(excluded) >= len(self.nodes):
                    no_fit.add(queued.scenario)  # no node has the encoders: skip the search
                    continue
                reservation = self._reserve(queued, excluded)
                if reservation is None:
                    no_fit.add(queued.scenario)
                    continue
                placed += self._assign(queued, reservation.node_id, now)
        self.placements += placed
        return placed

    def _reserve(self, queued: QueuedJob, excluded: tuple[str, ...]) -> Reservation | None:
        """Reserve resources for a queued job, preferring another node than its last one."""
        request = _resource_request(queued.scenario)
        request.update(self._reservation_lease)
        if queued.avoid is not None and queued.avoid in self.nodes:
            with contextlib.suppress(ResourceError):
                return self.resources.reserve_any(
                    queued.job_id, **request, exclude=(*excluded, queued.avoid)
                )
        try:
            return self.resources.reserve_any(queued.job_id, **request, exclude=excluded)
        except ResourceError:
            return None

    def _excluded_for(self, scenario: str) -> tuple[str, ...]:
        encoders = tuple(SCENARIOS[scenario].encoders)
        cached = self._exclude_cache.get(encoders)
        if cached is None:
            cached = tuple(
                n.record.id
                for n in self.nodes.values()
                if not n.online or not set(encoders) <= set(n.record.encoders)
            )
            self._exclude_cache[encoders] = cached
        return cached

    def _assign(self, queued: QueuedJob, node_id: str, now: float) -> bool:
        """Give a reserved job to a node; False if it stopped being queued meanwhile."""
        self.queue.remove(queued.job_id)
        job = self.store.get_job(queued.job_id)
        assert job is not None
        attempt = job.attempt + 1
        token = otel_context.attach(extract_headers(job.trace))
        try:
            with job_assign(job.id, node_id, attempt=attempt, scenario=job.scenario):
                carrier = inject_headers()
        finally:
            otel_context.detach(token)
        claimed = self.store.claim_job(
            job.id,
            status="assigned",
            node_id=node_id,
            attempt=attempt,
            assigned_at=now,
            started_at=None,
            last_activity=now,
            retry_at=None,
            progress=None,
        )
        if not claimed:  # canceled, or taken by another master, since it was queued
            with contextlib.suppress(ResourceError):
                self.resources.release(job.id)
            return False
        self.store.insert_attempt(AttemptRecord(job.id, attempt, node_id, assigned_at=now))
        self._activate(
            ActiveJob(job.id, node_id, attempt, job.queue, job.scenario, "assigned", now, now)
        )
        stale = (
            self.config.stale_timeout_live
            if job.queue == "live"
            else self.config.stale_timeout_batch
        )
        node = self.nodes[node_id]
        node.mailbox.append(
            {
                "job_id": job.id,
                "attempt": attempt,
                "spec": job.spec,
                "trace": carrier,
                "stale_timeout": stale,
            }
        )
        node.wakeup.set()
        self.metrics.job_wait.labels(job.queue).observe(max(0.0, now - job.queued_at))
        return True

    # -- timeouts ----------------------------------------------------------------------------

    async def _monitor_loop(self) -> None:
        last_save = self.clock()
        while True:
            await asyncio.sleep(self.config.monitor_interval)
            try:
                self.check_timeouts()
                if self.clock() - last_save >= self.config.heartbeat_interval:
                    self._save_heartbeats()
                    self.prune_offline()
                    last_save = self.clock()
            except Exception:
                log.exception("monitor pass failed")

    def check_timeouts(self) -> None:
        """Mark silent nodes offline, fail stale attempts, release due retries."""
        if not self._acting():
            return
        self._renew_reservations()
        self._adopt_submitted()
        now = self.clock()
        with self.store.batch():
            for state in list(self.nodes.values()):
                if state.online and now - state.last_heartbeat > self.config.heartbeat_timeout:
                    self._node_offline(state)
            for active in list(self.active.values()):
                limit = (
                    self.config.stale_timeout_live
                    if active.queue == "live"
                    else self.config.stale_timeout_batch
                )
                if now - active.last_activity > limit:
                    job = self.store.get_job(active.job_id)
                    assert job is not None
                    idle = now - active.last_activity
                    error = f"stale: no progress for {idle:.0f}s (limit {limit:g}s)"
                    self._end_attempt(job, "stale", error)
                    self._release(job.id)
                    self._fail_attempt(job, error, result=None)
        due = []
        for job_id in list(self._waiting):
            queued = self.queue.get(job_id)
            if queued is None:
                self._waiting.discard(job_id)
            elif queued.retry_at is None or queued.retry_at <= now:
                queued.retry_at = None
                self._waiting.discard(job_id)
                due.append(job_id)
        if due:
            self._fresh.update(due)
            self.kick()

    def _renew_reservations(self) -> None:
        """Renew this master's leases in a shared ledger (one round trip); an active job
        whose lease ran out anyway (Redis was unreachable for longer than its ttl) takes
        its reservation again, or is logged when its node no longer has room."""
        if not self.shared_ledger:
            return
        try:
            renewed = set(self.resources.renew_owner(self.lease.holder))
        except ResourceError as exc:
            log.warning("cannot renew the reservation leases: %s", exc)
            return
        for job_id in self.active.keys() - renewed:
            job = self.store.get_job(job_id)
            if job is not None and not self._re_reserve(job):
                log.warning("job %s runs without a reservation: its lease ran out", job_id)

    def prune_offline(self) -> list[str]:
        """Forget nodes offline for longer than ``prune_offline_after``; returns their ids."""
        pruned = self.store.prune_nodes(self.clock() - self.config.prune_offline_after)
        if pruned:
            log.info("pruned %d long-offline nodes", len(pruned))
        return pruned

    def _node_offline(self, state: NodeState) -> None:
        log.warning("node %s missed heartbeats; marking it offline", state.record.id)
        state.record.status = "offline"
        self.store.set_node_status(state.record.id, "offline")
        for active in self.running_on(state.record.id):
            job = self.store.get_job(active.job_id)
            assert job is not None
            error = f"node {state.record.id} went offline (no heartbeat)"
            self._end_attempt(job, "node_lost", error)
            self._release(job.id)
            self._fail_attempt(job, error, result=None, backoff=False)
        state.mailbox.clear()
        with contextlib.suppress(ResourceError):
            self.resources.unregister_node(state.record.id)
        del self.nodes[state.record.id]
        state.wakeup.set()
        self._exclude_cache.clear()

    def _lose(self, active: ActiveJob, reason: str) -> None:
        job = self.store.get_job(active.job_id)
        assert job is not None
        self._end_attempt(job, "lost", reason)
        self._release(job.id)
        node = self.nodes.get(active.node_id)
        if node is not None:
            self._drop_from_mailbox(node, job.id)
        self._requeue(job, retry_at=None)

    # -- shared transitions ----------------------------------------------------------------

    def _fail_attempt(
        self,
        job: JobRecord,
        error: str,
        *,
        result: dict[str, Any] | None,
        backoff: bool = True,
        retryable: bool = True,
    ) -> None:
        """Count a failure; retry with backoff, or dead-letter when out of retries.

        ``retryable=False`` (a bad spec, a missing or unreadable input, a refused host:
        the worker says so) dead-letters at once, since no retry could succeed.
        """
        failures = job.failures + 1
        now = self.clock()
        if failures > self.config.max_retries or not retryable:
            self.store.update_job(
                job.id,
                status="failed",
                failures=failures,
                error=error,
                result=result,
                finished_at=now,
                dead_letter=1,
            )
            return
        self.store.update_job(job.id, failures=failures, error=error, result=result)
        job.failures = failures
        retry_at = now + self.backoff(failures) if backoff else None
        self._requeue(job, retry_at=retry_at)

    def backoff(self, failures: int) -> float:
        """Seconds before retry number ``failures``: exponential, capped, with jitter.

        "Equal jitter": half the exponential delay is fixed, half random, so
        retries of jobs that failed together spread out but never come early.
        """
        delay = min(
            self.config.retry_backoff_max, self.config.retry_backoff * 2.0 ** (failures - 1)
        )
        return delay / 2 + self._jitter() * delay / 2

    def _requeue(self, job: JobRecord, *, retry_at: float | None) -> None:
        now = self.clock()
        self._deactivate(job.id)
        self.store.update_job(
            job.id,
            status="queued",
            node_id=None,
            queued_at=now,
            retry_at=retry_at,
            finished_at=None,
            progress=None,
        )
        job.status, job.retry_at, job.queued_at = "queued", retry_at, now
        self._enqueue(job)

    def _enqueue(self, job: JobRecord) -> None:
        self.queue.add(
            QueuedJob(
                job.id,
                job.seq,
                job.scenario,
                job.queue,
                job.priority,
                job.created_at,
                job.retry_at,
                avoid=job.node_id,
            )
        )
        if job.retry_at is None:
            self._fresh.add(job.id)
            self.kick()
        else:
            self._waiting.add(job.id)

    def _end_attempt(self, job: JobRecord, outcome: str, error: str | None) -> None:
        self._deactivate(job.id)
        if job.attempt:
            self.store.update_attempt(
                job.id, job.attempt, finished_at=self.clock(), outcome=outcome, error=error
            )

    def _activate(self, active: ActiveJob) -> None:
        self.active[active.job_id] = active
        self._on_node.setdefault(active.node_id, {})[active.job_id] = active

    def _deactivate(self, job_id: str) -> None:
        active = self.active.pop(job_id, None)
        if active is not None:
            on_node = self._on_node.get(active.node_id)
            if on_node is not None:
                on_node.pop(job_id, None)
                if not on_node:
                    del self._on_node[active.node_id]

    def _release(self, job_id: str) -> None:
        with contextlib.suppress(ResourceError):
            self.resources.release(job_id)
        self.kick(capacity=True)

    @staticmethod
    def _drop_from_mailbox(node: NodeState, job_id: str) -> None:
        kept = [m for m in node.mailbox if m["job_id"] != job_id]
        node.mailbox.clear()
        node.mailbox.extend(kept)

    def _save_heartbeats(self) -> None:
        self.store.save_heartbeats((n.record.id, n.last_heartbeat) for n in self.nodes.values())

    def _node_counts(self) -> dict[str, int]:
        online = sum(1 for n in self.nodes.values() if n.online)
        offline = sum(1 for n in self.store.list_nodes() if n.status == "offline")
        return {"online": online, "offline": offline}

    def health(self) -> dict[str, Any]:
        """``healthy``, ``degraded`` (serving, but something needs a look) or ``unhealthy``.

        Unhealthy when the store does not answer (every request would fail); degraded when
        no node is online (jobs queue up but nothing runs) or, on a standby, when no master
        holds the duties lease. ``role`` is ``active`` or ``standby``; ``reasons`` says why.
        """
        role = "standby" if self.standby else "active"
        online = sum(1 for n in self.nodes.values() if n.online)
        report: dict[str, Any] = {"role": role, "nodes_online": online, "queued": len(self.queue)}
        try:
            self.store.ping()
            holder = self.lease.current_holder() if self.standby else self.lease.holder
        except StoreUnavailable as exc:
            return {"status": "unhealthy", "reasons": [f"database: {exc}"], **report}
        reasons = []
        if holder is None:
            reasons.append("no lease holder: no master runs the duties")
        elif not self.standby and not online:
            reasons.append("no node online")
        report["lease_holder"] = holder
        return {"status": "degraded" if reasons else "healthy", "reasons": reasons, **report}

    def available(self, node_id: str) -> dict[str, Any] | None:
        """What the resource manager has free on an online node (``None`` otherwise)."""
        if node_id not in self.nodes:
            return None
        try:
            free = self.resources.get_node(node_id).available
        except ResourceError:
            return None
        return {
            "cpu": free.cpu_milli / 1000,
            "ram_gb": round(free.ram_mib / 1024, 3),
            "gpu": free.gpu,
            "extended": dict(free.extended),
        }

    def running_on(self, node_id: str) -> Iterable[ActiveJob]:
        """The active attempts placed on a node."""
        return list(self._on_node.get(node_id, {}).values())
