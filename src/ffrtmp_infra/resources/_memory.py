"""The in-process backend: one lock, integer records, a lazy placement index."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from ._errors import (
    DuplicateJobError,
    InsufficientResourcesError,
    NodeDrainingError,
    NoNodeAvailableError,
    UnknownNodeError,
)
from ._index import Index, NodeState
from ._quantity import (
    Lease,
    check_id,
    check_job,
    format_cpu,
    format_ram,
    parse_extended,
    parse_lease,
    parse_request,
    request_cpu,
    request_ram,
)
from ._scoring import BuiltinScorer, Scorer, Selector, builtin_score, matches
from ._types import EMPTY, Node, RegisterResult, Reservation, Resources, Snapshot

_new = tuple.__new__
# reserve_request's request shapes, validated once, as (millicores, MiB, the shared
# immutable Resources): jobs repeat a few sizes. _INT_SHAPES is keyed by (cpu, ram_gb) as
# given when both are exact ints (never bools), _UNIT_SHAPES by the parsed units of any
# other amounts; only valid shapes get in, so a hit is always what parsing would give.
_INT_SHAPES: dict[tuple[int, int], tuple[int, int, Resources]] = {}
_UNIT_SHAPES: dict[tuple[int, int], tuple[int, int, Resources]] = {}
_SHAPES_LIMIT = 4096
_NO_EXT: dict[str, int] = {}


def _shape(
    rc: int, rr: int, cache: dict[tuple[int, int], tuple[int, int, Resources]], key: tuple[int, int]
) -> tuple[int, int, Resources]:
    """A request shape for reserve_request, kept in ``cache`` while it has room."""
    shape = (rc, rr, _new(Resources, (rc, rr, 0, EMPTY)))
    if len(cache) < _SHAPES_LIMIT:
        cache[key] = shape
    return shape


def _devices(mask: int) -> tuple[int, ...]:
    return tuple(i for i in range(mask.bit_length()) if (mask >> i) & 1) if mask else ()


def _raw(n: NodeState) -> tuple[Any, ...]:
    """The node's mutable state copied (cheaply) while the lock is held."""
    return (
        n.node_id,
        n.capacity,
        n.allocatable,
        n.used_cpu,
        n.used_ram,
        n.used_gpu,
        dict(n.used_ext) if n.used_ext else None,
        n.labels,
        n.draining,
        len(n.jobs),
        n.gpu_mask,
    )


def _view(raw: tuple[Any, ...]) -> Node:
    """A Node from ``_raw`` (no lock needed)."""
    node_id, cap, alloc, uc, ur, ug, ext, labels, draining, count, mask = raw
    used_ext = MappingProxyType(dict(sorted(ext.items()))) if ext else EMPTY
    return Node(
        node_id, cap, alloc, Resources(uc, ur, ug, used_ext), labels, draining, count,
        _devices(mask),
    )  # fmt: skip


def node_view(n: NodeState) -> Node:
    """The immutable view of a node record (call with the lock held)."""
    return _view(_raw(n))


def shortfall(
    n: NodeState, rc: int, rr: int, rg: int, ext: Mapping[str, int]
) -> dict[str, tuple[int, int]]:
    """Each resource the node lacks for the request: name -> (requested, available)."""
    short: dict[str, tuple[int, int]] = {}
    for name, req, avail in (
        ("cpu", rc, n.alloc_cpu - n.used_cpu),
        ("ram", rr, n.alloc_ram - n.used_ram),
        ("gpu", rg, n.alloc_gpu - n.used_gpu),
    ):
        if req > avail:
            short[name] = (req, max(0, avail))
    for k, v in ext.items():
        avail = n.alloc_ext.get(k, 0) - n.used_ext.get(k, 0)
        if v > avail:
            short[k] = (v, max(0, avail))
    return short


def insufficient(node_id: str, short: dict[str, tuple[int, int]]) -> InsufficientResourcesError:
    parts = []
    for name, (need, have) in short.items():
        if name == "cpu":
            parts.append(f"cpu: need {format_cpu(need)} cores, available {format_cpu(have)}")
        elif name == "ram":
            parts.append(f"ram: need {format_ram(need)}, available {format_ram(have)}")
        else:
            parts.append(f"{name}: need {need}, available {have}")
    message = f"node {node_id!r} has insufficient " + "; ".join(parts)
    return InsufficientResourcesError(node_id, short, message)


