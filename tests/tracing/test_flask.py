"""Flask's ``instrument_app``: route-named spans and exceptions (issue 12 item 5)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import flask
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ffrtmp_infra.errors import MissingExtraError
from ffrtmp_infra.tracing.flask import instrument_app

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


class Unstocked(Exception):
    pass


def make_app(provider: TracerProvider, *, testing: bool = False) -> flask.Flask:
    app = flask.Flask(__name__)
    app.testing = testing

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise KeyError("item 0 was never stocked")
        if item_id == 404:
            flask.abort(404)
        if item_id == 1:
            raise Unstocked("handled by an error handler")
        return {"item_id": item_id}

    @app.route("/stream")
    def stream() -> flask.Response:
        def chunks() -> Iterator[str]:
            yield from ("a", "b", "c")

        return flask.Response(chunks())

    @app.errorhandler(Unstocked)
    def unstocked(exc: Unstocked) -> tuple[str, int]:
        return "gone", 410

    return instrument_app(app, tracer_provider=provider, excluded_urls=[r"^/healthz$"])


def test_a_span_named_after_the_rule_with_converters_rewritten(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    response = make_app(provider).test_client().get("/items/7?token=s3cret")
    assert response.status_code == 200
    # Ended without reading the body or closing the response (Flask's test client).
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /items/{item_id}"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    assert attributes["http.route"] == "/items/{item_id}"
    assert attributes["http.response.status_code"] == 200
    assert attributes["url.path"] == "/items/7"
    assert attributes["url.query"] == "token=REDACTED"


def test_a_raising_view_is_recorded_with_its_class(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    assert make_app(provider).test_client().get("/items/0").status_code == 500
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /items/{item_id}"
    assert span.status.status_code is StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "KeyError"
    assert attributes["http.response.status_code"] == 500
    [event] = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "KeyError"


def test_an_exception_propagated_in_testing_mode_is_recorded_once(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(KeyError):
        make_app(provider, testing=True).test_client().get("/items/0")
    [span] = exporter.get_finished_spans()
    assert (span.attributes or {})["error.type"] == "KeyError"
    assert [e.name for e in span.events] == ["exception"]


@pytest.mark.parametrize(("path", "status"), [("/items/404", 404), ("/items/1", 410)])
def test_http_errors_and_handled_exceptions_are_not_errors(
    provider: TracerProvider, exporter: InMemorySpanExporter, path: str, status: int
) -> None:
    assert make_app(provider).test_client().get(path).status_code == status
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /items/{item_id}"
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()
    assert "error.type" not in (span.attributes or {})


def test_an_unmatched_request_is_named_by_its_method(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    assert make_app(provider).test_client().get("/nowhere").status_code == 404
    [span] = exporter.get_finished_spans()
    assert span.name == "GET"
    assert "http.route" not in (span.attributes or {})


def test_a_streamed_response_ends_its_span_when_flask_is_done_with_the_request(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    response = make_app(provider).test_client().get("/stream")
    [span] = exporter.get_finished_spans()
    assert response.data == b"abc"
    response.close()
    assert exporter.get_finished_spans() == (span,)
    assert span.name == "GET /stream"


def test_an_incoming_traceparent_is_continued(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    make_app(provider).test_client().get(
        "/items/7", headers={"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"}
    )
    [span] = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID


def test_instrumenting_twice_changes_nothing_and_exclusions_apply(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = make_app(provider)
    assert instrument_app(app, tracer_provider=provider) is app
    client = app.test_client()
    client.get("/items/7")
    client.get("/healthz")
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /items/{item_id}"]


def test_without_flask_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)
    monkeypatch.delitem(sys.modules, "ffrtmp_infra.tracing.flask")
    with pytest.raises(MissingExtraError, match=r"ffrtmp-infra\[flask\]"):
        importlib.import_module("ffrtmp_infra.tracing.flask")


def test_under_contribs_wsgi_middleware_the_request_stays_one_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    app = make_app(provider)
    app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app, tracer_provider=provider)  # type: ignore[method-assign]
    app.test_client().get("/items/7").close()
    ours, contrib = sorted(exporter.get_finished_spans(), key=lambda s: s.kind is SpanKind.SERVER)
    assert (contrib.kind, ours.kind) == (SpanKind.SERVER, SpanKind.INTERNAL)
    assert ours.name == "GET /items/{item_id}"
    assert ours.parent is not None
    assert ours.parent.span_id == contrib.context.span_id
    assert ours.context.trace_id == contrib.context.trace_id
