"""Ratio sampling decided by the middleware agrees with the SDK's sampler, request by request."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from ffrtmp_infra.tracing import (
    TracingConfig,
    TracingMiddleware,
    WSGITracingMiddleware,
    build_tracer_provider,
)
from ffrtmp_infra.tracing._server import SamplingIdGenerator

LIMIT = TraceIdRatioBased.TRACE_ID_LIMIT
REQUESTS = 1000


def provider_at(ratio: float, exporter: InMemorySpanExporter) -> Any:
    return build_tracer_provider(
        TracingConfig(sample_ratio=ratio), span_processor=SimpleSpanProcessor(exporter)
    )


def test_asgi_ratio_sampling_is_exact_and_consistent() -> None:
    exporter = InMemorySpanExporter()
    provider = provider_at(0.5, exporter)
    seen: list[trace.SpanContext] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(trace.get_current_span().get_span_context())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = TracingMiddleware(app, tracer_provider=provider, excluded_urls=())

    async def send(message: Any) -> None:
        pass

    async def run_all() -> None:
        for _ in range(REQUESTS):
            scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
            await middleware(scope, None, send)  # type: ignore[arg-type]

    asyncio.run(run_all())
    bound = TraceIdRatioBased.get_bound_for_rate(0.5)
    finished = {s.context.trace_id: s for s in exporter.get_finished_spans()}
    # The sampler's rule holds for every request, recorded or not...
    for context in seen:
        assert context.is_valid
        expected = (context.trace_id & LIMIT) < bound
        assert context.trace_flags.sampled is expected
        assert (context.trace_id in finished) is expected
        if expected:  # ...and the app saw the very span that was exported.
            assert finished[context.trace_id].context.span_id == context.span_id
    # 5 standard deviations of a binomial(1000, 0.5): fails about once in 3 million runs.
    assert 420 <= len(finished) <= 580
    assert len({c.trace_id for c in seen}) == REQUESTS


def test_wsgi_uses_the_same_decision(exporter: InMemorySpanExporter) -> None:
    provider = provider_at(0.5, exporter)
    seen: list[trace.SpanContext] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(trace.get_current_span().get_span_context())
        start_response("204 No Content", [])
        return []

    middleware = WSGITracingMiddleware(app, tracer_provider=provider, excluded_urls=())
    for _ in range(200):
        body = middleware({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, lambda *a: None)
        close = getattr(body, "close", None)  # unsampled: the app's own list comes back
        if close is not None:
            close()
    bound = TraceIdRatioBased.get_bound_for_rate(0.5)
    recorded = {s.context.trace_id for s in exporter.get_finished_spans()}
    for context in seen:
        assert ((context.trace_id & LIMIT) < bound) is context.trace_flags.sampled
        assert (context.trace_id in recorded) is context.trace_flags.sampled


def test_a_primed_id_is_used_once(exporter: InMemorySpanExporter) -> None:
    provider = provider_at(1.0, exporter)
    generator = provider.id_generator
    assert isinstance(generator, SamplingIdGenerator)
    generator.prime(0x1234)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("first") as first:
        pass
    with tracer.start_as_current_span("second") as second:
        pass
    assert first.get_span_context().trace_id == 0x1234
    assert second.get_span_context().trace_id != 0x1234
