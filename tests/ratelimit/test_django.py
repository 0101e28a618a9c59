"""ffrtmp_infra.ratelimit.django: the middleware from settings and the view decorator."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.django_site import configure

configure()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from ffrtmp_infra.ratelimit import ConfigurationError, Limiter, Rule, rejection  # noqa: E402
from ffrtmp_infra.ratelimit.django import RateLimitMiddleware, limit  # noqa: E402
from tests.ratelimit.conftest import FakeClock  # noqa: E402

MIDDLEWARE = "ffrtmp_infra.ratelimit.django.RateLimitMiddleware"
VIEW_LIMITER = Limiter(1, 2, clock=FakeClock(), name="view")
SHARED = Limiter(1, 3, clock=FakeClock(), name="shared")


@limit(VIEW_LIMITER)
def item(request: Any, item_id: int) -> JsonResponse:
    return JsonResponse({"item": item_id})


@limit(VIEW_LIMITER)
async def later(request: Any) -> HttpResponse:
    return HttpResponse("later")


@limit(SHARED)
def shared(request: Any) -> HttpResponse:
    return HttpResponse("shared")


def free(request: Any) -> HttpResponse:
    return HttpResponse("free")


async def afree(request: Any) -> HttpResponse:
    return HttpResponse("afree")


urlpatterns = [
    path("items/<int:item_id>", item),
    path("later", later),
    path("shared", shared),
    path("free", free),
    path("afree", afree),
    path("health", free),
]
URLS = override_settings(ROOT_URLCONF=__name__)


@pytest.fixture(autouse=True)
def _fresh_limiters() -> None:
    for limiter in (VIEW_LIMITER, SHARED):
        for key in ("127.0.0.1", "unknown"):
            limiter.reset(key)


@URLS
def test_a_limited_view_answers_200_200_then_the_middlewares_429() -> None:
    client = Client()
    responses = [client.get("/items/4") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0]["RateLimit"] == '"view";r=1;t=1'
    assert responses[0].json() == {"item": 4}
    rejected = responses[2]
    twin = Limiter(1, 2, clock=FakeClock(), name="view")
    twin.hit("127.0.0.1")
    twin.hit("127.0.0.1")
    expected = rejection(twin.hit("127.0.0.1"))
    assert rejected.content == expected.body
    assert all(rejected[name] == value for name, value in expected.headers)


@URLS
def test_async_views_are_limited_under_the_async_handler() -> None:
    async def run() -> list[int]:
        client = AsyncClient()
        return [(await client.get("/later")).status_code for _ in range(3)]

    assert asyncio.run(run()) == [200, 200, 429]


@override_settings(
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[MIDDLEWARE],
    FFRTMP_RATELIMIT={
        "limiter": Limiter(1, 2, clock=FakeClock(), name="site"),
        "rules": [Rule(path="/health", exempt=True)],
    },
)
def test_the_middleware_limits_every_view_from_the_setting() -> None:
    client = Client()
    responses = [client.get("/free") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0]["RateLimit-Policy"] == '"site";q=2;w=2'
    assert responses[2]["Content-Type"] == "application/problem+json"
    assert [client.get("/health").status_code for _ in range(3)] == [200] * 3


@override_settings(
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[MIDDLEWARE],
    FFRTMP_RATELIMIT={"limiter": Limiter(1, 2, clock=FakeClock(), name="site")},
)
def test_the_middleware_runs_async_under_asgi() -> None:
    async def run() -> list[int]:
        client = AsyncClient()
        return [(await client.get("/afree")).status_code for _ in range(3)]

    assert asyncio.run(run()) == [200, 200, 429]


@override_settings(
    ROOT_URLCONF=__name__, MIDDLEWARE=[MIDDLEWARE], FFRTMP_RATELIMIT={"limiter": SHARED}
)
def test_beside_the_middleware_a_request_is_charged_once() -> None:
    client = Client()
    responses = [client.get("/shared") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (None, "FFRTMP_RATELIMIT must be a dict of rate-limit options"),
        ({"limiter": "10/second"}, "limiter must be a Limiter or WindowLimiter, got '10/second'"),
        ({"limiter": Limiter(1, 1), "burst": 3}, r"unknown options \['burst'\]"),
        ({"limiter": Limiter(1, 1), "headers": "draft99"}, "headers must be"),
        ({"rules": [Rule(path="/x", exempt=True)]}, "give a limiter, or rules"),
    ],
)
def test_an_invalid_setting_is_improperly_configured_naming_value_and_rule(
    setting: Any, message: str
) -> None:
    with (
        override_settings(FFRTMP_RATELIMIT=setting),
        pytest.raises(ImproperlyConfigured, match=message),
    ):
        RateLimitMiddleware(free)


def test_an_invalid_decorator_fails_at_decoration() -> None:
    with pytest.raises(ConfigurationError, match="cost 3 exceeds the limiter's burst 2"):
        limit(Limiter(1, 2), cost=3)
