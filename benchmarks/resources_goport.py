"""A straight Python port of the upstream Go manager (psantana5/ffmpeg-rtmp,
``shared/pkg/resources/manager.go``): float amounts, dicts, one lock, linear scans.

It keeps upstream's behaviour, defects included (release returns only the CPU, the
duplicate check runs after the capacity checks), because it is the baseline the
benchmarks compare against. ``reserve_any_linear`` is what a scheduler on top of it
does: scan every node under the lock, score, reserve the best.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


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
