"""One trace per request on FastAPI, whatever else traces the app (issue 12 item 4).

Current FastAPI opens its own SERVER span (its native telemetry, on by default)
through the global provider ``init_tracer`` installs, and runs the user
middleware inside it; contrib's FastAPI instrumentor does the same from the
outside. ``TracingMiddleware`` then makes its span an INTERNAL child of that
SERVER span: one trace id per request, exactly one SERVER span.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Iterator, Sequence

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ffrtmp_infra.tracing import TracingConfig, TracingHandle, TracingMiddleware, init_tracer

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
#: FastAPI releases with native telemetry take ``FastAPI(telemetry=...)``; older ones trace nothing.
NATIVE_TELEMETRY = "telemetry" in inspect.signature(FastAPI).parameters
STACKS = ["telemetry-default", "telemetry-off", "contrib-instrumentor"]


class Recorder:
    """``init_tracer(..., exporter=InMemorySpanExporter())``, read back trace by trace."""

    def __init__(self, sample_ratio: float = 1.0) -> None:
        self.exporter = InMemorySpanExporter()
        self.metrics = InMemoryMetricReader()  # metrics in memory too, not to localhost
        self.handle: TracingHandle = init_tracer(
            TracingConfig(service_name="fastapi-app", sample_ratio=sample_ratio),
            exporter=self.exporter,
            metric_reader=self.metrics,
        )

    def durations(self) -> dict[str, int]:
        """Requests counted in ``http.server.request.duration``, per instrumentation scope."""
        counted: dict[str, int] = defaultdict(int)
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == "http.server.request.duration":
                        for point in metric.data.data_points:
                            counted[scope.scope.name] += point.count  # type: ignore[union-attr]
        return dict(counted)

    def traces(self) -> dict[int, list[ReadableSpan]]:
        self.handle.force_flush()
        by_trace: dict[int, list[ReadableSpan]] = defaultdict(list)
        for span in self.exporter.get_finished_spans():
            by_trace[span.context.trace_id].append(span)
        return dict(by_trace)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.handle.shutdown()


def make_app(stack: str, *, fastapi_metrics: bool = True, our_metrics: bool = True) -> FastAPI:
    telemetry = {"tracing": stack != "telemetry-off", "metrics": fastapi_metrics}
    # releases before native telemetry have nothing to turn off
    app = FastAPI(telemetry=telemetry) if NATIVE_TELEMETRY else FastAPI()  # type: ignore[arg-type]

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise KeyError("item 0 was never stocked")
        return {"item_id": item_id}

    @app.websocket("/ws/{room}")
    async def echo(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    if stack == "contrib-instrumentor":
        FastAPIInstrumentor.instrument_app(app)
    app.add_middleware(TracingMiddleware, metrics=our_metrics)
    return app


def servers(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.kind is SpanKind.SERVER]


def ours(spans: Sequence[ReadableSpan]) -> ReadableSpan:
    [span] = [
        s
        for s in spans
        if s.instrumentation_scope is not None
        and s.instrumentation_scope.name == "ffrtmp_infra.tracing"
    ]
    return span


@pytest.mark.parametrize("stack", STACKS)
def test_each_request_is_one_trace_with_one_server_span_named_by_route(
    recorder: Recorder, stack: str
) -> None:
    client = TestClient(make_app(stack))
    for item_id in (1, 2, 3):
        assert client.get(f"/items/{item_id}").status_code == 200

    per_trace = recorder.traces()
    assert len(per_trace) == 3
    for spans in per_trace.values():
        [server] = servers(spans)
        assert server.name == "GET /items/{item_id}"
        assert ours(spans).name == "GET /items/{item_id}"


@pytest.mark.parametrize("stack", STACKS)
def test_our_span_is_the_server_span_or_its_child(recorder: Recorder, stack: str) -> None:
    TestClient(make_app(stack)).get("/items/7?token=s3cret")
    [spans] = recorder.traces().values()
    [server] = servers(spans)
    span = ours(spans)
    if span is server:
        assert stack == "telemetry-off" or not NATIVE_TELEMETRY
        assert span.parent is None
    else:
        assert span.kind is SpanKind.INTERNAL
        assert span.parent is not None
        assert span.parent.span_id == server.context.span_id
    attributes = dict(span.attributes or {})
    assert attributes["http.route"] == "/items/{item_id}"
    assert attributes["http.response.status_code"] == 200
    assert attributes["url.query"] == "token=REDACTED"


@pytest.mark.parametrize("stack", STACKS)
def test_an_incoming_traceparent_is_continued_once(recorder: Recorder, stack: str) -> None:
    TestClient(make_app(stack)).get("/items/7", headers={"traceparent": TRACEPARENT})
    per_trace = recorder.traces()
    assert [format(t, "032x") for t in per_trace] == [TRACE_ID]
    [server] = servers(per_trace[int(TRACE_ID, 16)])
    assert server.parent is not None
    assert server.parent.is_remote


@pytest.mark.parametrize("stack", STACKS)
def test_an_exception_is_recorded_with_its_type_in_the_same_trace(
    recorder: Recorder, stack: str
) -> None:
    client = TestClient(make_app(stack), raise_server_exceptions=False)
    assert client.get("/items/0").status_code == 500
    [spans] = recorder.traces().values()
    [server] = servers(spans)
    assert server.status.status_code is StatusCode.ERROR
    span = ours(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "KeyError"
    [event] = [e for e in span.events if e.name == "exception"]
    assert (event.attributes or {})["exception.type"] == "KeyError"


@pytest.mark.parametrize("stack", STACKS)
def test_an_unsampled_request_records_nothing_anywhere(stack: str) -> None:
    recorder = Recorder(sample_ratio=0.0)
    try:
        client = TestClient(make_app(stack))
        for item_id in (1, 2, 3):
            assert client.get(f"/items/{item_id}").status_code == 200
        assert recorder.traces() == {}
    finally:
        recorder.handle.shutdown()


def test_fastapi_operation_spans_stay_in_the_request_trace(
    recorder: Recorder,
) -> None:
    """FastAPI's own per-request context is kept: its endpoint spans are in the trace too."""
    TestClient(make_app("telemetry-default")).get("/items/5")
    [spans] = recorder.traces().values()
    names = {s.name for s in spans}
    if NATIVE_TELEMETRY:
        assert "fastapi.endpoint" in names
        endpoint = next(s for s in spans if s.name == "fastapi.endpoint")
        assert endpoint.parent is not None
        assert endpoint.parent.span_id == ours(spans).context.span_id
    else:
        assert names == {"GET /items/{item_id}"}


@pytest.mark.parametrize("stack", STACKS)
def test_a_websocket_connection_is_one_trace_too(recorder: Recorder, stack: str) -> None:
    with TestClient(make_app(stack)).websocket_connect("/ws/lobby") as websocket:
        websocket.send_text("hello")
        assert websocket.receive_text() == "hello"
    [spans] = recorder.traces().values()
    assert len(servers(spans)) == 1
    assert ours(spans).name == "WEBSOCKET /ws/{room}"


def test_fastapi_metrics_and_ours_are_one_count_per_request_with_either_switched_off(
    recorder: Recorder,
) -> None:
    """FastAPI's native telemetry records the same HTTP server metrics as the middleware
    (when a MeterProvider is set): the documented switches keep one count per request."""
    ours_only = make_app("telemetry-default", fastapi_metrics=False)
    theirs_only = make_app("telemetry-default", our_metrics=False)
    for app in (ours_only, theirs_only):
        client = TestClient(app)
        for item_id in (1, 2, 3):
            assert client.get(f"/items/{item_id}").status_code == 200
    counted = recorder.durations()
    assert counted.get("ffrtmp_infra.tracing") == 3, counted
    assert sum(counted.values()) == (6 if NATIVE_TELEMETRY else 3), counted
