"""Concurrent requests under real uvicorn keep their own trace context."""

from __future__ import annotations

import asyncio
import secrets

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ffrtmp_infra.tracing import TracingMiddleware
from tests.support.servers import serve_asgi


def test_concurrent_requests_do_not_share_spans(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async def slow(request: Request) -> Response:
        before = trace.get_current_span().get_span_context()
        await asyncio.sleep(0.02)  # let the other requests interleave
        after = trace.get_current_span().get_span_context()
        assert before == after
        return JSONResponse({"trace_id": format(after.trace_id, "032x")})

    app = Starlette(routes=[Route("/work/{n}", slow)])
    app.add_middleware(TracingMiddleware, tracer_provider=provider)
    parents = {n: (secrets.token_hex(16), secrets.token_hex(8)) for n in range(20)}

    async def fire(base: str) -> dict[int, str]:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:

            async def one(n: int) -> tuple[int, str]:
                trace_id, span_id = parents[n]
                reply = await client.get(
                    f"/work/{n}", headers={"traceparent": f"00-{trace_id}-{span_id}-01"}
                )
                return n, reply.json()["trace_id"]

            return dict(await asyncio.gather(*(one(n) for n in parents)))

    with serve_asgi(app) as base:
        seen = asyncio.run(fire(base))
    assert seen == {n: trace_id for n, (trace_id, _) in parents.items()}
    spans = exporter.get_finished_spans()
    assert len(spans) == 20
    for span in spans:
        n = int(str((span.attributes or {})["url.path"]).rsplit("/", 1)[1])
        trace_id, span_id = parents[n]
        assert format(span.context.trace_id, "032x") == trace_id
        assert span.parent is not None
        assert format(span.parent.span_id, "016x") == span_id
        assert span.name == "GET /work/{n}"
