"""ffrtmp_infra.ratelimit.flask.limit: the WSGI middleware's 429 on one view."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from ffrtmp_infra.ratelimit import (
    ConfigurationError,
    Limiter,
    WSGIRateLimitMiddleware,
    api_key,
    rejection,
)
from ffrtmp_infra.ratelimit.flask import limit
from tests.ratelimit.conftest import FakeClock


def _app(limiter: Limiter, **options: Any) -> Flask:
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    @limit(limiter, **options)
    def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @app.get("/async")
    @limit(limiter, **options)
    async def later() -> str:
        return "later"

    @app.get("/free")
    def free() -> str:
        return "free"

    return app


def test_a_limited_view_answers_200_200_then_the_middlewares_429() -> None:
    client = _app(Limiter(1, 2, clock=FakeClock(), name="items")).test_client()
    responses = [client.get("/items/1") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["RateLimit"] == '"items";r=1;t=1'
    assert responses[0].json == {"item": 1}
    rejected = responses[2]
    assert rejected.headers["Content-Type"] == "application/problem+json"
    assert rejected.headers["Retry-After"] == "1"
    assert client.get("/free").status_code == 200
    twin = Limiter(1, 2, clock=FakeClock(), name="items")
    twin.hit("127.0.0.1")
    twin.hit("127.0.0.1")
    expected = rejection(twin.hit("127.0.0.1"))
    assert rejected.data == expected.body
    assert {(n.lower(), v) for n, v in expected.headers} <= {
        (n.lower(), v) for n, v in rejected.headers.items()
    }


def test_async_views_are_limited_too() -> None:
    client = _app(Limiter(1, 1, clock=FakeClock())).test_client()
    assert [client.get("/async").status_code for _ in range(2)] == [200, 429]


def test_beside_the_wsgi_middleware_a_request_is_charged_once() -> None:
    limiter = Limiter(1, 3, clock=FakeClock(), name="shared")
    app = _app(limiter)
    app.wsgi_app = WSGIRateLimitMiddleware(app.wsgi_app, limiter=limiter)  # type: ignore[method-assign]
    client = app.test_client()
    responses = [client.get("/items/1") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[0].headers.getlist("RateLimit") == ['"shared";r=2;t=1']


def test_key_cost_and_legacy_headers() -> None:
    client = _app(
        Limiter(1, 4, clock=FakeClock()), key=api_key(), cost=2, headers="legacy"
    ).test_client()
    key = {"X-API-Key": "k"}
    responses = [client.get("/items/1", headers=key) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["X-RateLimit-Remaining"] == "2"
    assert json.loads(responses[2].data)["status"] == 429
    assert client.get("/items/1", headers={"X-API-Key": "other"}).status_code == 200


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("10/second",), {}, "limiter must be a Limiter"),
        ((Limiter(1, 2),), {"cost": 3}, "cost 3 exceeds the limiter's burst 2"),
        ((Limiter(1, 2),), {"key": "ip"}, "key must be a key function"),
        ((Limiter(1, 2),), {"headers": "draft99"}, "headers must be"),
    ],
)
def test_invalid_configuration_fails_at_decoration(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        limit(*args, **kwargs)


def test_async_key_functions_are_refused_under_wsgi() -> None:
    async def user(info: Any) -> str:
        return "u"

    with pytest.raises(ConfigurationError, match="synchronous key functions"):
        limit(Limiter(1, 1), key=user)
