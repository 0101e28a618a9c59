"""ResourceManager: the public front door; parses amounts once, then asks the backend."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ._backend import Backend
from ._errors import InvalidAmountError
from ._memory import MemoryBackend
from ._quantity import (
    Lease,
    check_id,
    check_job,
    check_name,
    parse_count,
    parse_cpu,
    parse_extended,
    parse_lease,
    parse_ram,
    parse_request,
    parse_ttl,
)
from ._scoring import Scorer, Selector, parse_selector, resolve_scorer
from ._types import EMPTY, Node, RegisterResult, Reservation, Resources, Snapshot

_NO_EXCLUDE: frozenset[str] = frozenset()
_NO_EXT: dict[str, int] = {}  # shared; backends never mutate the ext they are given

Amount = int | float | str
SelectorSpec = Mapping[str, str | Collection[str]]


def parse_reserve(value: Mapping[str, object] | Resources | None) -> Resources:
    """A system reserve from ``{"cpu": "500m", "ram_gb": 1, "gpu": 0, "<ext>": n}``."""
    if value is None:
        return Resources()
    if isinstance(value, Resources):
        return value
    if not isinstance(value, Mapping):
        raise InvalidAmountError(
            f"system_reserve must be a mapping such as {{'cpu': '500m', 'ram_gb': 1}}, "
            f"got {value!r}"
        )
    rest = {k: v for k, v in value.items() if k not in ("cpu", "ram_gb", "gpu")}
    ext = parse_extended(rest, "system_reserve")
    return Resources(
        parse_cpu(value.get("cpu", 0), "system_reserve cpu"),
        parse_ram(value.get("ram_gb", 0), "system_reserve ram_gb"),
        parse_count(value.get("gpu", 0), "system_reserve gpu"),
        MappingProxyType(ext) if ext else EMPTY,
    )


def _labels(labels: Mapping[str, str] | None) -> Mapping[str, str]:
    if not labels:
        return EMPTY  # type: ignore[return-value]
    if not isinstance(labels, Mapping):
        raise InvalidAmountError(f"labels must be a mapping of name to string, got {labels!r}")
    out = {}
    for key, value in labels.items():
        check_name(key, "label name")
        if not isinstance(value, str) or len(value) > 256 or not value.isprintable():
            raise InvalidAmountError(
                f"label {key!r} must be a printable string of at most 256 characters, got {value!r}"
            )
        out[key] = value
    return MappingProxyType(dict(sorted(out.items())))


class ResourceManager:
    """Tracks CPU, GPU, RAM and extended resources per node and reserves them per job.

    ``backend`` is :class:`MemoryBackend` (default, one process) or :class:`RedisBackend`
    (several processes sharing one Redis). ``scorer`` is the placement policy used by
    :meth:`reserve_any` and :meth:`get_available_nodes`: ``"binpack"`` (most allocated
    first), ``"spread"`` (least allocated first), ``"balanced"`` or a :class:`Scorer`.
    ``system_reserve`` (``{"cpu": "500m", "ram_gb": 1}``) is taken off every node's
    capacity. Metrics go to ``meter_provider`` (the global one when None).

    All methods are thread-safe; each ``a``-prefixed twin is the same operation for
    event-loop code (it never blocks the loop on I/O).
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        scorer: str | Scorer = "binpack",
        system_reserve: Mapping[str, object] | Resources | None = None,
        meter_provider: Any = None,
    ) -> None:
        if isinstance(backend, str):
            raise InvalidAmountError(
                f"backend must be a backend object such as RedisBackend({backend!r}), not a string"
            )
        if backend is not None and not callable(getattr(backend, "reserve_any", None)):
            raise InvalidAmountError(
                f"backend must be MemoryBackend, RedisBackend or implement Backend, got {backend!r}"
            )
        self._backend: Backend = backend if backend is not None else MemoryBackend()
        self._scorer = resolve_scorer(scorer)
        self._system_reserve = parse_reserve(system_reserve)
        self._closed = False
        # release is the hottest call and takes no parsing: bind it straight to the
        # backend. A backend checks the id only when it holds nothing for it (an id
        # that holds a reservation was valid when reserved), so release(""), like
        # arelease(""), raises InvalidAmountError at no cost to real releases.
        self.release = self._backend.release  # type: ignore[method-assign]
        if type(self._backend) is MemoryBackend:
            # reserve too: the memory backend parses, checks and reserves in one call.
            self.reserve = self._backend.reserve_request  # type: ignore[method-assign]
        from ._metrics import ResourceMetrics

        self._metrics = ResourceMetrics(self, meter_provider)

    @property
    def backend(self) -> Backend:
        """The storage backend."""
        return self._backend

    @property
    def scorer(self) -> Scorer:
        """The default placement policy."""
        return self._scorer

    # -- argument parsing ----------------------------------------------------------

    def _node_args(
        self,
        node_id: str,
        cpu: Amount,
        gpu: Amount,
        ram_gb: Amount,
        labels: Mapping[str, str] | None,
        extended: Mapping[str, Amount] | None,
        system_reserve: Mapping[str, object] | Resources | None,
    ) -> tuple[str, Resources, Resources, Mapping[str, str]]:
        check_id(node_id, "node_id")
        # Capacities round down to whole millicores and MiB (requests round up).
        rc = parse_cpu(cpu, round_up=False)
        rr = parse_ram(ram_gb, round_up=False)
        rg = parse_count(gpu, "gpu")
        if rc <= 0:
            raise InvalidAmountError(f"cpu capacity must be > 0, got {cpu!r}")
        ext = parse_extended(extended)
        capacity = Resources(rc, rr, rg, MappingProxyType(ext) if ext else EMPTY)
        reserve = self._system_reserve if system_reserve is None else parse_reserve(system_reserve)
        alloc_ext = {k: max(0, v - reserve.extended.get(k, 0)) for k, v in ext.items()}
        alloc_ext = {k: v for k, v in alloc_ext.items() if v}
        allocatable = Resources(
            max(0, rc - reserve.cpu_milli),
            max(0, rr - reserve.ram_mib),
            max(0, rg - reserve.gpu),
            MappingProxyType(alloc_ext) if alloc_ext else EMPTY,
        )
        return node_id, capacity, allocatable, _labels(labels)

    def _selector(self, selector: SelectorSpec | None) -> Selector:
        return parse_selector(selector) if selector else ()

    def _exclude(self, exclude: Iterable[str]) -> frozenset[str]:
        if not exclude:
            return _NO_EXCLUDE
        if isinstance(exclude, str):
            raise InvalidAmountError(f"exclude must be a collection of node ids, got {exclude!r}")
        return frozenset(exclude)

    def _scorer_for(self, scorer: str | Scorer | None) -> Scorer:
        return self._scorer if scorer is None else resolve_scorer(scorer)

    # Each sync/async pair parses its arguments with one of these; the twins differ
    # only in calling the backend's method or awaiting its ``a`` twin.
    def _any_args(
        self,
        job_id: str,
        cpu: Amount,
        gpu: Amount,
        ram_gb: Amount,
        extended: Mapping[str, Amount] | None,
        selector: SelectorSpec | None,
        exclude: Iterable[str],
        scorer: str | Scorer | None,
        owner: str | None,
        ttl: float | None,
    ) -> tuple[str, int, int, int, dict[str, int], Selector, frozenset[str], Scorer, Lease | None]:
        job_id = check_job(job_id)
        rc, rr, rg = parse_request(cpu, gpu, ram_gb)
        ext = parse_extended(extended) if extended else _NO_EXT
        return (
            job_id, rc, rr, rg, ext,
            self._selector(selector), self._exclude(exclude), self._scorer_for(scorer),
            parse_lease(owner, ttl),
        )  # fmt: skip

    @staticmethod
    def _reserve_args(
        job_id: str,
        node_id: str,
        cpu: Amount,
        gpu: Amount,
        ram_gb: Amount,
        extended: Mapping[str, Amount] | None,
        owner: str | None,
        ttl: float | None,
    ) -> tuple[str, str, int, int, int, dict[str, int], Lease | None]:
        job_id = check_job(job_id)
        if type(node_id) is not str:
            check_id(node_id, "node_id")
        rc, rr, rg = parse_request(cpu, gpu, ram_gb)
        ext = parse_extended(extended) if extended else _NO_EXT
        return job_id, node_id, rc, rr, rg, ext, parse_lease(owner, ttl)

    def _available_args(
        self,
        cpu: Amount,
        gpu: Amount,
        ram_gb: Amount,
        extended: Mapping[str, Amount] | None,
        selector: SelectorSpec | None,
        scorer: str | Scorer | None,
    ) -> tuple[int, int, int, dict[str, int], Selector, Scorer]:
        rc, rr, rg = parse_request(cpu, gpu, ram_gb)
        ext = parse_extended(extended) if extended else _NO_EXT
        return rc, rr, rg, ext, self._selector(selector), self._scorer_for(scorer)

    # -- nodes ---------------------------------------------------------------------

    def register_node(
        self,
        node_id: str,
        *,
        cpu: Amount,
        gpu: Amount = 0,
        ram_gb: Amount = 0,
        labels: Mapping[str, str] | None = None,
        extended: Mapping[str, Amount] | None = None,
        system_reserve: Mapping[str, object] | Resources | None = None,
    ) -> RegisterResult:
        """Add a node, or update its capacity and labels (re-registration).

        Re-registration keeps every reservation and the draining flag; reservations
        the new capacity no longer holds are listed in ``no_longer_fit``.
        ``system_reserve`` overrides the manager's default for this node.
        """
        args = self._node_args(node_id, cpu, gpu, ram_gb, labels, extended, system_reserve)
        return self._backend.register(*args)

    async def aregister_node(
        self,
        node_id: str,
        *,
        cpu: Amount,
        gpu: Amount = 0,
        ram_gb: Amount = 0,
        labels: Mapping[str, str] | None = None,
        extended: Mapping[str, Amount] | None = None,
        system_reserve: Mapping[str, object] | Resources | None = None,
    ) -> RegisterResult:
        """Async twin of :meth:`register_node`."""
        args = self._node_args(node_id, cpu, gpu, ram_gb, labels, extended, system_reserve)
        return await self._backend.aregister(*args)

    def drain(self, node_id: str) -> Node:
        """Stop placing new reservations on the node; existing ones stay."""
        check_id(node_id, "node_id")
        return self._backend.set_draining(node_id, True)

    async def adrain(self, node_id: str) -> Node:
        """Async twin of :meth:`drain`."""
        check_id(node_id, "node_id")
        return await self._backend.aset_draining(node_id, True)

    def undrain(self, node_id: str) -> Node:
        """Put a drained node back in service."""
        check_id(node_id, "node_id")
        return self._backend.set_draining(node_id, False)

    async def aundrain(self, node_id: str) -> Node:
        """Async twin of :meth:`undrain`."""
        check_id(node_id, "node_id")
        return await self._backend.aset_draining(node_id, False)

    def unregister_node(self, node_id: str) -> list[Reservation]:
        """Remove the node and its reservations; returns them so their jobs can be requeued."""
        check_id(node_id, "node_id")
        return self._backend.unregister(node_id)

    async def aunregister_node(self, node_id: str) -> list[Reservation]:
        """Async twin of :meth:`unregister_node`."""
        check_id(node_id, "node_id")
        return await self._backend.aunregister(node_id)

    def get_node(self, node_id: str) -> Node:
        """The node's capacity, allocatable, use, labels and state; UnknownNodeError if absent."""
        check_id(node_id, "node_id")
        return self._backend.get_node(node_id)

    async def aget_node(self, node_id: str) -> Node:
        """Async twin of :meth:`get_node`."""
        check_id(node_id, "node_id")
        return await self._backend.aget_node(node_id)

    # -- reservations --------------------------------------------------------------

    def reserve(
        self,
        job_id: str,
        node_id: str,
        *,
        cpu: Amount = 0,
        gpu: Amount = 0,
        ram_gb: Amount = 0,
        extended: Mapping[str, Amount] | None = None,
        owner: str | None = None,
        ttl: float | None = None,
    ) -> Reservation:
        """Reserve the request on ``node_id`` for ``job_id``, all or nothing.

        Reserving the same job again with the same request returns the existing
        reservation; a different request raises DuplicateJobError. With ``ttl``
        (seconds) the reservation is a lease: unless renewed (:meth:`renew`,
        :meth:`renew_owner`, or reserving it again with a ttl) within ``ttl`` it
        expires and gives everything back. ``owner`` names who renews it.
        """
        # A MemoryBackend's instance gets its backend's reserve_request instead (see
        # __init__): the same parsing and checks in one call. This is every other backend's.
        return self._backend.reserve(
            *self._reserve_args(job_id, node_id, cpu, gpu, ram_gb, extended, owner, ttl)
        )

    async def areserve(
        self,
        job_id: str,
        node_id: str,
        *,
        cpu: Amount = 0,
        gpu: Amount = 0,
        ram_gb: Amount = 0,
        extended: Mapping[str, Amount] | None = None,
        owner: str | None = None,
        ttl: float | None = None,
    ) -> Reservation:
        """Async twin of :meth:`reserve`."""
        return await self._backend.areserve(
            *self._reserve_args(job_id, node_id, cpu, gpu, ram_gb, extended, owner, ttl)
        )

    def reserve_any(
        self,
        job_id: str,
        *,
        cpu: Amount = 0,
        gpu: Amount = 0,
        ram_gb: Amount = 0,
        extended: Mapping[str, Amount] | None = None,
        selector: SelectorSpec | None = None,
        exclude: Iterable[str] = (),
        scorer: str | Scorer | None = None,
        owner: str | None = None,
        ttl: float | None = None,
    ) -> Reservation:
        """Filter, score and reserve in one atomic step; the reservation names the node.

        ``selector`` keeps nodes whose labels match (``{"gpu_type": "a100"}``, a
        collection of values meaning any of them); ``exclude`` skips node ids.
        ``owner`` and ``ttl`` make it a lease, as in :meth:`reserve`.
        Raises NoNodeAvailableError when nothing fits.
        """
        return self._backend.reserve_any(
            *self._any_args(
                job_id, cpu, gpu, ram_gb, extended, selector, exclude, scorer, owner, ttl
            )
        )

    async def areserve_any(
        self,
        job_id: str,
        *,
        cpu: Amount = 0,
        gpu: Amount = 0,
        ram_gb: Amount = 0,
        extended: Mapping[str, Amount] | None = None,
        selector: SelectorSpec | None = None,
        exclude: Iterable[str] = (),
        scorer: str | Scorer | None = None,
        owner: str | None = None,
        ttl: float | None = None,
    ) -> Reservation:
        """Async twin of :meth:`reserve_any`."""
        return await self._backend.areserve_any(
            *self._any_args(
                job_id, cpu, gpu, ram_gb, extended, selector, exclude, scorer, owner, ttl
            )
        )

    def release(self, job_id: str) -> Reservation | None:
        """Return everything the job's reservation took; None if the job holds nothing.

        Raises InvalidAmountError for an id no job can have (``""``, not a string).
        (An instance calls the backend's ``release`` directly; see ``__init__``.)
        """
        return self._backend.release(job_id)

    async def arelease(self, job_id: str) -> Reservation | None:
        """Async twin of :meth:`release`."""
        return await self._backend.arelease(job_id)

    # -- leases --------------------------------------------------------------------

    def renew(self, job_id: str, *, ttl: float | None = None) -> Reservation | None:
        """Push the job's lease deadline to ``ttl`` seconds from now (its own ttl when None).

        Returns the reservation, or None if the job holds nothing (released, or the
        lease already expired: its resources may be someone else's by now). ``ttl`` on
        a reservation without a lease gives it one; without ``ttl`` it is left as is.
        """
        check_id(job_id, "job_id")
        return self._backend.renew(job_id, None if ttl is None else parse_ttl(ttl))

    async def arenew(self, job_id: str, *, ttl: float | None = None) -> Reservation | None:
        """Async twin of :meth:`renew`."""
        check_id(job_id, "job_id")
        return await self._backend.arenew(job_id, None if ttl is None else parse_ttl(ttl))

    def renew_owner(self, owner: str, *, ttl: float | None = None) -> list[str]:
        """Renew every lease ``owner`` holds, atomically (one Redis round trip).

        Each lease gets ``ttl`` or its own ttl. Returns the renewed job ids, sorted: a
        job of the owner's that is missing has lost its lease.
        """
        check_id(owner, "owner")
        return self._backend.renew_owner(owner, None if ttl is None else parse_ttl(ttl))

    async def arenew_owner(self, owner: str, *, ttl: float | None = None) -> list[str]:
        """Async twin of :meth:`renew_owner`."""
        check_id(owner, "owner")
        return await self._backend.arenew_owner(owner, None if ttl is None else parse_ttl(ttl))

    def expire(self) -> list[Reservation]:
        """Expire every lease past its deadline now and return what they held.

        Every other call expires due leases first anyway; this one is for a periodic
        sweep (so ``counters()`` and metrics move without other traffic).
        """
        return self._backend.expire()

    async def aexpire(self) -> list[Reservation]:
        """Async twin of :meth:`expire`."""
        return await self._backend.aexpire()

    def get_reservation(self, job_id: str) -> Reservation | None:
        """The job's reservation, or None."""
        check_id(job_id, "job_id")
        return self._backend.get_reservation(job_id)

    async def aget_reservation(self, job_id: str) -> Reservation | None:
        """Async twin of :meth:`get_reservation`."""
        check_id(job_id, "job_id")
        return await self._backend.aget_reservation(job_id)

    def get_available_nodes(
        self,
        *,
        cpu: Amount = 0,
        gpu: Amount = 0,
        ram_gb: Amount = 0,
        extended: Mapping[str, Amount] | None = None,
        selector: SelectorSpec | None = None,
        scorer: str | Scorer | None = None,
    ) -> list[str]:
        """Ids of the non-draining nodes that can hold the request, best first."""
        return self._backend.available_nodes(
            *self._available_args(cpu, gpu, ram_gb, extended, selector, scorer)
        )

    async def aget_available_nodes(
        self,
        *,
        cpu: Amount = 0,
        gpu: Amount = 0,
        ram_gb: Amount = 0,
        extended: Mapping[str, Amount] | None = None,
        selector: SelectorSpec | None = None,
        scorer: str | Scorer | None = None,
    ) -> list[str]:
        """Async twin of :meth:`get_available_nodes`."""
        return await self._backend.aavailable_nodes(
            *self._available_args(cpu, gpu, ram_gb, extended, selector, scorer)
        )

    def snapshot(self) -> Snapshot:
        """Every node and reservation, read atomically."""
        return self._backend.snapshot()

    async def asnapshot(self) -> Snapshot:
        """Async twin of :meth:`snapshot`."""
        return await self._backend.asnapshot()

    def counters(self) -> dict[str, int]:
        """Reservations ``reserved``, ``released``, ``rejected``, ``evicted`` and ``expired``."""
        return self._backend.counters()

    def close(self) -> None:
        """Stop reporting metrics and close the backend's connections."""
        self._closed = True
        self._backend.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        self._closed = True
        await self._backend.aclose()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed
