"""A traced app keeps serving while its collector is down, silent or late, and says so rarely.

The app runs under real uvicorn, exports spans and HTTP metrics over both protocols to a
real misbehaving collector (see ``collectors.py``) every 100 ms, and is queried for a few
seconds; then its shutdown is bounded. The
latency bound is the promise under test (export runs in the batch thread, never on a
request), set far above a normal request on a loaded machine.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ffrtmp_infra.tracing import TracingConfig, TracingMiddleware, init_tracer
from ffrtmp_infra.tracing._logging import ExportLogLimiter
from tests.support.servers import serve_asgi
from tests.tracing.collectors import PROTOCOLS, misbehaving_collector

INTERVAL = 2.0  # export_log_interval for these tests
DURATION = 5.0  # seconds of traffic
LATENCY_BOUND = 1.0  # seconds: a request is never held up by the exporter


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.path_params["item_id"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", ["refused", "silent", "slow"])
def test_the_app_serves_and_export_errors_are_rate_limited(
    case: str, protocol: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
    app = TracingMiddleware(Starlette(routes=[Route("/items/{item_id}", item)]))
    with misbehaving_collector(case, protocol) as address:
        handle = init_tracer(
            TracingConfig(
                protocol=protocol,
                otlp_endpoint=address,
                export_timeout=1,
                export_log_interval=INTERVAL,
                metric_export_interval=0.1,  # the HTTP metrics fail to export all along too
            )
        )
        latencies: list[float] = []
        with caplog.at_level(logging.WARNING), serve_asgi(app) as url, httpx.Client() as http:
            started = time.monotonic()
            while time.monotonic() - started < DURATION:
                sent = time.monotonic()
                response = http.get(f"{url}/items/{len(latencies)}")
                latencies.append(time.monotonic() - sent)
                assert response.status_code == 200
                time.sleep(0.02)
            elapsed = time.monotonic() - started
        stopping = time.monotonic()
        handle.shutdown(timeout=1)
        stopped_in = time.monotonic() - stopping
    assert stopped_in < 1 + 1, f"{case}/{protocol}: shutdown took {stopped_in:.2f}s"
    assert max(latencies) < LATENCY_BOUND, f"{case}/{protocol}: slowest {max(latencies):.2f}s"
    # The export path's loggers only: other SDK warnings (at OpenTelemetry 1.27, one per
    # duplicate instrument that earlier tests' proxy meters realise on the new provider)
    # are not export errors.
    exporter_lines = Counter(
        (r.name, r.levelno)
        for r in caplog.records
        if r.name.startswith("opentelemetry.")
        and ".export" in r.name
        and r.levelno >= logging.WARNING
    )
    if case == "refused":  # a line per failed export and retry, several a second unlimited
        assert exporter_lines, "the failing exports are reported"
    allowed = 1 + int(elapsed // INTERVAL)
    assert max(exporter_lines.values(), default=0) <= allowed, exporter_lines


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _record(
    name: str, level: int = logging.ERROR, msg: str = "Failed to export %s"
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, ("batch",), None)


def test_the_limiter_passes_one_line_per_interval_and_counts_the_rest() -> None:
    clock = FakeClock()
    limiter = ExportLogLimiter(60.0, clock=clock)
    first = _record("opentelemetry.exporter")
    assert limiter.filter(first)
    assert not any(limiter.filter(_record("opentelemetry.exporter")) for _ in range(5))
    # another logger or level has its own allowance
    assert limiter.filter(_record("opentelemetry.exporter", logging.WARNING))
    assert limiter.filter(_record("opentelemetry.sdk"))
    clock.now += 59.9
    assert not limiter.filter(_record("opentelemetry.exporter"))
    clock.now += 0.1
    later = _record("opentelemetry.exporter")
    assert limiter.filter(later)
    assert later.getMessage() == (
        "Failed to export batch (6 similar lines suppressed in the last 60s)"
    )


def test_interval_zero_logs_everything() -> None:
    limiter = ExportLogLimiter(0.0, clock=FakeClock())
    assert all(limiter.filter(_record("opentelemetry.exporter")) for _ in range(5))


@pytest.mark.parametrize("bad", [-1, float("inf"), float("nan"), "60", True])
def test_a_bad_interval_fails_at_construction(bad: object) -> None:
    from ffrtmp_infra.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="export_log_interval"):
        TracingConfig(export_log_interval=bad)  # type: ignore[arg-type]
