"""TracingMiddleware: span shape, names, attributes, status, parenting and exclusions."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.testclient import TestClient

from ffrtmp_infra.tracing import TracingMiddleware
from tests.tracing.apps import make_app, with_test_client_address
from tests.tracing.conftest import ratio_provider

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


@pytest.fixture(autouse=True)
def no_env_exclusions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_PYTHON_EXCLUDED_URLS", raising=False)
    monkeypatch.delenv("OTEL_PYTHON_ASGI_EXCLUDED_URLS", raising=False)


def client_for(provider: TracerProvider, **kwargs: object) -> TestClient:
    app = make_app()
    app.add_middleware(TracingMiddleware, tracer_provider=provider, **kwargs)
    return TestClient(with_test_client_address(app), raise_server_exceptions=False)


def test_one_server_span_named_after_the_route_template(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client_for(provider).get("/jobs/42?user=ann&token=s3cret", headers={"user-agent": "probe/1.0"})
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /jobs/{job_id}"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is None
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "http.route": "/jobs/{job_id}",
        "http.response.status_code": 200,
        "url.scheme": "http",
        "url.path": "/jobs/42",
        "url.query": "user=ann&token=REDACTED",
        "server.address": "testserver",
        "server.port": 80,
        "network.protocol.version": "1.1",
        "client.address": "testclient",
        "client.port": 50000,
        "user_agent.original": "probe/1.0",
    }
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "ffrtmp_infra.tracing"


def test_unmatched_path_is_named_by_method_only(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client_for(provider).post("/nope/123")
    [span] = exporter.get_finished_spans()
    assert span.name == "POST"
    assert "http.route" not in (span.attributes or {})
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 404
    assert span.status.status_code is StatusCode.UNSET  # 4xx is the client's fault


def test_mounted_routes_keep_the_full_template(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client_for(provider).get("/admin/nodes/n1")
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /admin/nodes/{node_id}"


def test_unknown_methods_are_reported_as_other(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client_for(provider).request("PURGE", "/jobs/1")
    [span] = exporter.get_finished_spans()
    assert span.name == "HTTP /jobs/{job_id}"
    assert span.attributes is not None
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "PURGE"


def test_incoming_traceparent_and_baggage_are_continued(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    seen: dict[str, object] = {}
    app = make_app()

    async def peek(request):  # type: ignore[no-untyped-def]
        from opentelemetry import baggage
        from starlette.responses import PlainTextResponse

        seen["baggage"] = baggage.get_baggage("job.id")
        seen["span"] = trace.get_current_span().get_span_context()
        return PlainTextResponse("ok")

    app.add_route("/peek", peek)
    app.add_middleware(TracingMiddleware, tracer_provider=provider)
    TestClient(app).get(
        "/peek",
        headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "baggage": "job.id=j-7"},
    )
    [span] = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert span.parent.is_remote
    assert seen["baggage"] == "j-7"
    assert seen["span"] == span.context


def test_an_ambient_span_does_not_become_the_parent(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # In-process clients share contextvars with the app; a server starts clean.
    with provider.get_tracer("test").start_as_current_span("caller"):
        client_for(provider).get("/jobs/1")
    server = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER)
    assert server.parent is None


def test_a_server_span_already_open_for_the_request_gets_our_span_as_its_child(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # What a serverless adapter or another instrumentation around the app does.
    app = make_app()
    app.add_middleware(TracingMiddleware, tracer_provider=provider)

    async def adapter(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return await app(scope, receive, send)
        with provider.get_tracer("adapter").start_as_current_span("lambda", kind=SpanKind.SERVER):
            await app(scope, receive, send)

    TestClient(adapter).get("/jobs/1")
    outer, ours = sorted(exporter.get_finished_spans(), key=lambda s: s.kind is SpanKind.INTERNAL)
    assert (outer.name, outer.kind, outer.parent) == ("lambda", SpanKind.SERVER, None)
    assert (ours.name, ours.kind) == ("GET /jobs/{job_id}", SpanKind.INTERNAL)
    assert ours.parent is not None
    assert ours.parent.span_id == outer.context.span_id


def test_the_outer_layers_decision_not_to_sample_the_request_is_followed(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = make_app()
    app.add_middleware(TracingMiddleware, tracer_provider=provider)
    outer_provider = ratio_provider(0.0, exporter)

    async def adapter(scope, receive, send):  # type: ignore[no-untyped-def]
        with outer_provider.get_tracer("adapter").start_as_current_span("lambda"):
            await app(scope, receive, send)

    TestClient(adapter).get("/jobs/1")
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("position", ["outermost", "add_middleware"])
def test_exceptions_are_recorded_wherever_the_middleware_sits(
    provider: TracerProvider, exporter: InMemorySpanExporter, position: str
) -> None:
    app = make_app()
    if position == "outermost":
        # Outside ServerErrorMiddleware: the 500 is sent before the exception re-raises.
        client = TestClient(TracingMiddleware(app, tracer_provider=provider))
    else:
        app.add_middleware(TracingMiddleware, tracer_provider=provider)
        client = TestClient(app)
    with pytest.raises(RuntimeError, match="kaboom"):
        client.get("/boom")
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RuntimeError: kaboom"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.message"] == "kaboom"
    # Inside ServerErrorMiddleware (add_middleware) nothing was sent when the exception
    # passed: the server will answer 500, and the span says so either way.
    assert span.attributes["http.response.status_code"] == 500


def test_5xx_response_marks_the_span_as_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client_for(provider).get("/busy")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "503"
    assert not span.events


def test_streaming_response_gives_one_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    assert client_for(provider).get("/stream").text == "chunk 0\nchunk 1\nchunk 2\n"
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /stream"]


def test_health_and_metrics_are_excluded_by_default(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client = client_for(provider)
    for path in ("/healthz", "/metrics", "/jobs/1"):
        assert client.get(path).status_code == 200
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /jobs/{job_id}"]


def test_excluded_urls_argument_replaces_the_defaults(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client = client_for(provider, excluded_urls="^/jobs/")
    client.get("/jobs/1")
    client.get("/healthz")
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /healthz"]


def test_excluded_urls_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "/jobs/1$,stream")
    client = client_for(provider)
    for path in ("/jobs/1", "/jobs/2", "/stream"):
        client.get(path)
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["url.path"] == "/jobs/2"


def test_invalid_exclusion_pattern_fails_at_construction() -> None:
    from ffrtmp_infra.tracing import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"pattern '\(' is not a valid regex"):
        TracingMiddleware(make_app(), excluded_urls=["("])


def test_websocket_gets_one_span_per_connection(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with client_for(provider).websocket_connect("/agents/7/ws") as ws:
        for text in ("a", "b", "c"):
            ws.send_text(text)
            assert ws.receive_text() == text
    [span] = exporter.get_finished_spans()
    assert span.name == "WEBSOCKET /agents/{agent_id}/ws"
    assert span.kind is SpanKind.SERVER
    assert span.attributes is not None
    assert span.attributes["url.scheme"] == "ws"
    assert span.attributes["http.route"] == "/agents/{agent_id}/ws"


def test_lifespan_passes_through_untraced(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with client_for(provider) as client:  # runs lifespan startup and shutdown
        client.get("/jobs/1")
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /jobs/{job_id}"]


def test_unsampled_requests_record_nothing_but_keep_ids_for_propagation() -> None:
    exporter = InMemorySpanExporter()
    provider = ratio_provider(0.0, exporter)
    seen = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append(trace.get_current_span().get_span_context())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    client = TestClient(TracingMiddleware(app, tracer_provider=provider))
    client.get("/x")
    client.get("/x", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
    client.get("/x", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    root, unsampled_child, sampled_child = seen
    assert root.is_valid
    assert not root.trace_flags.sampled
    assert format(unsampled_child.trace_id, "032x") == TRACE_ID
    assert format(unsampled_child.span_id, "016x") != PARENT_ID
    assert not unsampled_child.trace_flags.sampled
    assert sampled_child.trace_flags.sampled  # parent-based: the caller's decision wins
    assert [s.name for s in exporter.get_finished_spans()] == ["GET"]


def test_without_any_provider_the_app_runs_untouched() -> None:
    calls = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        calls.append(trace.get_current_span())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    TestClient(TracingMiddleware(app)).get("/x")
    assert calls == [trace.INVALID_SPAN]


def test_a_provider_installed_after_the_app_was_built_is_used() -> None:
    exporter = InMemorySpanExporter()
    app = make_app()
    app.add_middleware(TracingMiddleware)
    client = TestClient(app)
    client.get("/jobs/1")  # no provider yet: nothing to record into
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    client.get("/jobs/2")
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["url.path"] == "/jobs/2"


def test_custom_sampler_sees_the_http_attributes(exporter: InMemorySpanExporter) -> None:
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class DropPosts(Sampler):
        def should_sample(
            self,
            parent_context,
            trace_id,
            name,
            kind=None,
            attributes=None,
            links=None,
            trace_state=None,
        ):  # type: ignore[no-untyped-def]
            drop = (attributes or {}).get("http.request.method") == "POST"
            return SamplingResult(Decision.DROP if drop else Decision.RECORD_AND_SAMPLE, attributes)

        def get_description(self) -> str:
            return "DropPosts"

    provider = TracerProvider(sampler=DropPosts())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = client_for(provider)
    client.post("/jobs/1")
    client.get("/jobs/1")
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /jobs/{job_id}"]


def test_non_http_scopes_are_not_touched(provider: TracerProvider) -> None:
    received = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        received.append(scope)

    scope = {"type": "lifespan"}
    asyncio.run(TracingMiddleware(app, tracer_provider=provider)(scope, None, None))  # type: ignore[arg-type]
    assert received == [{"type": "lifespan"}]


def test_the_global_propagator_decides_which_headers_are_read(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from opentelemetry import baggage, propagate
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    seen = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append(baggage.get_baggage("job.id"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    client = TestClient(TracingMiddleware(app, tracer_provider=provider))
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "baggage": "job.id=j-1"}
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(TraceContextTextMapPropagator())  # OTEL_PROPAGATORS=tracecontext
    try:
        client.get("/x", headers=headers)
    finally:
        propagate.set_global_textmap(previous)
    client.get("/x", headers=headers)
    assert seen == [None, "j-1"]
    for span in exporter.get_finished_spans():
        assert format(span.context.trace_id, "032x") == TRACE_ID


def test_a_mounted_plain_asgi_app_is_named_by_its_mount_path(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    async def files(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"file"})

    app = Starlette(routes=[Mount("/static", app=files)])
    app.add_middleware(TracingMiddleware, tracer_provider=provider)
    TestClient(app).get("/static/css/site.css")
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /static"


def forget_route(app):  # type: ignore[no-untyped-def]
    """ASGI wrapper that removes ``scope["route"]`` after the app ran: Starlette before 1.7."""

    async def wrapper(scope, receive, send):  # type: ignore[no-untyped-def]
        try:
            await app(scope, receive, send)
        finally:
            scope.pop("route", None)

    return wrapper


@pytest.mark.parametrize("route_in_scope", [True, False], ids=["starlette>=1.7", "older"])
@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/jobs/42", "GET /jobs/{job_id}"),
        ("GET", "/admin/nodes/n1", "GET /admin/nodes/{node_id}"),
        ("POST", "/jobs/42", "POST /jobs/{job_id}"),  # 405: the partial match names it
        ("GET", "/static/css/site.css", "GET /static"),
        ("GET", "/nope", "GET"),
    ],
)
def test_route_names_do_not_depend_on_starlette_recording_the_route(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    route_in_scope: bool,
    method: str,
    path: str,
    name: str,
) -> None:
    from starlette.routing import Mount

    async def files(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"file"})

    app = make_app()
    app.router.routes.append(Mount("/static", app=files))
    if not route_in_scope:
        app.add_middleware(forget_route)
    app.add_middleware(TracingMiddleware, tracer_provider=provider, excluded_urls=())
    TestClient(app, raise_server_exceptions=False).request(method, path)
    [span] = exporter.get_finished_spans()
    assert span.name == name


@pytest.mark.parametrize("route_in_scope", [True, False], ids=["starlette>=1.7", "older"])
def test_websocket_route_names_without_a_recorded_route(
    provider: TracerProvider, exporter: InMemorySpanExporter, route_in_scope: bool
) -> None:
    app = make_app()
    if not route_in_scope:
        app.add_middleware(forget_route)
    app.add_middleware(TracingMiddleware, tracer_provider=provider, excluded_urls=())
    with TestClient(app).websocket_connect("/agents/a1/ws") as ws:
        for text in ("a", "b", "c"):
            ws.send_text(text)
            assert ws.receive_text() == text
    [span] = exporter.get_finished_spans()
    assert span.name == "WEBSOCKET /agents/{agent_id}/ws"
