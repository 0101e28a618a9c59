"""RateLimit, the FastAPI dependency: the middleware's 429, headers, and one charge per limiter."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from ffrtmp_infra.ratelimit import (
    ConfigurationError,
    Decision,
    Limiter,
    RateLimitMiddleware,
    WindowLimiter,
    api_key,
)
from ffrtmp_infra.ratelimit.fastapi import RateLimit, RateLimitExceeded
from tests.ratelimit.conftest import FakeClock
from tests.support.servers import serve_asgi


def _app(*dependencies: Any, router_dependencies: Any = (), app_dependencies: Any = ()) -> FastAPI:
    app = FastAPI(dependencies=list(app_dependencies))
    router = APIRouter(prefix="/api", dependencies=list(router_dependencies))

    @router.get("/items/{item_id}", dependencies=list(dependencies))
    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @app.get("/free")
    async def free() -> dict[str, bool]:
        return {"free": True}

    app.include_router(router)
    return app


def _statuses(responses: list[Any]) -> list[int]:
    return [r.status_code for r in responses]


def test_contract_route_dependency_answers_200_200_then_the_problem_429() -> None:
    app = _app(Depends(RateLimit(Limiter(1, 2))))
    with TestClient(app) as client:
        responses = [client.get("/api/items/1") for _ in range(3)]
    assert _statuses(responses) == [200, 200, 429]
    assert all("ratelimit" in r.headers for r in responses)
    rejected = responses[2]
    assert rejected.headers["retry-after"] == "1"
    assert rejected.headers["content-type"] == "application/problem+json"
    assert rejected.json()["violated-policies"] == ["rate-1-burst-2"]


def test_contract_holds_under_a_real_uvicorn() -> None:
    app = _app(Depends(RateLimit(Limiter(1, 2, name="items"))))
    with serve_asgi(app) as base, httpx.Client(base_url=base) as client:
        responses = [client.get("/api/items/7") for _ in range(3)]
    assert _statuses(responses) == [200, 200, 429]
    assert responses[0].headers["ratelimit"] == '"items";r=1;t=1'
    assert responses[0].json() == {"item": 7}
    assert responses[2].headers["content-type"] == "application/problem+json"
    assert responses[2].headers["retry-after"] == "1"


def _starlette_middleware_answer(limiter: Limiter) -> httpx.Response:
    app = FastAPI()

    @app.get("/api/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    with TestClient(app) as client:
        client.get("/api/items/1")
        return client.get("/api/items/1")


def test_the_rejection_is_byte_for_byte_the_middlewares() -> None:
    clock = FakeClock()
    with TestClient(_app(Depends(RateLimit(Limiter(2, 1, clock=clock, name="p"))))) as client:
        client.get("/api/items/1")
        ours = client.get("/api/items/1")
    theirs = _starlette_middleware_answer(Limiter(2, 1, clock=FakeClock(), name="p"))
    assert ours.status_code == theirs.status_code == 429
    assert ours.content == theirs.content
    names = ["content-type", "retry-after", "content-length", "ratelimit-policy", "ratelimit"]
    assert [ours.headers[n] for n in names] == [theirs.headers[n] for n in names]


def test_router_and_app_dependencies_limit_every_route_below_them() -> None:
    def limit() -> Any:
        return Depends(RateLimit(Limiter(1, 1, clock=FakeClock())))

    with TestClient(_app(router_dependencies=[limit()])) as client:
        assert _statuses([client.get("/api/items/1"), client.get("/api/items/2")]) == [200, 429]
        assert client.get("/free").status_code == 200
    with TestClient(_app(app_dependencies=[limit()])) as client:
        assert _statuses([client.get("/free"), client.get("/api/items/1")]) == [200, 429]


def test_with_the_middleware_on_the_same_limiter_a_request_is_charged_once() -> None:
    limiter = Limiter(1, 3, clock=FakeClock())
    app = _app(Depends(RateLimit(limiter)))
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    with TestClient(app) as client:
        responses = [client.get("/api/items/1") for _ in range(4)]
    assert _statuses(responses) == [200, 200, 200, 429]
    # One set of quota headers: the middleware's.
    assert responses[0].headers.get_list("ratelimit") == ['"rate-1-burst-3";r=2;t=1']


def test_the_same_limiter_on_router_and_route_charges_once() -> None:
    limiter = Limiter(1, 2, clock=FakeClock())
    app = _app(Depends(RateLimit(limiter)), router_dependencies=[Depends(RateLimit(limiter))])
    with TestClient(app) as client:
        assert _statuses([client.get("/api/items/1") for _ in range(3)]) == [200, 200, 429]


def test_a_named_dependency_has_buckets_of_its_own() -> None:
    limiter = Limiter(1, 1, clock=FakeClock())
    app = _app(Depends(RateLimit(limiter, name="items")))
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    with TestClient(app) as client:
        assert client.get("/free").status_code == 200  # the middleware's bucket is empty now
        assert client.get("/api/items/1").status_code == 429  # ... rejected by the middleware
    with TestClient(_app(Depends(RateLimit(limiter, name="items")))) as client:
        assert client.get("/api/items/1").status_code == 200  # "items:" bucket, still full


def test_legacy_headers_and_cost() -> None:
    app = _app(Depends(RateLimit(Limiter(1, 4, clock=FakeClock()), cost=2, headers="legacy")))
    with TestClient(app) as client:
        responses = [client.get("/api/items/1") for _ in range(3)]
    assert _statuses(responses) == [200, 200, 429]
    assert responses[0].headers["x-ratelimit-remaining"] == "2"
    assert "ratelimit" not in responses[0].headers


def test_an_async_key_function_and_an_exempting_key() -> None:
    async def user(info: Any) -> str | None:
        return info.headers.get("x-user")

    app = _app(Depends(RateLimit(Limiter(1, 1, clock=FakeClock()), key=user)))
    with TestClient(app) as client:
        assert [client.get("/api/items/1").status_code for _ in range(3)] == [200] * 3
        ann = {"x-user": "ann"}
        assert _statuses([client.get("/api/items/1", headers=ann) for _ in range(2)]) == [200, 429]
        assert client.get("/api/items/1", headers={"x-user": "bob"}).status_code == 200


def test_the_dependency_value_is_the_decision() -> None:
    app = FastAPI()
    limit = RateLimit(Limiter(1, 5, clock=FakeClock()), key=api_key())

    @app.get("/me")
    async def me(decision: Decision = Depends(limit)) -> dict[str, int]:  # noqa: B008
        return {"remaining": decision.remaining}

    with TestClient(app) as client:
        assert client.get("/me", headers={"x-api-key": "k"}).json() == {"remaining": 4}


def test_an_exception_handler_of_the_app_answers_instead() -> None:
    app = _app(Depends(RateLimit(Limiter(1, 1, clock=FakeClock()))))

    @app.exception_handler(RateLimitExceeded)
    async def slow_down(request: Request, exc: RateLimitExceeded) -> JSONResponse:
        return JSONResponse({"slow": "down"}, status_code=exc.status_code, headers=exc.headers)

    with TestClient(app) as client:
        client.get("/api/items/1")
        rejected = client.get("/api/items/1")
    assert rejected.json() == {"slow": "down"}
    assert rejected.status_code == 429
    assert rejected.headers["retry-after"] == "1"


@pytest.mark.redis
def test_a_redis_limiter_decides_through_the_async_client(redis_url: str) -> None:
    limiter = Limiter(1, 2, storage=redis_url, name="shared")
    with TestClient(_app(Depends(RateLimit(limiter)))) as client:
        responses = [client.get("/api/items/1") for _ in range(3)]
    assert _statuses(responses) == [200, 200, 429]
    assert json.loads(responses[2].content)["violated-policies"] == ["shared"]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("10/second",), {}, "limiter must be a Limiter"),
        ((Limiter(1, 2),), {"cost": 3}, "cost 3 exceeds the limiter's burst 2"),
        ((Limiter(1, 2),), {"key": "ip"}, "key must be a key function"),
        ((Limiter(1, 2),), {"name": "a\nb"}, "name must be 1-64 characters"),
        ((Limiter(1, 2),), {"headers": "draft99"}, "headers must be"),
        ((WindowLimiter("1/second"),), {"cost": -1}, "cost must be an int >= 0"),
    ],
)
def test_invalid_configuration_fails_at_construction(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RateLimit(*args, **kwargs)


def test_without_starlettes_handler_dict_the_fallback_warns_once_and_keeps_the_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ffrtmp_infra.ratelimit import _compat, rejection

    monkeypatch.setattr(_compat, "_warned", set())
    with pytest.warns(RuntimeWarning, match="starlette.exception_handlers"):
        assert _compat.add_exception_handler({}, RateLimitExceeded, print) is False
    limiter = Limiter(1, 1, clock=FakeClock())
    limiter.hit("k")
    exc = RateLimitExceeded(rejection(limiter.hit("k")))
    assert exc.status_code == 429
    assert exc.headers is not None
    assert exc.headers["Retry-After"] == "1"
    assert "RateLimit" in exc.headers
    assert "Content-Type" not in exc.headers  # FastAPI's handler sets its own body and type
