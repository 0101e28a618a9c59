"""CORS preflights pass uncharged, rejected requests keep their route, unmatched rules warn."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from ffrtmp_infra.ratelimit import Limiter, RateLimitMiddleware, Rule, WSGIRateLimitMiddleware
from tests.ratelimit.apps import wsgi_app
from tests.ratelimit.conftest import FakeClock
from tests.support.servers import serve_asgi

ORIGIN = "https://app.example"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"item {request.path_params['item_id']}")


def _cors_inside_limiter(**options: Any) -> Starlette:
    app = Starlette(routes=[Route("/items/{item_id:int}", item)])
    app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN], allow_methods=["GET"])
    app.add_middleware(RateLimitMiddleware, limiter=Limiter(1, 2, clock=FakeClock()), **options)
    return app


def test_contract_five_preflights_then_a_get_through_cors_inside_the_limiter() -> None:
    with TestClient(_cors_inside_limiter()) as client:
        preflights = [client.options("/items/1", headers=PREFLIGHT) for _ in range(5)]
        get = client.get("/items/1", headers={"Origin": ORIGIN})
    assert [r.status_code for r in preflights] == [200] * 5
    assert all(r.headers["access-control-allow-origin"] == ORIGIN for r in preflights)
    assert get.status_code == 200


def test_preflights_can_be_limited_when_asked() -> None:
    with TestClient(_cors_inside_limiter(preflights=True)) as client:
        statuses = [client.options("/items/1", headers=PREFLIGHT).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_a_plain_options_request_is_still_charged() -> None:
    with TestClient(_cors_inside_limiter()) as client:
        statuses = [client.options("/items/1").status_code for _ in range(3)]
    assert statuses[2] == 429


def test_with_cors_outermost_a_429_is_readable_by_the_browser() -> None:
    app = Starlette(routes=[Route("/items/{item_id:int}", item)])
    app.add_middleware(RateLimitMiddleware, limiter=Limiter(1, 1, clock=FakeClock()))
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[ORIGIN],
        expose_headers=["Retry-After", "RateLimit", "RateLimit-Policy"],
    )
    with serve_asgi(app) as base, httpx.Client(base_url=base) as client:
        client.get("/items/1", headers={"Origin": ORIGIN})
        rejected = client.get("/items/1", headers={"Origin": ORIGIN})
    assert rejected.status_code == 429
    assert rejected.headers["access-control-allow-origin"] == ORIGIN
    exposed = rejected.headers["access-control-expose-headers"]
    assert {"Retry-After", "RateLimit"} <= {h.strip() for h in exposed.split(",")}


def test_the_wsgi_middleware_lets_preflights_through_uncharged() -> None:
    app = WSGIRateLimitMiddleware(wsgi_app, limiter=Limiter(1, 1, clock=FakeClock()))
    preflight = {
        "REQUEST_METHOD": "OPTIONS",
        "PATH_INFO": "/",
        "REMOTE_ADDR": "1.2.3.4",
        "HTTP_ORIGIN": ORIGIN,
        "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "GET",
    }
    assert [app.check(dict(preflight))[0] for _ in range(3)] == [None] * 3
    get = {**preflight, "REQUEST_METHOD": "GET"}
    assert app.check(dict(get))[0] is None
    rejected = app.check(dict(get))[0]
    assert rejected is not None
    assert rejected.status == 429


def test_a_rejected_request_carries_its_route_in_the_scope() -> None:
    seen: dict[str, Any] = {}

    def outer(app: Any) -> Any:  # Starlette < 0.38 passes app= by keyword
        async def watching(scope: Any, receive: Any, send: Any) -> None:
            await app(scope, receive, send)
            if scope["type"] == "http":
                seen["route"] = getattr(scope.get("route"), "path_format", None)

        return watching

    app = Starlette(routes=[Route("/items/{item_id:int}", item)])
    app.add_middleware(RateLimitMiddleware, limiter=Limiter(1, 1, clock=FakeClock()))
    app.add_middleware(outer)  # type: ignore[arg-type]
    with TestClient(app) as client:
        assert client.get("/items/1").status_code == 200
        seen.clear()
        assert client.get("/items/2").status_code == 429
    assert seen["route"] == "/items/{item_id}"


def _fastapi_app(rules: list[Rule]) -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/api")

    @router.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    app.include_router(router)
    app.router.routes.append(Mount("/static", app=PlainTextResponse("static")))
    app.add_middleware(RateLimitMiddleware, limiter=Limiter(100, 100), rules=rules)
    return app


def test_a_rule_matching_no_route_warns_once_at_startup(caplog: pytest.LogCaptureFixture) -> None:
    typo = Rule(Limiter(1, 1), path="/items/{item_id}")  # the router's prefix is missing
    good = [
        Rule(Limiter(1, 1), path="/api/items/{id:int}"),
        Rule(path="/api", cost=2),
        Rule(path="/static/css", exempt=True),
    ]
    with (
        caplog.at_level(logging.WARNING, "ffrtmp_infra.ratelimit"),
        TestClient(_fastapi_app([typo, *good])) as client,
    ):
        client.get("/api/items/1")
        client.get("/api/items/1")
    warnings = [r.getMessage() for r in caplog.records if "matches no route" in r.getMessage()]
    assert len(warnings) == 1
    assert "'/items/{item_id}'" in warnings[0]


def test_without_lifespan_the_first_request_checks_the_rules(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = _fastapi_app([Rule(path="/nothing/here", exempt=True)])
    with caplog.at_level(logging.WARNING, "ffrtmp_infra.ratelimit"):
        client = TestClient(app)  # no "with": no lifespan
        client.get("/api/items/1")
        client.get("/api/items/1")
    warnings = [r.getMessage() for r in caplog.records if "matches no route" in r.getMessage()]
    assert len(warnings) == 1
    assert "'/nothing/here'" in warnings[0]


def test_tracing_outside_the_limiter_names_a_rejected_requests_span_by_route() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from ffrtmp_infra.tracing import TracingMiddleware

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = _fastapi_app([Rule(Limiter(1, 1, clock=FakeClock()), path="/api/items/{item_id}")])
    app.add_middleware(TracingMiddleware, tracer_provider=provider)
    with TestClient(app) as client:
        assert [client.get(f"/api/items/{i}").status_code for i in (1, 2)] == [200, 429]
    ours = [
        s
        for s in exporter.get_finished_spans()
        if s.instrumentation_scope.name.startswith("ffrtmp")
    ]
    assert [s.name for s in ours] == ["GET /api/items/{item_id}"] * 2
    assert (ours[1].attributes or {})["http.response.status_code"] == 429
