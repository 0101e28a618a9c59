"""OpenTelemetry metrics: observable instruments read at collection time.

Nothing is recorded on the reserve/release path; the callbacks read one snapshot
per collection (cached for a moment, since each instrument has its own callback).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from .. import __version__
from ._errors import ResourceError
from ._types import Snapshot

if TYPE_CHECKING:
    from ._manager import ResourceManager

_CACHE_SECONDS = 0.5


class ResourceMetrics:
    """Registers the gauges and counters of one manager (held by weak reference)."""

    def __init__(self, manager: ResourceManager, meter_provider: Any = None) -> None:
        self._manager = weakref.ref(manager)
        self._cached: tuple[float, Snapshot] | None = None
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("ffrtmp_infra.resources", __version__)
        meter.create_observable_gauge(
            "ffrtmp.resources.utilization",
            callbacks=[self._utilization],
            unit="1",
            description="Used / allocatable per node and resource (0..1, >1 after a shrink)",
        )
        meter.create_observable_up_down_counter(
            "ffrtmp.resources.allocatable",
            callbacks=[self._allocatable],
            unit="{unit}",
            description="Allocatable amount per node and resource (cpu in millicores, ram in MiB)",
        )
        meter.create_observable_up_down_counter(
            "ffrtmp.resources.reservations.active",
            callbacks=[self._active],
            unit="{reservation}",
            description="Live reservations per node",
        )
        meter.create_observable_counter(
            "ffrtmp.resources.reservations",
            callbacks=[self._counters],
            unit="{reservation}",
            description="Reservations by outcome: reserved, released, rejected, evicted, expired",
        )

    def _snapshot(self) -> Snapshot | None:
        manager = self._manager()
        if manager is None or manager.closed:
            return None
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < _CACHE_SECONDS:
            return self._cached[1]
        try:
            snapshot = manager.snapshot()
        except ResourceError:
            # Redis down, or an asyncio-only backend that cannot be read from the
            # exporter's thread: skip this collection rather than raise inside the SDK.
            return None
        self._cached = (now, snapshot)
        return snapshot

    def _utilization(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._snapshot()
        if snapshot is None:
            return
        for node in snapshot.nodes.values():
            alloc, used = node.allocatable, node.used
            pairs = [
                ("cpu", used.cpu_milli, alloc.cpu_milli),
                ("ram", used.ram_mib, alloc.ram_mib),
                ("gpu", used.gpu, alloc.gpu),
            ] + [(k, used.extended.get(k, 0), v) for k, v in alloc.extended.items()]
            for name, u, a in pairs:
                if a > 0:
                    yield Observation(u / a, {"node_id": node.node_id, "resource": name})

    def _allocatable(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._snapshot()
        if snapshot is None:
            return
        for node in snapshot.nodes.values():
            alloc = node.allocatable
            pairs = [("cpu", alloc.cpu_milli), ("ram", alloc.ram_mib), ("gpu", alloc.gpu)]
            for name, amount in pairs + list(alloc.extended.items()):
                yield Observation(amount, {"node_id": node.node_id, "resource": name})

    def _active(self, options: CallbackOptions) -> Iterable[Observation]:
        snapshot = self._snapshot()
        if snapshot is None:
            return
        for node in snapshot.nodes.values():
            yield Observation(node.reservations, {"node_id": node.node_id})

    def _counters(self, options: CallbackOptions) -> Iterable[Observation]:
        manager = self._manager()
        if manager is None or manager.closed:
            return
        try:
            counters = manager.counters()
        except ResourceError:
            return
        for outcome, count in counters.items():
            yield Observation(count, {"outcome": outcome})
