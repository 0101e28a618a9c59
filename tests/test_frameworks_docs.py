"""docs/frameworks.md: every python block runs, and the apps it builds behave as it says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

DOC = Path(__file__).resolve().parent.parent / "docs" / "frameworks.md"


def _sections() -> dict[str, list[str]]:
    """The python blocks of each ``## `` section, in order."""
    sections: dict[str, list[str]] = {}
    for part in re.split(r"^## ", DOC.read_text(), flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        sections[title.strip()] = re.findall(r"```python\n(.*?)```", body, re.S)
    return sections


SECTIONS = {title: blocks for title, blocks in _sections().items() if blocks}


def run_section(title: str) -> dict[str, Any]:
    """Execute a section's blocks in order in one namespace; return the namespace."""
    namespace: dict[str, Any] = {"__name__": f"frameworks_doc_{len(title)}"}
    for block in SECTIONS[title]:
        exec(compile(block, f"{DOC.name}: {title}", "exec"), namespace)
    return namespace


@pytest.fixture(autouse=True)
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """The blocks' ``init_tracer`` keeps spans in memory; the globals are reset after."""
    import ffrtmp_infra.tracing
    from tests.support.django_site import configure
    from tests.tracing.conftest import reset_globals

    configure()  # the Django blocks build the WSGI application
    exporter = InMemorySpanExporter()
    real_init_tracer = ffrtmp_infra.tracing.init_tracer

    def init_tracer(config: Any = None, **kwargs: Any) -> Any:
        # A block that brings its own exporter or processor (the Testing section) keeps it;
        # metrics stay in memory too, never sent to localhost.
        kwargs = kwargs or {"span_processor": SimpleSpanProcessor(exporter)}
        kwargs.setdefault("metric_reader", InMemoryMetricReader())
        return real_init_tracer(config, **kwargs)

    monkeypatch.setattr(ffrtmp_infra.tracing, "init_tracer", init_tracer)
    reset_globals()
    yield exporter
    reset_globals()


@pytest.mark.parametrize("title", sorted(SECTIONS))
def test_every_python_block_runs(title: str) -> None:
    run_section(title)


def server_spans(spans: InMemorySpanExporter) -> list[tuple[str, int]]:
    """(name, trace id) of every SERVER span, in the order they ended."""
    return [
        (s.name, s.context.trace_id)
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.SERVER
    ]


def test_the_starlette_section_traces_requests(spans: InMemorySpanExporter) -> None:
    from starlette.testclient import TestClient

    TestClient(run_section("Starlette")["app"]).get("/")
    assert [name for name, _ in server_spans(spans)] == ["GET /"]


def test_the_fastapi_section_makes_one_trace_per_request(spans: InMemorySpanExporter) -> None:
    from fastapi.testclient import TestClient

    with TestClient(run_section("FastAPI")["app"]) as client:
        for item_id in (1, 2):
            assert client.get(f"/api/items/{item_id}").status_code == 200
    servers = server_spans(spans)
    assert [name for name, _ in servers] == ["GET /api/items/{item_id}"] * 2
    traces = {s.context.trace_id for s in spans.get_finished_spans()}
    assert traces == {trace_id for _, trace_id in servers}


def test_the_flask_section_names_spans_by_rule(spans: InMemorySpanExporter) -> None:
    client = run_section("Flask")["app"].test_client()
    assert client.get("/items/3").status_code == 200
    assert server_spans(spans)[0][0] == "GET /items/{item_id}"


def test_the_django_section_traces_through_the_whole_middleware_stack(
    spans: InMemorySpanExporter,
) -> None:
    import types

    from django.test import Client, override_settings

    namespace = run_section("Django")
    urlconf = types.ModuleType("frameworks_doc_urls")
    urlconf.urlpatterns = namespace["urlpatterns"]  # type: ignore[attr-defined]
    with override_settings(
        ROOT_URLCONF=urlconf,
        MIDDLEWARE=namespace["MIDDLEWARE"],
        FFRTMP_RATELIMIT=namespace["FFRTMP_RATELIMIT"],
        FFRTMP_TRACING=namespace["FFRTMP_TRACING"],
    ):
        client = Client()
        assert client.get("/items/3").status_code == 200
        assert client.get("/health").status_code == 404  # excluded: no span
    assert [name for name, _ in server_spans(spans)] == ["GET /items/{item_id}"]


def test_the_fastapi_section_limits_uploads_per_api_key() -> None:
    from fastapi.testclient import TestClient

    app = run_section("FastAPI")["app"]
    with TestClient(app) as client:
        key = {"x-api-key": "k1"}
        statuses = [client.post("/api/uploads", headers=key).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        assert client.post("/api/uploads", headers={"x-api-key": "k2"}).status_code == 200
        assert client.get("/api/items/3").json() == {"item": 3}


def test_the_flask_section_limits_uploads_per_api_key() -> None:
    app = run_section("Flask")["app"]
    client = app.test_client()
    key = {"X-API-Key": "k1"}
    statuses = [client.post("/uploads", headers=key).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert client.get("/items/3").headers["RateLimit-Policy"] == '"site";q=20;w=1'


def test_the_django_section_configures_the_middleware_and_a_view() -> None:
    from tests.support.django_site import configure

    configure()
    from django.test import RequestFactory, override_settings

    from ffrtmp_infra.ratelimit.django import RateLimitMiddleware

    namespace = run_section("Django")
    with override_settings(
        MIDDLEWARE=namespace["MIDDLEWARE"], FFRTMP_RATELIMIT=namespace["FFRTMP_RATELIMIT"]
    ):
        middleware = RateLimitMiddleware(namespace["upload"])
    factory = RequestFactory()
    statuses = [
        middleware(factory.post("/uploads", HTTP_X_API_KEY="k1")).status_code for _ in range(6)
    ]
    assert statuses == [200] * 5 + [429]
    assert middleware(RequestFactory().get("/health")).status_code == 200


def test_the_middleware_order_section_lets_a_browser_read_the_429() -> None:
    from fastapi.testclient import TestClient

    app = run_section("Middleware order")["app"]

    @app.get("/items")
    async def items() -> list[int]:
        return []

    origin = {"Origin": "https://app.example"}
    with TestClient(app) as client:
        for _ in range(2000):  # 100/s with bursts of 20: a 429 comes within a few dozen
            rejected = client.get("/items", headers=origin)
            if rejected.status_code != 200:
                break
    assert rejected.status_code == 429
    assert rejected.headers["access-control-allow-origin"] == "https://app.example"
    assert "Retry-After" in rejected.headers["access-control-expose-headers"]


def test_the_any_app_section_wraps_plain_asgi_and_wsgi_apps() -> None:
    import asyncio

    namespace = run_section("Any ASGI or WSGI app")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/jobs/7",
        "headers": [],
        "client": ("1.2.3.4", 1),
    }
    for _ in range(6):
        asyncio.run(namespace["asgi_app"](scope, receive, send))
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses == [200] * 5 + [429]
    # The rules (and so the "jobs" limiter) are shared: another client for WSGI.
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/jobs/7", "REMOTE_ADDR": "5.6.7.8"}
    answers = [namespace["wsgi_app"].check(dict(environ))[0] for _ in range(6)]
    assert [a.status if a else 200 for a in answers] == [200] * 5 + [429]


def test_the_any_app_section_traces_plain_asgi_and_wsgi_apps(spans: InMemorySpanExporter) -> None:
    import asyncio

    from ffrtmp_infra.tracing import init_tracer

    init_tracer()  # the section's apps use the global provider
    namespace = run_section("Any ASGI or WSGI app")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/jobs/7", "headers": []}
    asyncio.run(namespace["traced_asgi"](scope, receive, send))
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/jobs/7", "myapp.route": "/jobs/{job_id}"}
    body = namespace["traced_wsgi"](environ, lambda status, headers, exc_info=None: None)
    assert b"".join(body) == b"hello"
    assert [name for name, _ in server_spans(spans)] == ["GET", "GET /jobs/{job_id}"]
