"""OpenTelemetry metrics: utilisation per node and resource, reservation counts."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from ffrtmp_infra.resources import InsufficientResourcesError, RedisBackend, ResourceManager
from tests.support.redis_server import RedisServer

from .conftest import MakeManager


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    if data is None:  # nothing observed at all
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out[metric.name] = list(metric.data.data_points)
    return out


def test_utilisation_and_reservation_counts(make_manager: MakeManager) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    manager = make_manager(meter_provider=provider)
    manager.register_node("n1", cpu=4, ram_gb=8, gpu=2, extended={"nvenc": 4})
    manager.reserve("a", "n1", cpu=1, ram_gb=4, gpu=1, extended={"nvenc": 1})
    manager.reserve("b", "n1", cpu=2)
    manager.release("b")
    with pytest.raises(InsufficientResourcesError):
        manager.reserve("c", "n1", cpu=100)
    points = _points(reader)
    util = {
        (p.attributes["node_id"], p.attributes["resource"]): p.value
        for p in points["ffrtmp.resources.utilization"]
    }
    assert util == {
        ("n1", "cpu"): 0.25,
        ("n1", "ram"): 0.5,
        ("n1", "gpu"): 0.5,
        ("n1", "nvenc"): 0.25,
    }
    counts = {p.attributes["outcome"]: p.value for p in points["ffrtmp.resources.reservations"]}
    assert counts == {"reserved": 2, "released": 1, "rejected": 1, "evicted": 0, "expired": 0}
    active = {
        p.attributes["node_id"]: p.value for p in points["ffrtmp.resources.reservations.active"]
    }
    assert active == {"n1": 1}
    alloc = {p.attributes["resource"]: p.value for p in points["ffrtmp.resources.allocatable"]}
    assert alloc == {"cpu": 4000, "ram": 8192, "gpu": 2, "nvenc": 4}
    manager.close()
    provider.shutdown()


@pytest.mark.redis
def test_metrics_skip_a_collection_while_redis_is_down(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    manager = ResourceManager(RedisBackend(private_redis.url, prefix="m"), meter_provider=provider)
    manager.register_node("n1", cpu=4)
    assert "ffrtmp.resources.utilization" in _points(reader)
    private_redis.kill()
    time.sleep(0.6)  # past the snapshot cache
    with caplog.at_level(logging.WARNING):
        points = _points(reader)
    assert all(not p for p in points.values())  # nothing observed...
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # ...nothing raised
    manager.close()
    provider.shutdown()
