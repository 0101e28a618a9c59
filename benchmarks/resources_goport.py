"""A straight Python port of the upstream Go manager (psantana5/ffmpeg-rtmp,
``shared/pkg/resources/manager.go``): float amounts, dicts, one lock, linear scans.

It keeps upstream's behaviour, defects included (release returns only the CPU, the
duplicate check runs after the capacity checks), because it is the baseline the
benchmarks compare against. ``reserve_any_linear`` is what a scheduler on top of it
does: scan every node under the lock, score, reserve the best. ``PlainLedger`` is the
plain dict-and-lock baseline of the manager's own reserve and release.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ffrtmp_infra.resources import Reservation as Reservation_
from ffrtmp_infra.resources import Resources


@dataclass
class NodeResources:
    total_cpu: float
    total_gpu: int
    total_ram_gb: float
    available_cpu: float
    available_gpu: int
    available_ram_gb: float


@dataclass
class Reservation:
    job_id: str
    node_id: str
    resource_type: str
    amount: float


class GoPortManager:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reservations: dict[str, Reservation] = {}
        self._nodes: dict[str, NodeResources] = {}

    def register_node(self, node_id: str, cpu: float, gpu: int, ram_gb: float) -> None:
        with self._lock:
            self._nodes[node_id] = NodeResources(cpu, gpu, ram_gb, cpu, gpu, ram_gb)

    def reserve(self, job_id: str, node_id: str, cpu: float, gpu: int, ram_gb: float) -> None:
        with self._lock:
            self._reserve_locked(job_id, node_id, cpu, gpu, ram_gb)

    def _reserve_locked(
        self, job_id: str, node_id: str, cpu: float, gpu: int, ram_gb: float
    ) -> None:
        node = self._nodes.get(node_id)
        if node is None:
            raise KeyError(f"node {node_id} not found")
        if node.available_cpu < cpu:
            raise ValueError(
                f"insufficient CPU: need {cpu:.2f}, available {node.available_cpu:.2f}"
            )
        if node.available_gpu < gpu:
            raise ValueError(f"insufficient GPU: need {gpu}, available {node.available_gpu}")
        if node.available_ram_gb < ram_gb:
            raise ValueError(
                f"insufficient RAM: need {ram_gb:.2f} GB, available {node.available_ram_gb:.2f} GB"
            )
        if job_id in self._reservations:
            raise ValueError(f"job {job_id} already has a reservation")
        node.available_cpu -= cpu
        node.available_gpu -= gpu
        node.available_ram_gb -= ram_gb
        self._reservations[job_id] = Reservation(job_id, node_id, "cpu", cpu)

    def release(self, job_id: str) -> None:
        with self._lock:
            res = self._reservations.pop(job_id, None)
            if res is None:
                raise KeyError(f"no reservation found for job {job_id}")
            node = self._nodes.get(res.node_id)
            if node is not None:
                node.available_cpu += res.amount  # upstream returns only the CPU

    def get_available_nodes(self, cpu: float, gpu: int, ram_gb: float) -> list[str]:
        with self._lock:
            return [
                node_id
                for node_id, n in self._nodes.items()
                if n.available_cpu >= cpu
                and n.available_gpu >= gpu
                and n.available_ram_gb >= ram_gb
            ]

    def reserve_any_linear(self, job_id: str, cpu: float, gpu: int, ram_gb: float) -> str:
        """Scan every node, keep the most allocated one that fits (binpack), reserve it."""
        with self._lock:
            best, best_score = None, -1.0
            for node_id, n in self._nodes.items():
                if (
                    n.available_cpu >= cpu
                    and n.available_gpu >= gpu
                    and n.available_ram_gb >= ram_gb
                ):
                    score = (n.total_cpu - n.available_cpu + cpu) / n.total_cpu + (
                        n.total_ram_gb - n.available_ram_gb + ram_gb
                    ) / n.total_ram_gb
                    if score > best_score:
                        best, best_score = node_id, score
            if best is None:
                raise ValueError("no node fits")
            self._reserve_locked(job_id, best, cpu, gpu, ram_gb)
            return best

    def release_exact(self, job_id: str, cpu: float, gpu: int, ram_gb: float) -> None:
        """Not upstream: a release that returns all three, so a benchmark loop stays steady."""
        with self._lock:
            res = self._reservations.pop(job_id)
            node = self._nodes[res.node_id]
            node.available_cpu += cpu
            node.available_gpu += gpu
            node.available_ram_gb += ram_gb


class PlainLedger:
    """The contract's baseline: the same reserve and release with dicts and one lock and
    nothing else (no validation of ids or amounts, no idempotency, no index, no counters).

    It takes the manager's call (cores and GiB as keywords), converts to the same units,
    checks capacity and returns the same Reservation value the manager returns.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[str, list[int]] = {}
        self._held: dict[str, Reservation_] = {}

    def register_node(self, node_id: str, *, cpu: int, ram_gb: int) -> None:
        self._free[node_id] = [cpu * 1000, ram_gb * 1024]

    def reserve(self, job_id: str, node_id: str, *, cpu: int = 0, ram_gb: int = 0) -> Reservation_:
        with self._lock:
            free = self._free[node_id]
            rc, rr = cpu * 1000, ram_gb * 1024
            if rc > free[0] or rr > free[1]:
                raise ValueError(f"node {node_id} is full")
            free[0] -= rc
            free[1] -= rr
            res = self._held[job_id] = Reservation_(job_id, node_id, Resources(rc, rr))
            return res

    def release(self, job_id: str) -> Reservation_ | None:
        with self._lock:
            res = self._held.pop(job_id, None)
            if res is not None:
                free = self._free[res.node_id]
                free[0] += res.resources.cpu_milli
                free[1] += res.resources.ram_mib
            return res
