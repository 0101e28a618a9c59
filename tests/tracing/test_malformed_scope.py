"""Scopes and messages that break the ASGI spec never raise out of the middleware or lose
a started span (issue 13, item 1: contrib's ASGI suite tolerates both)."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ffrtmp_infra.tracing import TracingMiddleware


def scope(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "http", "method": "GET", "path": "/items"}
    base.update(query_string=b"", headers=[(b"host", b"127.0.0.1")])
    base.update(overrides)
    return base


def call(middleware: TracingMiddleware, request_scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(middleware(request_scope, receive, send))
    return sent


def responder(status: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_a_str_query_string_is_recorded_not_raised(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    middleware = TracingMiddleware(responder(200), tracer_provider=provider)
    sent = call(middleware, scope(query_string="a=1&token=secret"))
    assert sent[0]["status"] == 200
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["url.query"] == "a=1&token=REDACTED"
    assert span.attributes["http.response.status_code"] == 200


def test_a_non_int_status_still_ends_the_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    for status in ("200", "OK", None, 200.0):
        exporter.clear()
        middleware = TracingMiddleware(responder(status), tracer_provider=provider)
        sent = call(middleware, scope())
        assert sent[0]["status"] == status  # passed on untouched: the server decides
        [span] = exporter.get_finished_spans()
        assert span.end_time is not None
        assert span.attributes is not None
        expected = 200 if status in ("200", 200.0) else None
        assert span.attributes.get("http.response.status_code") == expected
