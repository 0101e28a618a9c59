"""Log correlation: trace_id/span_id on records, including in exception handlers."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from ffrtmp_infra.tracing import (
    TraceContextLogFilter,
    TracingMiddleware,
    install_log_correlation,
)


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def handler() -> Iterator[ListHandler]:
    handler = ListHandler()
    handler.addFilter(TraceContextLogFilter())
    logger = logging.getLogger("test.correlation")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


def test_filter_adds_ids_of_the_current_span(
    provider: TracerProvider, handler: ListHandler
) -> None:
    logger = logging.getLogger("test.correlation")
    with provider.get_tracer("t").start_as_current_span("work") as span:
        logger.info("inside")
    logger.info("outside")
    inside, outside = handler.records
    sc = span.get_span_context()
    assert inside.trace_id == format(sc.trace_id, "032x")  # type: ignore[attr-defined]
    assert inside.span_id == format(sc.span_id, "016x")  # type: ignore[attr-defined]
    assert inside.trace_sampled is True  # type: ignore[attr-defined]
    assert outside.trace_id == "0" * 32  # type: ignore[attr-defined]
    assert handler.format(inside)  # formats fine with the extra fields present


def test_ids_are_right_in_an_app_exception_handler(
    provider: TracerProvider, exporter: InMemorySpanExporter, handler: ListHandler
) -> None:
    logger = logging.getLogger("test.correlation")

    async def boom(request: Request) -> Response:
        raise RuntimeError("kaboom")

    async def on_error(request: Request, exc: Exception) -> Response:
        # Starlette runs this in ServerErrorMiddleware, outside the tracing middleware.
        logger.error("request failed", exc_info=exc)
        return PlainTextResponse("sorry", status_code=500)

    app = Starlette(routes=[Route("/boom", boom)], exception_handlers={Exception: on_error})
    app.add_middleware(TracingMiddleware, tracer_provider=provider)
    TestClient(app, raise_server_exceptions=False).get("/boom")
    [span] = exporter.get_finished_spans()
    [record] = handler.records
    assert record.trace_id == format(span.context.trace_id, "032x")  # type: ignore[attr-defined]
    assert record.span_id == format(span.context.span_id, "016x")  # type: ignore[attr-defined]


def test_install_log_correlation_covers_every_logger_through_root_handlers(
    provider: TracerProvider,
) -> None:
    root = logging.getLogger()
    handler = ListHandler()
    root.addHandler(handler)
    try:
        installed = install_log_correlation()
        assert install_log_correlation() is installed  # idempotent
        assert handler.filters == [installed]
        logger = logging.getLogger("any.where.at.all")
        logger.setLevel(logging.INFO)
        with provider.get_tracer("t").start_as_current_span("work") as span:
            logger.info("inside")
            logger.info("caller's own", extra={"trace_id": "mine"})  # never a KeyError
        inside, own = handler.records
        assert inside.trace_id == format(span.get_span_context().trace_id, "032x")  # type: ignore[attr-defined]
        assert own.trace_id == "mine"  # type: ignore[attr-defined]
    finally:
        root.removeHandler(handler)
        for other in root.handlers:  # pytest's own capture handlers
            other.removeFilter(installed)


def test_install_before_logging_is_configured_warns(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        install_log_correlation()  # the warning goes to logging's last-resort stderr handler
    finally:
        root.handlers[:] = saved
    assert "root logger has no handlers yet" in capsys.readouterr().err


def test_trace_is_unaffected(provider: TracerProvider) -> None:
    assert trace.get_current_span() is trace.INVALID_SPAN
