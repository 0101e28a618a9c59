"""Each OpenTelemetry private name the package uses, taken away: the public fallback
keeps spans correct and warns exactly once."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from ffrtmp_infra.tracing import TracingMiddleware, WSGITracingMiddleware, _asgi, _compat, _server
from ffrtmp_infra.tracing import _metrics as metrics_module
from ffrtmp_infra.tracing import _spans as spans_module
from ffrtmp_infra.tracing import _wsgi as wsgi_module
from tests.tracing.apps import make_app

REMOTE_TRACE = "0af7651916cd43dd8448eb211c80319c"
REMOTE_SPAN = "b7ad6b7169203331"


@pytest.fixture
def caught() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        yield records


def fallback_warnings(records: list[warnings.WarningMessage], private: str) -> list[str]:
    return [
        str(w.message)
        for w in records
        if issubclass(w.category, RuntimeWarning) and private in str(w.message)
    ]


def serve(app: Any, *paths: str, headers: dict[str, str] | None = None) -> None:
    client = TestClient(app)
    for path in paths:
        client.get(path, headers=headers or {})


def test_the_real_api_takes_no_fallback(caught: list[warnings.WarningMessage]) -> None:
    assert _compat.detect_provider_reader() is _compat._slot_provider
    assert _compat.detect_context_factory() is not _compat._public_context_with_span
    assert _compat.detect_delegates_reader() is _compat._read_delegates
    assert _compat.detect_meter_provider_reader() is not _compat._public_meter_provider
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []


def test_without_the_provider_global_the_public_getter_serves_every_request(
    monkeypatch: pytest.MonkeyPatch, caught: list[warnings.WarningMessage]
) -> None:
    reader = _compat.detect_provider_reader(api_globals={})
    assert reader is _compat._public_provider
    assert reader() is None  # only the proxy is installed
    for module in (_asgi, wsgi_module, spans_module):
        monkeypatch.setattr(module, "global_provider", reader)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    assert reader() is provider

    app = make_app()
    app.add_middleware(TracingMiddleware, excluded_urls=())
    serve(app, "/jobs/1", "/jobs/2", "/jobs/3")

    assert [s.name for s in exporter.get_finished_spans()] == ["GET /jobs/{job_id}"] * 3
    assert len(fallback_warnings(caught, "_TRACER_PROVIDER")) == 1


def test_without_the_meter_provider_global_the_public_getter_serves_every_request(
    monkeypatch: pytest.MonkeyPatch, caught: list[warnings.WarningMessage]
) -> None:
    reader = _compat.detect_meter_provider_reader(api_module=object())
    assert reader is _compat._public_meter_provider
    assert reader() is None  # only the proxy is installed
    monkeypatch.setattr(metrics_module, "global_meter_provider", reader)
    metric_reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[metric_reader])
    metrics.set_meter_provider(provider)
    assert reader() is provider

    app = make_app()
    app.add_middleware(TracingMiddleware, excluded_urls=())
    serve(app, "/jobs/1", "/jobs/2")

    data = metric_reader.get_metrics_data()
    assert data is not None
    [duration] = [
        m
        for r in data.resource_metrics
        for sm in r.scope_metrics
        for m in sm.metrics
        if m.name == "http.server.request.duration"
    ]
    assert sum(p.count for p in duration.data.data_points) == 2  # type: ignore[union-attr]
    assert len(fallback_warnings(caught, "_METER_PROVIDER")) == 1


def test_a_moved_span_key_falls_back_to_set_span_in_context(
    monkeypatch: pytest.MonkeyPatch, caught: list[warnings.WarningMessage]
) -> None:
    for gone in (None, "a-key-the-api-no-longer-reads"):
        factory = _compat.detect_context_factory(key=gone)
        assert factory is _compat._public_context_with_span
    assert len(fallback_warnings(caught, "_SPAN_KEY")) == 2  # one per detection above
    caught.clear()
    monkeypatch.setattr(_server, "fresh_context_with_span", factory)

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    inner: list[trace.SpanContext] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        # The server span must be current inside the app: a child parents to it.
        with provider.get_tracer("t").start_as_current_span("child") as child:
            inner.append(child.parent)  # type: ignore[attr-defined]
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"ok"]

    wrapped = WSGITracingMiddleware(app, tracer_provider=provider, excluded_urls=())
    for _ in range(3):
        body = wrapped(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "wsgi.url_scheme": "http"},
            lambda status, headers, exc_info=None: None,
        )
        list(body)

    servers = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert len(servers) == 3
    assert [p.span_id for p in inner] == [s.context.span_id for s in servers]
    assert all(s.parent is None for s in servers)  # still a root: nothing ambient leaks in
    assert fallback_warnings(caught, "ffrtmp_infra") == []  # detection warned, no request did


class MovedDelegates(ParentBased):
    """A ParentBased whose delegates live under other names, as a future SDK might keep them."""

    def __init__(self, root: Any) -> None:
        super().__init__(root)
        for name in _compat._PARENT_BASED_FIELDS:
            setattr(self, "moved" + name, vars(self).pop(name))


def test_unreadable_parent_based_delegates_let_the_sdk_decide(
    monkeypatch: pytest.MonkeyPatch, caught: list[warnings.WarningMessage]
) -> None:
    reader = _compat.detect_delegates_reader(MovedDelegates)
    assert reader is _compat._unknown_delegates
    assert len(fallback_warnings(caught, "ParentBased._root")) == 1
    caught.clear()
    monkeypatch.setattr(_server, "parent_based_delegates", reader)

    # Ratio 0: no early drop any more, but the SDK still drops every root.
    dropped = InMemorySpanExporter()
    never = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0)))
    never.add_span_processor(SimpleSpanProcessor(dropped))
    plan = _server.Plan.build(never)
    assert not plan.drop_roots
    assert not plan.drop_unsampled_remote
    assert not plan.attribute_blind
    app = make_app()
    app.add_middleware(TracingMiddleware, tracer_provider=never, excluded_urls=())
    serve(app, "/jobs/1", "/jobs/2")
    assert dropped.get_finished_spans() == ()

    # Always on, with a sampled remote parent: exported and parented to it.
    kept = InMemorySpanExporter()
    always = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    always.add_span_processor(SimpleSpanProcessor(kept))
    app = make_app()
    app.add_middleware(TracingMiddleware, tracer_provider=always, excluded_urls=())
    serve(
        app,
        "/jobs/1",
        "/jobs/2",
        headers={"traceparent": f"00-{REMOTE_TRACE}-{REMOTE_SPAN}-01"},
    )
    spans = kept.get_finished_spans()
    assert [s.name for s in spans] == ["GET /jobs/{job_id}"] * 2
    for span in spans:
        assert span.parent is not None
        assert format(span.parent.span_id, "016x") == REMOTE_SPAN
        assert format(span.context.trace_id, "032x") == REMOTE_TRACE
    assert fallback_warnings(caught, "ffrtmp_infra") == []


def test_without_the_suppression_keys_suppression_is_ignored_with_a_warning(
    caught: list[warnings.WarningMessage],
) -> None:
    assert _compat.detect_suppression_keys(api_context=object()) == ()
    assert len(fallback_warnings(caught, "_SUPPRESS_(HTTP_)INSTRUMENTATION_KEY")) == 1
    assert len(_compat.detect_suppression_keys()) == 3  # the real API's keys
