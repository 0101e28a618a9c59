"""Header capture from contrib's variables (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*``),
ported from contrib's test_asgi_custom_headers.py, for ASGI, WSGI and Django."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from ffrtmp_infra.tracing import ConfigurationError, TracingMiddleware, WSGITracingMiddleware
from tests.tracing.conftest import ratio_provider

REQUEST = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
RESPONSE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"
SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (REQUEST, RESPONSE, SANITIZE):
        monkeypatch.delenv(name, raising=False)


async def item(request: Request) -> Response:
    return PlainTextResponse(
        "ok",
        headers={"X-Served-By": "node-1", "Set-Cookie": "session=abc", "X-Other": "o"},
    )


def asgi_span_attributes(
    provider: TracerProvider, exporter: InMemorySpanExporter, headers: Any
) -> dict[str, Any]:
    app = TracingMiddleware(
        Starlette(routes=[Route("/items/{item_id}", item)]), tracer_provider=provider
    )
    assert TestClient(app).get("/items/1", headers=headers).status_code == 200
    [span] = exporter.get_finished_spans()
    return dict(span.attributes or {})


def test_the_contract_case(
    monkeypatch: pytest.MonkeyPatch, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    monkeypatch.setenv(REQUEST, "x-custom")
    attributes = asgi_span_attributes(provider, exporter, {"X-Custom": "v"})
    assert attributes["http.request.header.x-custom"] == ("v",)
    assert not any(k.startswith("http.response.header.") for k in attributes)


def test_names_are_whole_case_insensitive_regexes_and_values_are_sanitized(
    monkeypatch: pytest.MonkeyPatch, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    monkeypatch.setenv(REQUEST, "X-Custom-.*, authorization ,x-multi")
    monkeypatch.setenv(RESPONSE, "x-served-by,Set-Cookie")
    monkeypatch.setenv(SANITIZE, "authorization,.*cookie")
    headers = [
        ("x-custom-a", "1"),
        ("x-custom", "no: the whole name must match"),
        ("Authorization", "Bearer secret"),
        ("x-multi", "first"),
        ("x-multi", "second"),
    ]
    attributes = asgi_span_attributes(provider, exporter, headers)
    captured = {k: v for k, v in attributes.items() if ".header." in k}
    assert captured == {
        "http.request.header.x-custom-a": ("1",),
        "http.request.header.authorization": ("[REDACTED]",),
        "http.request.header.x-multi": ("first", "second"),
        "http.response.header.x-served-by": ("node-1",),
        "http.response.header.set-cookie": ("[REDACTED]",),
    }


def test_nothing_is_captured_without_the_variables(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    attributes = asgi_span_attributes(provider, exporter, {"X-Custom": "v"})
    assert not any(".header." in k for k in attributes)


def test_an_unsampled_request_builds_nothing(
    monkeypatch: pytest.MonkeyPatch, exporter: InMemorySpanExporter
) -> None:
    monkeypatch.setenv(REQUEST, ".*")
    app = TracingMiddleware(
        Starlette(routes=[Route("/items/{item_id}", item)]),
        tracer_provider=ratio_provider(0.0, exporter),
    )
    assert TestClient(app).get("/items/1", headers={"X-Custom": "v"}).status_code == 200
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("variable", [REQUEST, RESPONSE, SANITIZE])
def test_an_invalid_regex_fails_at_construction(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "x-ok,x-(broken")
    with pytest.raises(ConfigurationError, match=rf"{variable} entry 'x-\(broken'"):
        TracingMiddleware(item)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=variable):
        WSGITracingMiddleware(wsgi_app)


def test_malformed_response_headers_do_not_break_the_request(
    monkeypatch: pytest.MonkeyPatch, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    monkeypatch.setenv(RESPONSE, ".*")

    async def odd(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [b"not-a-pair"]})
        await send({"type": "http.response.body", "body": b"ok"})

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    asyncio.run(TracingMiddleware(odd, tracer_provider=provider)(scope, receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200


# --- WSGI ----------------------------------------------------------------------


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Served-By", "node-1")])
    return iter([b"ok"])


def test_wsgi_captures_request_and_response_headers(
    monkeypatch: pytest.MonkeyPatch, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    monkeypatch.setenv(REQUEST, "x-custom,content-type,x-api-key")
    monkeypatch.setenv(RESPONSE, "x-served-by")
    monkeypatch.setenv(SANITIZE, "api-key")
    app = WSGITracingMiddleware(wsgi_app, tracer_provider=provider)
    with httpx.Client(
        transport=httpx.WSGITransport(app=app), base_url="http://testserver"
    ) as client:
        client.post(
            "/",
            content=b"{}",
            headers={"X-Custom": "v", "Content-Type": "application/json", "X-Api-Key": "k"},
        )
    [span] = exporter.get_finished_spans()
    captured = {k: v for k, v in (span.attributes or {}).items() if ".header." in k}
    assert captured == {
        "http.request.header.x-custom": ("v",),
        "http.request.header.content-type": ("application/json",),
        "http.request.header.x-api-key": ("[REDACTED]",),
        "http.response.header.x-served-by": ("node-1",),
    }


def test_django_captures_request_and_response_headers(
    monkeypatch: pytest.MonkeyPatch, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    monkeypatch.setenv(REQUEST, "x-custom")
    monkeypatch.setenv(RESPONSE, "content-type")
    from tests.support.django_site import configure

    configure()
    from django.test import Client, override_settings

    with override_settings(
        ROOT_URLCONF="tests.tracing.test_django",
        MIDDLEWARE=["ffrtmp_infra.tracing.django.TracingMiddleware"],
        FFRTMP_TRACING={"tracer_provider": provider},
    ):
        assert Client().get("/items/7", HTTP_X_CUSTOM="v").status_code == 200
    [span] = exporter.get_finished_spans()
    captured = {k: v for k, v in (span.attributes or {}).items() if ".header." in k}
    assert captured == {
        "http.request.header.x-custom": ("v",),
        "http.response.header.content-type": ("application/json",),
    }
