"""Mixed-case propagators (AWS X-Ray) continue the caller's trace: ASGI, WSGI, extract_headers.

With the real ``opentelemetry-propagator-aws-xray`` as the global propagator. It asks for
``X-Amzn-Trace-Id`` while servers hand headers over lowercased (issue 13, item 1): the
span used to become a new root.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.propagate import get_global_textmap, set_global_textmap
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from ffrtmp_infra.tracing import TracingMiddleware, WSGITracingMiddleware, extract_headers

TRACE_ID = "5759e988bd862e3fe1be46a994272793"
PARENT_ID = "53995c3f42cd8ad8"
XRAY = f"Root=1-{TRACE_ID[:8]}-{TRACE_ID[8:]};Parent={PARENT_ID};Sampled=1"


@pytest.fixture(autouse=True)
def xray_propagator() -> Iterator[None]:
    previous = get_global_textmap()
    set_global_textmap(AwsXRayPropagator())
    yield
    set_global_textmap(previous)


def assert_continues_the_caller(exporter: InMemorySpanExporter) -> None:
    [span] = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert span.parent.is_remote


@pytest.mark.parametrize("header", ["X-Amzn-Trace-Id", "x-amzn-trace-id", "X-AMZN-TRACE-ID"])
def test_asgi_continues_an_xray_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter, header: str
) -> None:
    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = TracingMiddleware(Starlette(routes=[Route("/", ok)]), tracer_provider=provider)
    with TestClient(app) as client:
        response = client.get("/", headers={header: XRAY})
    assert response.status_code == 200
    assert_continues_the_caller(exporter)


@pytest.mark.parametrize("header", ["X-Amzn-Trace-Id", "x-amzn-trace-id"])
def test_wsgi_continues_an_xray_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter, header: str
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "HTTP_" + header.upper().replace("-", "_"): XRAY,
    }
    middleware = WSGITracingMiddleware(app, tracer_provider=provider)
    body = middleware(environ, lambda status, headers, exc_info=None: None)
    assert b"".join(body) == b"ok"
    close = getattr(body, "close", None)
    if close is not None:
        close()
    assert_continues_the_caller(exporter)


@pytest.mark.parametrize("header", ["X-Amzn-Trace-Id", "x-amzn-trace-id", "X-AMZN-Trace-ID"])
def test_extract_headers_ignores_case(header: str) -> None:
    context = trace.get_current_span(extract_headers({header: XRAY})).get_span_context()
    assert format(context.trace_id, "032x") == TRACE_ID
    assert format(context.span_id, "016x") == PARENT_ID
