"""HTTP server metrics (stable semconv) from the ASGI and WSGI middleware.

Ported from contrib's ASGI/WSGI metric tests: exact names, units, bucket
boundaries, attributes, and counts at 0% and 100% sampling.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from ffrtmp_infra.tracing import TracingMiddleware, WSGITracingMiddleware, build_meter_provider
from ffrtmp_infra.tracing._compat import HISTOGRAM_ADVISORY, MEASUREMENT_CONTEXT
from ffrtmp_infra.tracing._metrics import DURATION_BUCKETS
from tests.tracing.conftest import ratio_provider

DURATION = "http.server.request.duration"
ACTIVE = "http.server.active_requests"
REQUEST_SIZE = "http.server.request.body.size"
RESPONSE_SIZE = "http.server.response.body.size"


@pytest.fixture
def reader() -> InMemoryMetricReader:
    """A global SDK meter provider reading into memory."""
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


@pytest.fixture(autouse=True)
def no_env_exclusions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_PYTHON_ASGI_EXCLUDED_URLS", raising=False)
    monkeypatch.delenv("OTEL_PYTHON_WSGI_EXCLUDED_URLS", raising=False)
    monkeypatch.delenv("OTEL_PYTHON_EXCLUDED_URLS", raising=False)


def collected(reader: InMemoryMetricReader) -> dict[str, Metric]:
    data = reader.get_metrics_data()
    if data is None:
        return {}
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def histogram_points(reader: InMemoryMetricReader, name: str) -> list[HistogramDataPoint]:
    points = list(collected(reader)[name].data.data_points)
    assert all(isinstance(p, HistogramDataPoint) for p in points)
    return points  # type: ignore[return-value]


def total_count(points: list[HistogramDataPoint]) -> int:
    return sum(p.count for p in points)


# --- the apps ----------------------------------------------------------------


async def item(request: Request) -> Response:
    return JSONResponse({"item": request.path_params["item_id"]})


async def boom(request: Request) -> Response:
    raise RuntimeError("kaboom")


async def busy(request: Request) -> Response:
    return PlainTextResponse("busy", status_code=503)


async def echo(request: Request) -> Response:
    return PlainTextResponse(await request.body())


async def stream(request: Request) -> Response:
    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(3):
            yield f"chunk {i}\n"  # 8 bytes each, no Content-Length

    return StreamingResponse(chunks())


async def websocket(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text("hi")
    await ws.close()


def items_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/items/{item_id}", item),
            Route("/boom", boom),
            Route("/busy", busy),
            Route("/echo", echo, methods=["POST"]),
            Route("/stream", stream),
            Route("/healthz", item),
            WebSocketRoute("/ws", websocket),
        ]
    )


def asgi_client(**middleware: Any) -> TestClient:
    app = items_app()
    app.add_middleware(TracingMiddleware, **middleware)
    return TestClient(app, raise_server_exceptions=False)


# --- the contract --------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_every_request_is_measured_at_any_sampling_ratio(
    reader: InMemoryMetricReader, exporter: InMemorySpanExporter, ratio: float
) -> None:
    client = asgi_client(tracer_provider=ratio_provider(ratio, exporter))
    requests = 7
    for i in range(requests):
        assert client.get(f"/items/{i}").status_code == 200

    assert len(exporter.get_finished_spans()) == (requests if ratio else 0)
    found = collected(reader)
    duration = found[DURATION]
    assert duration.unit == "s"
    points = histogram_points(reader, DURATION)
    assert total_count(points) == requests
    [point] = points
    assert point.attributes == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.response.status_code": 200,
        "http.route": "/items/{item_id}",
    }
    active = found[ACTIVE]
    assert active.unit == "{request}"
    assert isinstance(active.data, Sum)
    assert not active.data.is_monotonic
    [active_point] = active.data.data_points
    assert isinstance(active_point, NumberDataPoint)
    assert active_point.value == 0
    assert active_point.attributes == {"http.request.method": "GET", "url.scheme": "http"}


#: The SDK's own default histogram boundaries (what an API without bucket advice gets).
SDK_DEFAULT_BUCKETS = (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)


def test_duration_uses_the_semconv_buckets(reader: InMemoryMetricReader) -> None:
    asgi_client().get("/items/1")
    [point] = histogram_points(reader, DURATION)
    if HISTOGRAM_ADVISORY:
        assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    else:
        # An API without bucket advice (documented): the application's MeterProvider keeps
        # the SDK defaults unless it adds a View; init_tracer's own provider adds one.
        assert tuple(point.explicit_bounds) == SDK_DEFAULT_BUCKETS
    own = InMemoryMetricReader()  # build_meter_provider's View sets them on any release
    asgi_client(meter_provider=build_meter_provider(metric_reader=own)).get("/items/1")
    [point] = histogram_points(own, DURATION)
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS


def test_metrics_are_recorded_without_a_tracer_provider(reader: InMemoryMetricReader) -> None:
    client = asgi_client()
    client.get("/items/1")
    client.get("/items/2")
    assert total_count(histogram_points(reader, DURATION)) == 2


def test_active_requests_counts_the_request_in_flight(
    reader: InMemoryMetricReader, provider: TracerProvider
) -> None:
    seen: list[float] = []

    async def inside(request: Request) -> Response:
        point = collected(reader)[ACTIVE].data.data_points
        seen.extend(p.value for p in point)  # type: ignore[union-attr]
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/inside", inside)])
    app.add_middleware(TracingMiddleware, tracer_provider=provider)
    TestClient(app).get("/inside")
    assert seen == [1]
    [after] = collected(reader)[ACTIVE].data.data_points
    assert after.value == 0  # type: ignore[union-attr]


def test_an_exception_is_a_500_with_its_type_as_error_type(
    reader: InMemoryMetricReader, exporter: InMemorySpanExporter
) -> None:
    client = asgi_client(tracer_provider=ratio_provider(0.0, exporter))
    assert client.get("/boom").status_code == 500
    [point] = histogram_points(reader, DURATION)
    assert point.attributes is not None
    assert point.attributes["error.type"] == "RuntimeError"
    assert point.attributes["http.response.status_code"] == 500
    assert point.attributes["http.route"] == "/boom"


def test_a_5xx_response_has_its_status_as_error_type_and_a_4xx_none(
    reader: InMemoryMetricReader,
) -> None:
    client = asgi_client()
    client.get("/busy")
    client.get("/nowhere")
    by_status = {
        p.attributes["http.response.status_code"]: p.attributes
        for p in histogram_points(reader, DURATION)
        if p.attributes is not None
    }
    assert by_status[503]["error.type"] == "503"
    assert "error.type" not in by_status[404]
    assert "http.route" not in by_status[404]


def test_body_sizes_are_per_request(reader: InMemoryMetricReader) -> None:
    # contrib keeps the last Content-Length on the middleware and records it again
    # for a later response without one; here each response counts its own bytes.
    client = asgi_client()
    client.post("/echo", content=b"x" * 1000)
    client.get("/stream")
    requests = {
        p.attributes["http.route"]: (p.count, p.sum)
        for p in histogram_points(reader, REQUEST_SIZE)
        if p.attributes is not None
    }
    responses = {
        p.attributes["http.route"]: (p.count, p.sum)
        for p in histogram_points(reader, RESPONSE_SIZE)
        if p.attributes is not None
    }
    assert requests == {"/echo": (1, 1000)}  # a GET without Content-Length has no request size
    assert responses == {"/echo": (1, 1000), "/stream": (1, 24)}
    assert collected(reader)[REQUEST_SIZE].unit == "By"
    assert collected(reader)[RESPONSE_SIZE].unit == "By"


def test_exemplars_link_to_sampled_spans_only(
    reader: InMemoryMetricReader, exporter: InMemorySpanExporter
) -> None:
    asgi_client(tracer_provider=ratio_provider(1.0, exporter)).get("/items/1")
    [span] = exporter.get_finished_spans()
    [point] = histogram_points(reader, DURATION)
    if not MEASUREMENT_CONTEXT:
        # An SDK from before exemplars (documented): the points carry none.
        assert getattr(point, "exemplars", []) == []
        return
    exemplar_spans = {(e.trace_id, e.span_id) for e in point.exemplars}
    assert exemplar_spans == {(span.context.trace_id, span.context.span_id)}

    asgi_client(tracer_provider=ratio_provider(0.0, exporter)).get("/busy")
    unsampled = [
        p
        for p in histogram_points(reader, DURATION)
        if p.attributes and "error.type" in p.attributes
    ]
    assert [p.exemplars for p in unsampled] == [[]]


def test_websockets_and_excluded_urls_are_not_measured(
    reader: InMemoryMetricReader, provider: TracerProvider
) -> None:
    client = asgi_client(tracer_provider=provider)
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "hi"
    client.get("/healthz")
    client.get("/items/1")
    [point] = histogram_points(reader, DURATION)
    assert point.count == 1
    assert point.attributes is not None
    assert point.attributes["http.route"] == "/items/{item_id}"


def test_metrics_false_records_nothing(
    reader: InMemoryMetricReader, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    asgi_client(tracer_provider=provider, metrics=False).get("/items/1")
    assert len(exporter.get_finished_spans()) == 1
    assert DURATION not in collected(reader)


def test_a_meter_provider_passed_in_is_used_instead_of_the_global_one(
    reader: InMemoryMetricReader,
) -> None:
    own = InMemoryMetricReader()
    asgi_client(meter_provider=MeterProvider(metric_readers=[own])).get("/items/1")
    assert total_count(histogram_points(own, DURATION)) == 1
    assert DURATION not in collected(reader)


def test_a_meter_provider_installed_after_the_app_was_built_is_used() -> None:
    client = asgi_client()
    client.get("/items/1")  # no provider yet: nothing to record into
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    client.get("/items/2")
    assert total_count(histogram_points(reader, DURATION)) == 1


# --- WSGI ----------------------------------------------------------------------


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("kaboom")
    if path == "/busy":
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return iter([b"busy"])
    if path.startswith("/items/"):
        environ["ffrtmp.route"] = "/items/{item_id}"
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"item ", body, b"!"])


def wsgi_client(**middleware: Any) -> httpx.Client:
    return httpx.Client(
        transport=httpx.WSGITransport(app=WSGITracingMiddleware(wsgi_app, **middleware)),
        base_url="http://testserver",
    )


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_wsgi_every_request_is_measured_at_any_sampling_ratio(
    reader: InMemoryMetricReader, exporter: InMemorySpanExporter, ratio: float
) -> None:
    client = wsgi_client(tracer_provider=ratio_provider(ratio, exporter))
    requests = 5
    for i in range(requests):
        assert client.get(f"/items/{i}").status_code == 200

    assert len(exporter.get_finished_spans()) == (requests if ratio else 0)
    found = collected(reader)
    assert found[DURATION].unit == "s"
    [point] = histogram_points(reader, DURATION)
    assert point.count == requests
    assert point.attributes == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.response.status_code": 200,
        "http.route": "/items/{item_id}",
    }
    [active] = found[ACTIVE].data.data_points
    assert active.value == 0  # type: ignore[union-attr]


def test_wsgi_body_sizes_and_errors(reader: InMemoryMetricReader) -> None:
    client = wsgi_client()
    client.post("/items/1", content=b"abc")
    client.get("/busy")
    with pytest.raises(RuntimeError):
        client.get("/boom")
    by_status = {
        p.attributes.get("http.response.status_code"): p
        for p in histogram_points(reader, DURATION)
        if p.attributes is not None
    }
    assert by_status[503].attributes == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.response.status_code": 503,
        "error.type": "503",
    }
    assert by_status[500].attributes is not None
    assert by_status[500].attributes["error.type"] == "RuntimeError"
    [request_size] = histogram_points(reader, REQUEST_SIZE)
    assert (request_size.count, request_size.sum) == (1, 3)
    responses = {
        p.attributes["http.response.status_code"]: p.sum
        for p in histogram_points(reader, RESPONSE_SIZE)
        if p.attributes is not None
    }
    assert responses == {200: len(b"item abc!"), 503: 4}


def test_wsgi_metrics_false_records_nothing(reader: InMemoryMetricReader) -> None:
    wsgi_client(metrics=False).get("/items/1")
    assert DURATION not in collected(reader)
