"""``TracingHandle.shutdown(timeout)`` is bounded whatever the collector does, on both protocols.

Each collector is real: a port that refuses, a server that accepts and stays silent, a
real OTLP server that answers late, and a TLS server where plaintext was expected. The
``< timeout + 1 s`` assertions are the promise under test (issue 18: a Kubernetes grace
period must not run out), not a benchmark: without the bound these take 8 to 10 s.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import pytest
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from ffrtmp_infra.tracing import TracingConfig, TracingMiddleware, init_tracer
from tests.support.otlp import OTLPReceiver
from tests.tracing.collectors import CASES, PROTOCOLS, misbehaving_collector

TIMEOUT = 3.0
MARGIN = 1.0  # the documented promise: shutdown returns within timeout + 1 s


def _tracing_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("ffrtmp_infra.tracing") and r.levelno >= logging.WARNING
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", CASES)
def test_shutdown_returns_within_its_timeout(
    case: str, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    with misbehaving_collector(case, protocol) as address:
        handle = init_tracer(
            TracingConfig(
                service_name="bounded",
                protocol=protocol,
                otlp_endpoint=address,
                export_timeout=10,  # longer than the shutdown bound: the exporter would wait
            )
        )
        trace.get_tracer("test").start_span("dropped").end()
        with caplog.at_level(logging.INFO):
            started = time.monotonic()
            handle.shutdown(timeout=TIMEOUT)
            elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + MARGIN, f"{case}/{protocol}: shutdown took {elapsed:.2f}s"
    warnings = _tracing_warnings(caplog)
    if elapsed >= TIMEOUT:  # it gave up (older exporters fail fast on refused/TLS: no warning)
        [warning] = warnings  # one line, naming the collector
        assert f"within {TIMEOUT}s" in warning
        assert address in warning
        assert "dropping" in warning
    else:
        assert warnings == []
    assert "already shutdown" not in caplog.text


async def _item(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", CASES)
def test_shutdown_with_pending_metrics_returns_within_its_timeout(
    case: str, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A request through the middleware leaves a span and HTTP metrics to flush: both
    # providers shut down side by side within the one bound, with one warning line.
    with misbehaving_collector(case, protocol) as address:
        handle = init_tracer(
            TracingConfig(protocol=protocol, otlp_endpoint=address, export_timeout=10)
        )
        app = TracingMiddleware(Starlette(routes=[Route("/item", _item)]))
        assert TestClient(app).get("/item").status_code == 200
        with caplog.at_level(logging.INFO):
            started = time.monotonic()
            handle.shutdown(timeout=TIMEOUT)
            elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + MARGIN, f"{case}/{protocol}: shutdown took {elapsed:.2f}s"
    warnings = _tracing_warnings(caplog)
    if elapsed >= TIMEOUT:
        [warning] = warnings
        assert "metrics" in warning or "spans" in warning
        assert f"within {TIMEOUT}s" in warning
        assert address in warning
    else:
        assert warnings == []


@pytest.mark.timeout(180)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_abandoned_shutdown_stops_the_exporter_once(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The SDK logs "Exporter already shutdown, ignoring call" when stopped twice; the
    # abandoned shutdown thread is waited for here, so its own log lines are seen too.
    with misbehaving_collector("silent", protocol) as address:
        handle = init_tracer(
            TracingConfig(protocol=protocol, otlp_endpoint=address, export_timeout=1.5)
        )
        trace.get_tracer("test").start_span("dropped").end()
        with caplog.at_level(logging.DEBUG):
            before = set(threading.enumerate())  # earlier tests' abandoned threads aside
            handle.shutdown(timeout=0.2)
            [stopper] = [
                t for t in set(threading.enumerate()) - before if t.name.startswith("ffrtmp")
            ]
            stopper.join(timeout=100)  # OTel 1.27's gRPC exporter retries for up to 64 s
            assert not stopper.is_alive()
    assert len(_tracing_warnings(caplog)) == 1
    assert "already shutdown" not in caplog.text.lower()


def test_a_healthy_collector_gets_every_span_and_no_warning(
    otlp_receiver: OTLPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    handle = init_tracer(TracingConfig(otlp_endpoint=otlp_receiver.endpoint, export_timeout=5))
    tracer = trace.get_tracer("test")
    for i in range(50):
        tracer.start_span(f"span-{i}").end()
    with caplog.at_level(logging.DEBUG):
        handle.shutdown(timeout=TIMEOUT)
    assert len(otlp_receiver.wait_for_spans(50)) == 50
    assert _tracing_warnings(caplog) == []


EXIT_WITHOUT_SHUTDOWN = """
import logging, sys
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from ffrtmp_infra.tracing import TracingConfig, TracingMiddleware, init_tracer
logging.basicConfig(level=logging.WARNING)
init_tracer(TracingConfig(protocol=sys.argv[1], otlp_endpoint=sys.argv[2], export_timeout=30))
trace.get_tracer("child").start_span("lost.at.exit").end()
print("exiting", flush=True)  # no shutdown() call: the exit hook must be bounded itself
"""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_exit_without_shutdown_is_bounded_too(protocol: str) -> None:
    # The SDK's own exit hook would flush for the whole 30-s export timeout;
    # init_tracer turns it off and registers the handle's bounded shutdown.
    with misbehaving_collector("silent", protocol) as address:
        child = subprocess.Popen(
            [sys.executable, "-c", EXIT_WITHOUT_SHUTDOWN, protocol, address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "exiting\n"
            started = time.monotonic()
            _, stderr = child.communicate(timeout=25)
            elapsed = time.monotonic() - started
        finally:
            child.kill()
    assert child.returncode == 0, stderr
    # the exit also tears the interpreter down (gRPC's threads, imports): one more second
    assert elapsed < 3.0 + MARGIN + 1.0, f"exit took {elapsed:.2f}s (30 s unbounded)"
    assert stderr.count("spans were not exported within 3.0s") == 1, stderr
    assert "already shutdown" not in stderr.lower()
