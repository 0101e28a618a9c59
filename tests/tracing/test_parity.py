"""The same request through our middleware and contrib's OpenTelemetryMiddleware.

Contrib runs with ``OTEL_SEMCONV_STABILITY_OPT_IN=http`` (stable attribute
names); only its SERVER span is compared. Its span *name* is the raw
path by design (contrib PR #2650 is open), so names are not compared; kind,
status and the HTTP attributes are.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version

import pytest
from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from ffrtmp_infra.tracing import TracingMiddleware
from tests.tracing.apps import make_app, with_test_client_address

# Attributes contrib sets that describe the request itself (its extra ones,
# like http.route, it does not set at all without a route resolver).
COMPARED = (
    "http.request.method",
    "http.response.status_code",
    "url.scheme",
    "url.path",
    "url.query",
    "server.address",
    "server.port",
    "network.protocol.version",
    "client.address",
    "client.port",
    "user_agent.original",
)


def _contrib_minor() -> int:
    """N of the installed contrib release 0.Nb*."""
    return int(version("opentelemetry-instrumentation").split(".")[1].split("b")[0])


# Contrib before 0.53b0 (OpenTelemetry 1.32) put the Host header into
# client.address and set no server.address; the comparison accounts for it.
CONTRIB_HOST_AS_CLIENT = _contrib_minor() < 53


@pytest.fixture
def stable_semconv(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    _OpenTelemetrySemanticConventionStability._initialized = False
    _OpenTelemetrySemanticConventionStability._initialize()
    yield
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN")
    _OpenTelemetrySemanticConventionStability._initialized = False


def run(middleware: str, method: str, path: str) -> ReadableSpan:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = make_app()
    if middleware == "ours":
        app.add_middleware(TracingMiddleware, tracer_provider=provider, excluded_urls=())
    else:
        app.add_middleware(OpenTelemetryMiddleware, tracer_provider=provider)
    client = TestClient(with_test_client_address(app), raise_server_exceptions=False)
    client.request(method, path, headers={"user-agent": "parity/1.0"})
    # Contrib's per-message receive/send spans are INTERNAL; its exclude_spans
    # option to turn them off only exists in newer releases, so filter instead.
    [span] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    return span


@pytest.mark.usefixtures("stable_semconv")
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/jobs/42?user=ann"), ("POST", "/nope"), ("GET", "/busy"), ("GET", "/boom")],
)
def test_same_kind_status_and_http_attributes_as_contrib(method: str, path: str) -> None:
    ours, theirs = run("ours", method, path), run("contrib", method, path)
    assert ours.kind == theirs.kind
    assert ours.status.status_code == theirs.status.status_code
    mine = {k: v for k, v in (ours.attributes or {}).items() if k in COMPARED}
    contrib = {k: v for k, v in (theirs.attributes or {}).items() if k in COMPARED}
    if CONTRIB_HOST_AS_CLIENT:
        assert contrib.pop("client.address") == mine.pop("server.address")
        mine.pop("client.address")
    if path == "/boom" and "http.response.status_code" not in contrib:
        # Nothing was sent when the exception escaped: the server answers 500 and we say so
        # (issue 13); contrib leaves the status code out. A deliberate difference.
        assert mine.pop("http.response.status_code") == 500
    assert mine == contrib
    assert [e.name for e in ours.events] == [e.name for e in theirs.events]
    has_error_type = "error.type" in (ours.attributes or {})
    if path == "/boom":
        # Contrib does not set error.type when the app raises (contrib issue #2699,
        # open fix PR #5031); semconv asks for it, so we deliberately differ here.
        assert has_error_type
        assert "error.type" not in (theirs.attributes or {})
    else:
        assert has_error_type == ("error.type" in (theirs.attributes or {}))
