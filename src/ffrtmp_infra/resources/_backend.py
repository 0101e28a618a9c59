"""The storage backend protocol: the manager parses and validates, a backend applies.

Amounts reach a backend already parsed: ``rc`` millicores, ``rr`` MiB, ``rg`` GPUs,
``ext`` a fresh dict of extended units and ``lease`` (owner, ttl in ms) or None.
Every method is atomic on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ._quantity import Lease
from ._scoring import Scorer, Selector
from ._types import Node, RegisterResult, Reservation, Resources, Snapshot


class Backend(Protocol):
    """Where nodes and reservations live (:class:`MemoryBackend`, :class:`RedisBackend`)."""

    def register(
        self, node_id: str, capacity: Resources, allocatable: Resources, labels: Mapping[str, str]
    ) -> RegisterResult: ...
    def set_draining(self, node_id: str, draining: bool) -> Node: ...
    def unregister(self, node_id: str) -> list[Reservation]: ...
    def get_node(self, node_id: str) -> Node: ...
    def reserve(
        self,
        job_id: str,
        node_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        lease: Lease | None = None,
    ) -> Reservation: ...
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
    ) -> Reservation: ...
    def release(self, job_id: str) -> Reservation | None: ...
    def renew(self, job_id: str, ttl_ms: int | None) -> Reservation | None: ...
    def renew_owner(self, owner: str, ttl_ms: int | None) -> list[str]: ...
    def expire(self) -> list[Reservation]: ...
    def get_reservation(self, job_id: str) -> Reservation | None: ...
    def available_nodes(
        self, rc: int, rr: int, rg: int, ext: dict[str, int], selector: Selector, scorer: Scorer
    ) -> list[str]: ...
    def snapshot(self) -> Snapshot: ...
    def counters(self) -> dict[str, int]: ...
    def close(self) -> None: ...

    async def aregister(
        self, node_id: str, capacity: Resources, allocatable: Resources, labels: Mapping[str, str]
    ) -> RegisterResult: ...
    async def aset_draining(self, node_id: str, draining: bool) -> Node: ...
    async def aunregister(self, node_id: str) -> list[Reservation]: ...
    async def aget_node(self, node_id: str) -> Node: ...
    async def areserve(
        self,
        job_id: str,
        node_id: str,
        rc: int,
        rr: int,
        rg: int,
        ext: dict[str, int],
        lease: Lease | None = None,
    ) -> Reservation: ...
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
    ) -> Reservation: ...
    async def arelease(self, job_id: str) -> Reservation | None: ...
    async def arenew(self, job_id: str, ttl_ms: int | None) -> Reservation | None: ...
    async def arenew_owner(self, owner: str, ttl_ms: int | None) -> list[str]: ...
    async def aexpire(self) -> list[Reservation]: ...
    async def aget_reservation(self, job_id: str) -> Reservation | None: ...
    async def aavailable_nodes(
        self, rc: int, rr: int, rg: int, ext: dict[str, int], selector: Selector, scorer: Scorer
    ) -> list[str]: ...
    async def asnapshot(self) -> Snapshot: ...
    async def aclose(self) -> None: ...
