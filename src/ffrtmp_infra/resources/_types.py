"""Immutable values the manager hands out: Resources, Reservation, Node, Snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from ._quantity import format_cpu, format_ram

EMPTY: Mapping[str, int] = MappingProxyType({})


class Resources(NamedTuple):
    """A resource vector in fixed-point units.

    ``cpu_milli`` is millicores, ``ram_mib`` MiB, ``gpu`` whole GPUs and ``extended``
    whole units of named extended resources (for example ``nvenc_sessions``).
    """

    cpu_milli: int = 0
    ram_mib: int = 0
    gpu: int = 0
    extended: Mapping[str, int] = EMPTY

    @property
    def cpu(self) -> float:
        """CPU in cores."""
        return self.cpu_milli / 1000

    @property
    def ram_gb(self) -> float:
        """RAM in GiB."""
        return self.ram_mib / 1024

    def describe(self) -> str:
        """A short human form such as ``cpu=4 ram=8Gi gpu=1 nvenc_sessions=2``."""
        parts = [f"cpu={format_cpu(self.cpu_milli)}", f"ram={format_ram(self.ram_mib)}"]
        if self.gpu:
            parts.append(f"gpu={self.gpu}")
        parts += [f"{k}={v}" for k, v in self.extended.items()]
        return " ".join(parts)

    def same_as(self, other: Resources) -> bool:
        """Equal in every dimension (extended resources compared as mappings)."""
        return (
            self.cpu_milli == other.cpu_milli
            and self.ram_mib == other.ram_mib
            and self.gpu == other.gpu
            and dict(self.extended) == dict(other.extended)
        )


class Reservation(NamedTuple):
    """What one job holds on one node, released as a whole by ``release(job_id)``.

    ``gpu_devices`` are the concrete device indices (for ``CUDA_VISIBLE_DEVICES``).
    A leased reservation has a ``ttl`` (seconds): unless renewed within it, it expires
    and gives everything back. ``owner`` names who renews it (``renew_owner``).
    """

    job_id: str
    node_id: str
    resources: Resources
    gpu_devices: tuple[int, ...] = ()
    owner: str | None = None
    ttl: float | None = None


class Node(NamedTuple):
    """A read-only view of one node at one moment.

    ``allocatable`` is capacity minus the system reserve; ``used`` is the sum of the
    node's reservations. ``used`` can exceed ``allocatable`` only after a re-registration
    shrank the node (see :class:`RegisterResult`).
    """

    node_id: str
    capacity: Resources
    allocatable: Resources
    used: Resources
    labels: Mapping[str, str]
    draining: bool
    reservations: int
    gpu_devices_used: tuple[int, ...] = ()

    @property
    def available(self) -> Resources:
        """Allocatable minus used, never below zero."""
        alloc, used = self.allocatable, self.used
        extended = {k: max(0, v - used.extended.get(k, 0)) for k, v in alloc.extended.items()}
        return Resources(
            max(0, alloc.cpu_milli - used.cpu_milli),
            max(0, alloc.ram_mib - used.ram_mib),
            max(0, alloc.gpu - used.gpu),
            MappingProxyType(extended),
        )


class RegisterResult(NamedTuple):
    """What ``register_node`` did: the node now, and reservations the new capacity no
    longer holds (kept, so the caller decides whether to release and requeue them)."""

    node: Node
    no_longer_fit: tuple[Reservation, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Every node and reservation, read atomically (never a half-applied change)."""

    nodes: Mapping[str, Node]
    reservations: Mapping[str, Reservation]

    def used_by_node(self) -> dict[str, Resources]:
        """The sum of the reservations on each node, recomputed from the ledger."""
        sums: dict[str, list[int]] = {n: [0, 0, 0] for n in self.nodes}
        ext: dict[str, dict[str, int]] = {n: {} for n in self.nodes}
        for r in self.reservations.values():
            total = sums.setdefault(r.node_id, [0, 0, 0])
            total[0] += r.resources.cpu_milli
            total[1] += r.resources.ram_mib
            total[2] += r.resources.gpu
            node_ext = ext.setdefault(r.node_id, {})
            for k, v in r.resources.extended.items():
                node_ext[k] = node_ext.get(k, 0) + v
        return {
            n: Resources(c, m, g, dict(sorted(ext[n].items()))) for n, (c, m, g) in sums.items()
        }
