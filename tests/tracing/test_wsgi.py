"""WSGITracingMiddleware: the same span shape for WSGI apps, under a real wsgiref server."""

from __future__ import annotations

import re
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ffrtmp_infra.tracing import WSGITracingMiddleware

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
JOB = re.compile(r"^/jobs/(\w+)$")


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("kaboom")
    if path == "/busy":
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"busy"]
    if JOB.match(path):
        environ["ffrtmp.route"] = "/jobs/{job_id}"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"job"]
    if path in ("/healthz", "/plain"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no"]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def no_env_exclusions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_PYTHON_EXCLUDED_URLS", raising=False)
    monkeypatch.delenv("OTEL_PYTHON_WSGI_EXCLUDED_URLS", raising=False)


@pytest.fixture
def served(provider: TracerProvider) -> Iterator[str]:
    server: WSGIServer = make_server(
        "127.0.0.1",
        0,
        WSGITracingMiddleware(app, tracer_provider=provider),
        handler_class=QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_real_server_request_gets_a_named_server_span(
    served: str, exporter: InMemorySpanExporter
) -> None:
    request = urllib.request.Request(
        f"{served}/jobs/42?sig=abc&page=2",
        headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "User-Agent": "probe/1"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.read() == b"job"
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /jobs/{job_id}"
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_ID
    attributes = dict(span.attributes or {})
    port = int(served.rsplit(":", 1)[1])
    assert attributes == {
        "http.request.method": "GET",
        "http.route": "/jobs/{job_id}",
        "http.response.status_code": 200,
        "url.scheme": "http",
        "url.path": "/jobs/42",
        "url.query": "sig=REDACTED&page=2",
        "server.address": "127.0.0.1",
        "server.port": port,
        "network.protocol.version": "1.1",
        "client.address": "127.0.0.1",
        "user_agent.original": "probe/1",
    }


def client_for(provider: TracerProvider, **kwargs: Any) -> httpx.Client:
    wrapped = WSGITracingMiddleware(app, tracer_provider=provider, **kwargs)
    return httpx.Client(transport=httpx.WSGITransport(app=wrapped), base_url="http://test")


def test_exception_is_recorded(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    with pytest.raises(RuntimeError, match="kaboom"):
        client_for(provider).get("/boom")
    [span] = exporter.get_finished_spans()
    assert span.name == "GET"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    assert [e.name for e in span.events] == ["exception"]


def test_5xx_is_an_error_and_4xx_is_not(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client = client_for(provider)
    client.get("/busy")
    client.get("/missing")
    busy, missing = exporter.get_finished_spans()
    assert busy.status.status_code is StatusCode.ERROR
    assert busy.attributes is not None
    assert busy.attributes["error.type"] == "503"
    assert missing.status.status_code is StatusCode.UNSET


def test_route_getter_names_the_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client = client_for(provider, route_getter=lambda environ: "/plain-route")
    client.post("/plain")
    [span] = exporter.get_finished_spans()
    assert span.name == "POST /plain-route"


def test_health_is_excluded_by_default_and_exclusions_are_configurable(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client_for(provider).get("/healthz")
    assert exporter.get_finished_spans() == ()
    client_for(provider, excluded_urls=["^/plain$"]).get("/plain")
    assert exporter.get_finished_spans() == ()
    client_for(provider, excluded_urls=()).get("/healthz")
    assert len(exporter.get_finished_spans()) == 1


def test_no_provider_means_no_work() -> None:
    client = httpx.Client(
        transport=httpx.WSGITransport(app=WSGITracingMiddleware(app)), base_url="http://test"
    )
    assert client.get("/plain").text == "ok"
