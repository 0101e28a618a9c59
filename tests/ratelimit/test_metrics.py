"""Decisions counted through the OpenTelemetry metrics API (real SDK, in-memory reader)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from ffrtmp_infra.ratelimit import Limiter, RateLimitMiddleware, instrument, uninstrument
from tests.ratelimit.apps import starlette_app
from tests.ratelimit.conftest import FakeClock


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrument(meter_provider=provider)
    yield reader
    uninstrument()
    provider.shutdown()


def counts(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, Any], ...], int]:
    data = reader.get_metrics_data()
    found: dict[tuple[tuple[str, Any], ...], int] = {}
    if data is None:  # nothing was ever recorded
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:  # type: ignore[union-attr]
                        found[tuple(sorted(point.attributes.items()))] = point.value  # type: ignore[union-attr]
    return found


def run(app: Any, n: int) -> list[int]:
    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [(await client.get("/")).status_code for _ in range(n)]

    return asyncio.run(go())


def test_allowed_and_rejected_decisions_are_counted_by_policy(
    reader: InMemoryMetricReader,
) -> None:
    app = starlette_app()
    app.add_middleware(RateLimitMiddleware, limiter=Limiter(1, 2, clock=FakeClock(), name="api"))
    assert run(app, 3) == [200, 200, 429]
    assert counts(reader, "ffrtmp.ratelimit.decisions") == {
        (("ratelimit.outcome", "allowed"), ("ratelimit.policy", "api")): 2,
        (("ratelimit.outcome", "rejected"), ("ratelimit.policy", "api")): 1,
    }


def test_dry_run_counts_would_be_rejections_as_shadowed(reader: InMemoryMetricReader) -> None:
    app = starlette_app()
    limiter = Limiter(1, 1, clock=FakeClock(), name="api")
    app.add_middleware(RateLimitMiddleware, limiter=limiter, dry_run=True)
    assert run(app, 2) == [200, 200]
    assert (
        counts(reader, "ffrtmp.ratelimit.decisions")[
            (("ratelimit.outcome", "shadowed"), ("ratelimit.policy", "api"))
        ]
        == 1
    )


@pytest.mark.redis
def test_storage_errors_and_degraded_decisions_are_counted(
    reader: InMemoryMetricReader, private_redis: Any
) -> None:
    limiter = Limiter(1, 1, storage=private_redis.url, name="api", recovery_interval=60)
    private_redis.kill()
    for _ in range(3):
        assert limiter.hit("k").storage_error
    attrs = (("ratelimit.failure", "open"), ("ratelimit.policy", "api"))
    assert counts(reader, "ffrtmp.ratelimit.storage_errors") == {attrs: 1}
    assert counts(reader, "ffrtmp.ratelimit.degraded_decisions") == {attrs: 3}


def test_nothing_is_counted_until_instrumented() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    app = starlette_app()
    app.add_middleware(RateLimitMiddleware, limiter=Limiter(1, 2, clock=FakeClock()))
    run(app, 2)
    assert counts(reader, "ffrtmp.ratelimit.decisions") == {}
    provider.shutdown()
