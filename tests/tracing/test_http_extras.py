"""The rest of contrib's behaviours (issue 13 item 1): ``suppress_http_instrumentation()``,
``user_agent.synthetic.type``, the global response propagator, and WSGI environs that
break the specification."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import metrics
from opentelemetry.instrumentation.propagators import (
    TraceResponsePropagator,
    set_global_response_propagator,
)
from opentelemetry.instrumentation.utils import (
    suppress_http_instrumentation,
    suppress_instrumentation,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from ffrtmp_infra.tracing import TracingMiddleware, WSGITracingMiddleware
from tests.tracing.conftest import ratio_provider


async def item(request: Request) -> Response:
    return PlainTextResponse("ok", headers={"X-Own": "1"})


def asgi_app(provider: TracerProvider) -> Any:
    return TracingMiddleware(
        Starlette(routes=[Route("/items/{i}", item)]), tracer_provider=provider
    )


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"ok"])


def wsgi_client(provider: TracerProvider, **kwargs: Any) -> httpx.Client:
    app = WSGITracingMiddleware(wsgi_app, tracer_provider=provider, **kwargs)
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver")


@pytest.fixture
def reader() -> InMemoryMetricReader:
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def measured(reader: InMemoryMetricReader) -> int:
    data = reader.get_metrics_data()
    if data is None:
        return 0
    return sum(
        p.count  # type: ignore[union-attr]
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        if m.name == "http.server.request.duration"
        for p in m.data.data_points
    )


# --- suppression -----------------------------------------------------------------


@pytest.mark.parametrize("suppress", [suppress_http_instrumentation, suppress_instrumentation])
def test_suppressed_requests_make_no_span_and_no_measurement(
    suppress: Any,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    reader: InMemoryMetricReader,
) -> None:
    # httpx's ASGI/WSGI transports run the app in the caller's context, as an
    # instrumented in-process client would.
    asgi = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi_app(provider)), base_url="http://testserver"
    )

    async def call_asgi() -> int:
        async with asgi:
            return (await asgi.get("/items/1")).status_code

    import asyncio

    with suppress():
        assert asyncio.run(call_asgi()) == 200
        assert wsgi_client(provider).get("/").status_code == 200
    assert exporter.get_finished_spans() == ()
    assert measured(reader) == 0
    assert wsgi_client(provider).get("/").status_code == 200  # not suppressed any more
    assert len(exporter.get_finished_spans()) == 1
    assert measured(reader) == 1


# --- user_agent.synthetic.type -----------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("Mozilla/5.0 (compatible; bingbot/2.0)", "bot"),
        ("AlwaysOn", "test"),
        ("Mozilla/5.0 AlwaysOn Googlebot", "test"),  # test wins, as in contrib
        ("curl/8.5.0", None),
    ],
)
def test_synthetic_user_agents_are_typed(
    provider: TracerProvider, exporter: InMemorySpanExporter, user_agent: str, expected: str | None
) -> None:
    TestClient(asgi_app(provider)).get("/items/1", headers={"User-Agent": user_agent})
    wsgi_client(provider).get("/", headers={"User-Agent": user_agent})
    for span in exporter.get_finished_spans():
        assert span.attributes is not None
        assert span.attributes.get("user_agent.synthetic.type") == expected
        assert span.attributes["user_agent.original"] == user_agent


# --- the global response propagator ---------------------------------------------------


@pytest.fixture
def traceresponse() -> Iterator[None]:
    set_global_response_propagator(TraceResponsePropagator())
    yield
    set_global_response_propagator(None)  # type: ignore[arg-type]


def traceresponse_of(span: Any) -> str:
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


@pytest.mark.usefixtures("traceresponse")
def test_the_response_propagator_adds_its_headers(exporter: InMemorySpanExporter) -> None:
    for ratio in (1.0, 0.0):
        provider = ratio_provider(ratio, exporter)
        asgi = TestClient(asgi_app(provider)).get("/items/1")
        wsgi = wsgi_client(provider).get("/")
        for response in (asgi, wsgi):
            assert response.headers["traceresponse"].startswith("00-")
            assert response.headers["access-control-expose-headers"] == "traceresponse"
        if ratio:
            asgi_span, wsgi_span = exporter.get_finished_spans()
            assert asgi.headers["traceresponse"] == traceresponse_of(asgi_span)
            assert wsgi.headers["traceresponse"] == traceresponse_of(wsgi_span)
            assert asgi.headers["x-own"] == "1"  # the app's headers stay
        else:  # unsampled: the ids of the request's non-recording span, not sampled
            for response in (asgi, wsgi):
                flags = int(response.headers["traceresponse"].rsplit("-", 1)[1], 16)
                assert flags & 1 == 0


def test_without_a_response_propagator_no_header_is_added(provider: TracerProvider) -> None:
    assert "traceresponse" not in TestClient(asgi_app(provider)).get("/items/1").headers
    assert "traceresponse" not in wsgi_client(provider).get("/").headers


# --- WSGI environs that break the specification ----------------------------------------

BASE: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/jobs/1",
    "SERVER_NAME": "example.com",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "wsgi.url_scheme": "http",
}


@pytest.mark.parametrize(
    "broken",
    [
        {"REQUEST_METHOD": None},
        {"REQUEST_METHOD": b"GET"},
        {"PATH_INFO": b"/jobs/1"},
        {"PATH_INFO": None, "SCRIPT_NAME": None},
        {"QUERY_STRING": b"token=s3cret"},
        {"SERVER_PORT": "eighty", "HTTP_HOST": "[::1"},
        {"SERVER_PORT": 80, "REMOTE_PORT": None, "REMOTE_ADDR": 1234},
        {"SERVER_PROTOCOL": None, "wsgi.url_scheme": None},
        {"HTTP_USER_AGENT": b"Googlebot"},
        {"CONTENT_LENGTH": "lots"},
    ],
    ids=repr,
)
@pytest.mark.parametrize("status", ["200 OK", b"200 OK", "OK", None])
def test_a_malformed_environ_never_raises_out_nor_loses_the_span(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    reader: InMemoryMetricReader,
    broken: dict[str, Any],
    status: Any,
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = WSGITracingMiddleware(app, tracer_provider=provider, excluded_urls=())
    environ = {**BASE, **broken}
    body = middleware(environ, lambda status, headers, exc_info=None: None)
    assert b"".join(body) == b"ok"
    body.close()  # type: ignore[attr-defined]
    [span] = exporter.get_finished_spans()
    assert span.end_time is not None
    assert measured(reader) == 1