def no_longer_fit(
    jobs: Mapping[str, Reservation], allocatable: Resources
) -> tuple[Reservation, ...]:
    """The reservations, oldest first, that push the node past ``allocatable`` or hold a
    GPU device index it no longer has."""
    c = r = g = 0
    ext: dict[str, int] = {}
    out = []
    for res in jobs.values():
        req = res.resources
        c, r, g = c + req.cpu_milli, r + req.ram_mib, g + req.gpu
        over = c > allocatable.cpu_milli or r > allocatable.ram_mib or g > allocatable.gpu
        for k, v in req.extended.items():
            ext[k] = ext.get(k, 0) + v
            over = over or ext[k] > allocatable.extended.get(k, 0)
        if over or any(d >= allocatable.gpu for d in res.gpu_devices):
            out.append(res)
    return tuple(out)


class MemoryBackend:
    """Nodes and reservations in this process, behind one lock.

    Every operation is a few dictionary and integer updates under one
    ``threading.Lock``; nothing blocks while it is held, so the async twins call
    the same code directly. Leases expire on ``clock`` (seconds, ``time.monotonic``
    by default; tests pass a fake one).
    """

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeState] = {}
        # job -> (reservation, its node, millicores, MiB, no GPU or extended resource):
        # release reads what it gives back from one plain tuple.
        self._reservations: dict[str, tuple[Reservation, NodeState, int, int, bool]] = {}
        self._index = Index()
        self._dirty = self._index.dirty  # nodes whose index entry is stale
        self._seq = 0
        self.released_total = 0
        self.rejected_total = 0
        self.evicted_total = 0
        self.expired_total = 0
        self._clock = clock or time.monotonic
        # Leases: a heap of (deadline, job) with stale entries left in place (a renewal
        # pushes a new one), each live lease's current deadline, and jobs by owner. The
        # heap is empty only when no reservation is leased, so the hot paths test it
        # (one truth test) and reservations without a TTL cost nothing more.
        self._leases: list[tuple[float, str]] = []
        self._deadlines: dict[str, float] = {}
        self._owned: dict[str, dict[str, None]] = {}

    # -- nodes ---------------------------------------------------------------------

    def register(
        self,
        node_id: str,
        capacity: Resources,
        allocatable: Resources,
        labels: Mapping[str, str],
    ) -> RegisterResult:
        with self._lock:
            if self._leases:
                self._sweep()
            n = self._nodes.get(node_id)
            if n is None:
                self._seq += 1
                n = NodeState(node_id, self._seq, capacity, allocatable, labels)
                self._nodes[node_id] = n
                self._index.add(n)
                return RegisterResult(node_view(n))
            lost = no_longer_fit(n.jobs, allocatable)  # type: ignore[arg-type]
            self._index.remove(n)
            n.capacity, n.allocatable, n.labels = capacity, allocatable, labels
            n.alloc_cpu, n.alloc_ram, n.alloc_gpu = (
                allocatable.cpu_milli,
                allocatable.ram_mib,
                allocatable.gpu,
            )
            n.alloc_ext = dict(allocatable.extended)
            self._index.add(n)
            return RegisterResult(node_view(n), lost)

    def set_draining(self, node_id: str, draining: bool) -> Node:
        with self._lock:
            if self._leases:
                self._sweep()
            n = self._nodes.get(node_id)
            if n is None:
                raise UnknownNodeError(node_id)
            if n.draining != draining:
                n.draining = draining
                if n.shape is not None:
                    n.shape.refresh(n)
            return node_view(n)

    def unregister(self, node_id: str) -> list[Reservation]:
        with self._lock:
            if self._leases:
                self._sweep()
            n = self._nodes.pop(node_id, None)
            if n is None:
                raise UnknownNodeError(node_id)
            self._index.remove(n)
            evicted: list[Reservation] = list(n.jobs.values())  # type: ignore[arg-type]
            for res in evicted:
                del self._reservations[res.job_id]
                if res[5] is not None:
                    self._forget_lease(res)
            self.evicted_total += len(evicted)
            return evicted

    def get_node(self, node_id: str) -> Node:
        with self._lock:
            if self._leases:
                self._sweep()
            n = self._nodes.get(node_id)
            if n is None:
                raise UnknownNodeError(node_id)
            return node_view(n)

    # -- reservations --------------------------------------------------------------

    def _existing(
        self, res: Reservation, node_id: str | None, rc: int, rr: int, rg: int, ext: dict[str, int]
    ) -> Reservation:
        have = res.resources
        if (
            (node_id is None or res.node_id == node_id)
            and have.cpu_milli == rc
            and have.ram_mib == rr
            and have.gpu == rg
            and dict(have.extended) == ext
        ):
            return res
        raise DuplicateJobError(
            res.job_id, f"on node {res.node_id!r} for {have.describe()} (a different request)"
        )

    def _take(
        self,
        n: NodeState,
        job_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        lease: Lease | None,
    ) -> Reservation:
        n.used_cpu += rc
        n.used_ram += rr
        devices: tuple[int, ...] = ()
        if rg:
            n.used_gpu += rg
            mask, i = n.gpu_mask, 0
            picked: list[int] = []
            while len(picked) < rg:
                if not (mask >> i) & 1:
                    picked.append(i)
                    mask |= 1 << i
                i += 1
            n.gpu_mask = mask
            devices = tuple(picked)
        extended: Mapping[str, int] = EMPTY
        if ext:
            used_ext = n.used_ext
            for k, v in ext.items():
                used_ext[k] = used_ext.get(k, 0) + v
            extended = MappingProxyType(ext)
        res: Reservation = _new(
            Reservation,
            (job_id, n.node_id, _new(Resources, (rc, rr, rg, extended)), devices, None, None),
        )
        self._reservations[job_id] = (res, n, rc, rr, not (rg or ext))
        n.jobs[job_id] = res
        if not n.dirty:
            n.dirty = True
            self._dirty.append(n)
        return res if lease is None else self._set_lease(res, lease)

    def reserve_request(
        self, job_id: str, node_id: str, *, cpu: object = 0, ram_gb: object = 0, **more: Any
    ) -> Reservation:
        """``ResourceManager.reserve`` for this backend in one call (the manager binds it).

        The same parsing and checks, in the same order, as the manager's own ``reserve``
        followed by :meth:`reserve`; a CPU-and-RAM request without a lease that fits
        runs inline. The other arguments (``gpu``, ``extended``, ``owner``, ``ttl``) come
        in ``more``: an empty dict costs less per call than four keyword-only defaults.
        """
        if (
            type(job_id) is not str
            or not 0 < len(job_id) <= 256
            or not job_id.isprintable()
            or type(node_id) is not str
            or more
        ):
            return self._reserve_request(job_id, node_id, cpu, ram_gb, **more)
        if type(cpu) is int and type(ram_gb) is int:
            try:
                rc, rr, req = _INT_SHAPES[cpu, ram_gb]
            except KeyError:
                rc, rr, _ = parse_request(cpu, 0, ram_gb)
                rc, rr, req = _shape(rc, rr, _INT_SHAPES, (cpu, ram_gb))
        else:
            rc, rr = request_cpu(cpu), request_ram(ram_gb)
            try:
                rc, rr, req = _UNIT_SHAPES[rc, rr]
            except KeyError:
                rc, rr, req = _shape(rc, rr, _UNIT_SHAPES, (rc, rr))
        lock = self._lock
        lock.acquire()
        try:
            # An expired lease not yet swept only makes a node look fuller: a request that
            # fits here fits after the sweep too, so only the general path sweeps.
            reservations = self._reservations
            try:
                n = self._nodes[node_id]
            except KeyError:
                return self._reserve_general(job_id, node_id, rc, rr, 0, _NO_EXT, None)
            if (
                job_id in reservations
                or n.draining
                or rc > n.alloc_cpu - n.used_cpu
                or rr > n.alloc_ram - n.used_ram
                or n.used_gpu > n.alloc_gpu
            ):
                return self._reserve_general(job_id, node_id, rc, rr, 0, _NO_EXT, None)
            # The common case (CPU and RAM only, fits): no helper calls.
            n.used_cpu += rc
            n.used_ram += rr
            res: Reservation = _new(Reservation, (job_id, node_id, req, (), None, None))
            reservations[job_id] = (res, n, rc, rr, True)
            n.jobs[job_id] = res
            if not n.dirty:
                n.dirty = True
                self._dirty.append(n)
            return res
        finally:
            lock.release()

    def _reserve_request(
        self,
        job_id: object,
        node_id: object,
        cpu: object,
        ram_gb: object,
        gpu: object = 0,
        extended: Mapping[str, object] | None = None,
        owner: object = None,
        ttl: object = None,
    ) -> Reservation:
        """``reserve_request`` beyond its inline case: parse everything, then reserve."""
        job = check_job(job_id)
        node = node_id if type(node_id) is str else check_id(node_id, "node_id")
        rc, rr, rg = parse_request(cpu, gpu, ram_gb)
        ext = parse_extended(extended) if extended else _NO_EXT
        lease = parse_lease(owner, ttl)
        with self._lock:
            return self._reserve_general(job, node, rc, rr, rg, ext, lease)

    def reserve(
        self,
        job_id: str,
        node_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        lease: Lease | None = None,
    ) -> Reservation:
        # The manager's sync reserve uses reserve_request (parsing and the inline common
        # case in one call); this parsed entry point serves areserve and the general case.
        with self._lock:
            return self._reserve_general(job_id, node_id, rc, rr, rg, ext, lease)

    def _reserve_general(
        self,
        job_id: str,
        node_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        lease: Lease | None,
    ) -> Reservation:
        if self._leases:
            self._sweep()
        held = self._reservations.get(job_id)
        if held is not None:
            res = self._existing(held[0], node_id, rc, rr, rg, ext)
            return res if lease is None else self._set_lease(res, lease)
        n = self._nodes.get(node_id)
        if n is None:
            raise UnknownNodeError(check_id(node_id, "node_id"))
        if n.draining:
            self.rejected_total += 1
            raise NodeDrainingError(node_id)
        if (
            rc > n.alloc_cpu - n.used_cpu
            or rr > n.alloc_ram - n.used_ram
            or rg > n.alloc_gpu - n.used_gpu
            or (
                ext
                and any(v > n.alloc_ext.get(k, 0) - n.used_ext.get(k, 0) for k, v in ext.items())
            )
        ):
            self.rejected_total += 1
            raise insufficient(node_id, shortfall(n, rc, rr, rg, ext))
        return self._take(n, job_id, rc, rr, rg, ext, lease)

    def reserve_any(
        self,
        job_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        selector: Selector,
        exclude: frozenset[str],
        scorer: Scorer,
        lease: Lease | None = None,
    ) -> Reservation:
        with self._lock:
            if self._leases:
                self._sweep()
            held = self._reservations.get(job_id)
            if held is not None:
                res = self._existing(held[0], None, rc, rr, rg, ext)
                return res if lease is None else self._set_lease(res, lease)
            if type(scorer) is BuiltinScorer:
                n = self._index.best(scorer.name, rc, rr, rg, ext, selector, exclude)
            else:
                n = self._best_custom(scorer, rc, rr, rg, ext, selector, exclude)
            if n is None:
                self.rejected_total += 1
                request = Resources(rc, rr, rg, ext)
                raise NoNodeAvailableError(
                    f"no node can hold {request.describe()}"
                    + (f" with selector {dict(selector)}" if selector else "")
                    + f" ({len(self._nodes)} nodes registered)"
                )
            return self._take(n, job_id, rc, rr, rg, ext, lease)

    def _feasible(
        self,
        rc: int,
        rr: int,
        rg: int,
        ext: Mapping[str, int],
        selector: Selector,
        exclude: frozenset[str],
    ) -> list[NodeState]:
        out = []
        for n in self._nodes.values():
            if (
                n.draining
                or rc > n.alloc_cpu - n.used_cpu
                or rr > n.alloc_ram - n.used_ram
                or rg > n.alloc_gpu - n.used_gpu
                or n.node_id in exclude
            ):
                continue
            if ext and any(
                v > n.alloc_ext.get(k, 0) - n.used_ext.get(k, 0) for k, v in ext.items()
            ):
                continue
            if selector and not matches(n.labels, selector):
                continue
            out.append(n)
        return out

    def _best_custom(
        self,
        scorer: Scorer,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        selector: Selector,
        exclude: frozenset[str],
    ) -> NodeState | None:
        request = Resources(rc, rr, rg, MappingProxyType(ext))
        best: NodeState | None = None
        best_score = 0.0
        for n in self._feasible(rc, rr, rg, ext, selector, exclude):
            score = scorer.score(node_view(n), request)
            if best is None or score > best_score:
                best, best_score = n, score
        return best

    def release(self, job_id: str) -> Reservation | None:
        lock = self._lock
        lock.acquire()
        try:
            if self._leases:
                return self._release_leased(job_id)
            try:
                res, n, rc, rr, plain = self._reservations.pop(job_id)
            except (KeyError, TypeError):  # free to catch (3.11+) until one is raised
                check_id(job_id, "job_id")  # only a miss can be an invalid id
                return None
            del n.jobs[job_id]
            n.used_cpu -= rc
            n.used_ram -= rr
            if not plain:
                self._give_back(n, res)
            if not n.dirty:
                n.dirty = True
                self._dirty.append(n)
            self.released_total += 1
            return res
        finally:
            lock.release()

    def _release_leased(self, job_id: str) -> Reservation | None:
        """``release`` while leases exist: sweep first, then drop the job (lock held)."""
        self._sweep()
        res = self._drop(job_id) if type(job_id) is str else None
        if res is None:
            check_id(job_id, "job_id")
            return None
        self.released_total += 1
        return res

    def _drop(self, job_id: str) -> Reservation | None:
        """Remove the job's reservation and give its resources back (lock held)."""
        held = self._reservations.pop(job_id, None)
        if held is None:
            return None
        res, n, rc, rr, plain = held
        del n.jobs[job_id]
        n.used_cpu -= rc
        n.used_ram -= rr
        if not plain:
            self._give_back(n, res)
        if not n.dirty:
            n.dirty = True
            self._dirty.append(n)
        if res[5] is not None:
            self._forget_lease(res)
        return res

    # -- leases ----------------------------------------------------------------------

    def _set_lease(self, res: Reservation, lease: Lease) -> Reservation:
        """Give the reservation ``lease``, its deadline ``ttl_ms`` from now (lock held)."""
        job_id = res.job_id
        if res.owner is not None and res.owner != lease.owner:
            self._disown(res.owner, job_id)
        deadline = self._clock() + lease.ttl_ms / 1000
        self._deadlines[job_id] = deadline
        heapq.heappush(self._leases, (deadline, job_id))
        if lease.owner is not None:
            self._owned.setdefault(lease.owner, {})[job_id] = None
        ttl = lease.ttl_ms / 1000
        if res.owner != lease.owner or res.ttl != ttl:
            res = res._replace(owner=lease.owner, ttl=ttl)
            _, n, rc, rr, plain = self._reservations[job_id]
            self._reservations[job_id] = (res, n, rc, rr, plain)
            n.jobs[job_id] = res
        return res

    def _forget_lease(self, res: Reservation) -> None:
        # The heap entry stays; the sweep skips it (its job has no deadline any more).
        del self._deadlines[res.job_id]
        if res.owner is not None:
            self._disown(res.owner, res.job_id)

    def _disown(self, owner: str, job_id: str) -> None:
        jobs = self._owned[owner]
        del jobs[job_id]
        if not jobs:
            del self._owned[owner]

    def _sweep(self) -> list[Reservation]:
        """Expire every lease past its deadline, oldest first (lock held)."""
        leases, deadlines = self._leases, self._deadlines
        now = self._clock()
        expired = []
        while leases and leases[0][0] <= now:
            deadline, job_id = heapq.heappop(leases)
            if deadlines.get(job_id) == deadline:
                res = self._drop(job_id)
                assert res is not None
                expired.append(res)
        self.expired_total += len(expired)
        return expired

    def expire(self) -> list[Reservation]:
        """Expire every lease past its deadline now; returns what they held."""
        with self._lock:
            return self._sweep() if self._leases else []

    def renew(self, job_id: str, ttl_ms: int | None) -> Reservation | None:
        with self._lock:
            if self._leases:
                self._sweep()
            held = self._reservations.get(job_id)
            if held is None:
                return None
            res = held[0]
            return res if ttl_ms is None and res.ttl is None else self._renew(res, ttl_ms)

    def _renew(self, res: Reservation, ttl_ms: int | None) -> Reservation:
        if ttl_ms is None:
            ttl_ms = round(res.ttl * 1000)  # type: ignore[operator]
        return self._set_lease(res, Lease(res.owner, ttl_ms))

    def renew_owner(self, owner: str, ttl_ms: int | None) -> list[str]:
        with self._lock:
            if self._leases:
                self._sweep()
            jobs = sorted(self._owned.get(owner, ()))
            for job_id in jobs:
                self._renew(self._reservations[job_id][0], ttl_ms)
            return jobs

    @staticmethod
    def _give_back(n: NodeState, res: Reservation) -> None:
        req = res.resources
        if req.gpu:
            n.used_gpu -= req.gpu
            for d in res.gpu_devices:
                n.gpu_mask &= ~(1 << d)
        used_ext = n.used_ext
        for k, v in req.extended.items():
            left = used_ext[k] - v
            if left:
                used_ext[k] = left
            else:
                del used_ext[k]

    def get_reservation(self, job_id: str) -> Reservation | None:
        if self._leases:
            with self._lock:
                self._sweep()
        held = self._reservations.get(job_id)
        return None if held is None else held[0]

    def available_nodes(
        self,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        selector: Selector,
        scorer: Scorer,
    ) -> list[str]:
        with self._lock:
            if self._leases:
                self._sweep()
            feasible = self._feasible(rc, rr, rg, ext, selector, frozenset())
            if type(scorer) is BuiltinScorer:
                kind = scorer.name
                scored: list[tuple[float, NodeState]] = [
                    (
                        -builtin_score(
                            kind, n.alloc_cpu, n.alloc_ram, n.used_cpu, n.used_ram, rc, rr
                        ),
                        n,
                    )
                    for n in feasible
                ]
            else:
                request = Resources(rc, rr, rg, MappingProxyType(ext))
                scored = [(-scorer.score(node_view(n), request), n) for n in feasible]
        scored.sort(key=lambda item: (item[0], item[1].seq))
        return [n.node_id for _, n in scored]

    def snapshot(self) -> Snapshot:
        # Copy raw state under the lock, build the immutable views after releasing it:
        # writers wait for one pass of tuple copies, not for 10k Node objects.
        with self._lock:
            if self._leases:
                self._sweep()
            raws = [_raw(n) for n in self._nodes.values()]
            reservations = {job_id: held[0] for job_id, held in self._reservations.items()}
        nodes = {raw[0]: _view(raw) for raw in raws}
        return Snapshot(MappingProxyType(nodes), MappingProxyType(reservations))

    def counters(self) -> dict[str, int]:
        """Reservations made, released, rejected, evicted and expired since this backend started."""
        with self._lock:
            if self._leases:
                self._sweep()
            return {
                # every reservation made is live, released, evicted or expired
                "reserved": len(self._reservations)
                + self.released_total
                + self.evicted_total
                + self.expired_total,
                "released": self.released_total,
                "rejected": self.rejected_total,
                "evicted": self.evicted_total,
                "expired": self.expired_total,
            }

    def close(self) -> None:
        """Nothing to close; present for symmetry with the Redis backend."""

    # -- async twins: the lock is held for microseconds and nothing blocks under it,
    # so running the sync code on the event loop thread is the fastest correct path.

    async def aregister(
        self, node_id: str, capacity: Resources, allocatable: Resources, labels: Mapping[str, str]
    ) -> RegisterResult:
        return self.register(node_id, capacity, allocatable, labels)

    async def aset_draining(self, node_id: str, draining: bool) -> Node:
        return self.set_draining(node_id, draining)

    async def aunregister(self, node_id: str) -> list[Reservation]:
        return self.unregister(node_id)

    async def aget_node(self, node_id: str) -> Node:
        return self.get_node(node_id)

    async def areserve(
        self,
        job_id: str,
        node_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        lease: Lease | None = None,
    ) -> Reservation:
        return self.reserve(job_id, node_id, rc, rr, rg, ext, lease)

    async def areserve_any(
        self,
        job_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        selector: Selector,
        exclude: frozenset[str],
        scorer: Scorer,
        lease: Lease | None = None,
    ) -> Reservation:
        return self.reserve_any(job_id, rc, rr, rg, ext, selector, exclude, scorer, lease)

    async def arelease(self, job_id: str) -> Reservation | None:
        return self.release(job_id)

    async def aget_reservation(self, job_id: str) -> Reservation | None:
        return self.get_reservation(job_id)

    async def arenew(self, job_id: str, ttl_ms: int | None) -> Reservation | None:
        return self.renew(job_id, ttl_ms)

    async def arenew_owner(self, owner: str, ttl_ms: int | None) -> list[str]:
        return self.renew_owner(owner, ttl_ms)

    async def aexpire(self) -> list[Reservation]:
        return self.expire()

    async def aavailable_nodes(
        self, rc: int, rr: int, rg: int, ext: dict[str, int], selector: Selector, scorer: Scorer
    ) -> list[str]:
        return self.available_nodes(rc, rr, rg, ext, selector, scorer)

    async def asnapshot(self) -> Snapshot:
        return self.snapshot()

    async def aclose(self) -> None:
        self.close()
