"""RateLimitMiddleware on a real Starlette app (httpx over ASGI, and real uvicorn)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from ffrtmp_infra.ratelimit import (
    ConfigurationError,
    Limiter,
    RateLimitMiddleware,
    RequestInfo,
    Rule,
    WindowLimiter,
    api_key,
    client_ip,
)
from tests.ratelimit.apps import starlette_app
from tests.ratelimit.conftest import FakeClock
from tests.support.servers import serve_asgi


def limited(**options: Any) -> Any:
    app = starlette_app()
    app.add_middleware(RateLimitMiddleware, **options)
    return app


async def _get_many(app: Any, n: int, path: str = "/", **kwargs: Any) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [await client.get(path, **kwargs) for _ in range(n)]


def get_many(app: Any, n: int, path: str = "/", **kwargs: Any) -> list[httpx.Response]:
    return asyncio.run(_get_many(app, n, path, **kwargs))


def statuses(responses: list[httpx.Response]) -> list[int]:
    return [r.status_code for r in responses]


def test_go_acceptance_through_the_middleware_200_200_429_then_200_150ms_later() -> None:
    clock = FakeClock()
    app = limited(limiter=Limiter(10, 2, clock=clock))
    assert statuses(get_many(app, 3)) == [200, 200, 429]
    clock.advance(0.150)
    assert statuses(get_many(app, 1)) == [200]


def test_rejection_is_problem_json_with_retry_after_in_whole_seconds() -> None:
    app = limited(limiter=Limiter(0.4, 1, clock=FakeClock(), name="api"))
    rejected = get_many(app, 2)[1]
    assert rejected.status_code == 429
    assert rejected.headers["content-type"] == "application/problem+json"
    assert rejected.headers["retry-after"] == "3"  # 2.5 s rounded up
    body = json.loads(rejected.content)
    assert body["type"] == "https://iana.org/assignments/http-problem-types#quota-exceeded"
    assert body["status"] == 429
    assert body["violated-policies"] == ["api"]
    assert rejected.headers["ratelimit"] == '"api";r=0;t=3'


def test_allowed_responses_carry_draft10_headers() -> None:
    app = limited(limiter=Limiter(10, 2, clock=FakeClock(), name="api"))
    first, second = get_many(app, 2)
    assert first.text == "hi"
    assert first.headers["ratelimit-policy"] == '"api";q=2;w=1'
    assert first.headers["ratelimit"] == '"api";r=1;t=1'
    assert second.headers["ratelimit"] == '"api";r=0;t=1'


def test_full_bucket_reports_reset_zero() -> None:
    clock = FakeClock()
    app = limited(limiter=Limiter(1, 5, clock=clock, name="api"))
    get_many(app, 1)
    clock.advance(10)
    response = get_many(app, 1, headers={})[0]
    assert response.headers["ratelimit"] == '"api";r=4;t=1'


def test_legacy_headers_are_delta_seconds() -> None:
    app = limited(limiter=Limiter(1, 3, clock=FakeClock()), headers="legacy")
    response = get_many(app, 1)[0]
    assert response.headers["x-ratelimit-limit"] == "3"
    assert response.headers["x-ratelimit-remaining"] == "2"
    assert response.headers["x-ratelimit-reset"] == "1"
    assert "ratelimit" not in response.headers


def test_headers_can_be_switched_off_but_429_keeps_retry_after() -> None:
    app = limited(limiter=Limiter(1, 1, clock=FakeClock()), headers=None)
    ok, rejected = get_many(app, 2)
    assert not any(name.startswith(("ratelimit", "x-ratelimit")) for name in ok.headers)
    assert rejected.status_code == 429
    assert rejected.headers["retry-after"] == "1"


def test_streaming_response_passes_through_untouched() -> None:
    app = limited(limiter=Limiter(10, 5, clock=FakeClock()))
    response = get_many(app, 1, "/stream")[0]
    assert response.text == "chunk0;chunk1;chunk2;"
    assert "ratelimit" in response.headers


def test_lifespan_and_unknown_scopes_pass_straight_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    middleware = RateLimitMiddleware(app, limiter=Limiter(1, 1))
    asyncio.run(middleware({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    asyncio.run(middleware({"type": "websocket"}, None, None))  # type: ignore[arg-type]
    assert seen == ["lifespan", "websocket"]


def test_dry_run_never_rejects_but_reports_exhaustion() -> None:
    app = limited(limiter=Limiter(1, 1, clock=FakeClock(), name="api"), dry_run=True)
    responses = get_many(app, 3)
    assert statuses(responses) == [200, 200, 200]
    assert responses[2].headers["ratelimit"] == '"api";r=0;t=1'


def test_forwarded_headers_are_ignored_without_trusted_proxies() -> None:
    app = limited(limiter=Limiter(1, 1, clock=FakeClock()))
    first = get_many(app, 1, headers={"x-forwarded-for": "1.1.1.1"})
    second = get_many(app, 1, headers={"x-forwarded-for": "2.2.2.2"})
    assert statuses(first + second) == [200, 429]


def test_trusted_proxy_forwarded_for_gives_each_client_its_bucket() -> None:
    app = limited(
        limiter=Limiter(1, 1, clock=FakeClock()), key=client_ip(trusted_proxies=["127.0.0.0/8"])
    )
    a = get_many(app, 2, headers={"x-forwarded-for": "203.0.113.5"})
    b = get_many(app, 1, headers={"x-forwarded-for": "203.0.113.6"})
    assert statuses(a + b) == [200, 429, 200]


def test_custom_key_returning_none_exempts_the_request() -> None:
    def key(info: RequestInfo) -> str | None:
        return None if info.path == "/health" else "everyone"

    app = limited(limiter=Limiter(1, 1, clock=FakeClock()), key=key)
    assert statuses(get_many(app, 3, "/health")) == [200, 200, 200]
    assert statuses(get_many(app, 2, "/")) == [200, 429]


def test_async_key_function_is_awaited() -> None:
    async def key(info: RequestInfo) -> str:
        await asyncio.sleep(0)
        return info.headers.get("x-user", "anon")

    app = limited(limiter=Limiter(1, 1, clock=FakeClock()), key=key)
    alice = get_many(app, 2, headers={"x-user": "alice"})
    bob = get_many(app, 1, headers={"x-user": "bob"})
    assert statuses(alice + bob) == [200, 429, 200]


def test_api_key_limits_per_key_and_stores_only_a_hash() -> None:
    limiter = Limiter(1, 1, clock=FakeClock())
    app = limited(limiter=limiter, key=api_key())
    one = get_many(app, 2, headers={"authorization": "Bearer s3cret-one"})
    two = get_many(app, 1, headers={"x-api-key": "s3cret-two"})
    assert statuses(one + two) == [200, 429, 200]
    one_key = api_key()(RequestInfo("GET", "/", {"x-api-key": "s3cret-one"}))
    assert isinstance(one_key, str)
    assert "s3cret" not in one_key
    assert limiter.holds(one_key)
    assert len(limiter) == 2


def test_api_key_falls_back_to_the_client_ip() -> None:
    limiter = Limiter(1, 1, clock=FakeClock())
    app = limited(limiter=limiter, key=api_key())
    assert statuses(get_many(app, 2)) == [200, 429]
    assert limiter.holds("ip:127.0.0.1")
    assert len(limiter) == 1


def test_rules_match_route_templates_methods_and_prefixes() -> None:
    clock = FakeClock()
    jobs = Limiter(1, 1, clock=clock, name="jobs")
    posts = Limiter(1, 1, clock=clock, name="posts")
    app = limited(
        rules=[
            Rule(jobs, path="/api/jobs/{job_id}"),
            Rule(posts, path="/api", methods=["POST"]),
        ]
    )
    assert statuses(get_many(app, 2, "/api/jobs/1")) == [200, 429]
    assert statuses(get_many(app, 3, "/api/items")) == [200, 200, 200]  # GET: no rule
    assert statuses(get_many(app, 3, "/")) == [200, 200, 200]

    async def post_twice() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [(await client.post("/api/items")).status_code for _ in range(2)]

    assert asyncio.run(post_twice()) == [200, 429]


def test_exempt_rule_bypasses_the_default_limiter() -> None:
    app = limited(
        limiter=Limiter(1, 1, clock=FakeClock()), rules=[Rule(path="/health", exempt=True)]
    )
    assert statuses(get_many(app, 3, "/health")) == [200, 200, 200]
    assert statuses(get_many(app, 2, "/")) == [200, 429]


def test_rule_cost_charges_several_units() -> None:
    app = limited(limiter=Limiter(1, 4, clock=FakeClock()), rules=[Rule(path="/stream", cost=3)])
    assert statuses(get_many(app, 1, "/stream")) == [200]
    assert statuses(get_many(app, 2, "/")) == [200, 429]


def test_several_limits_are_all_or_nothing() -> None:
    clock = FakeClock()
    per_route = Limiter(1, 1, clock=clock, name="route")
    overall = Limiter(1, 5, clock=clock, name="overall")
    app = limited(limiter=overall, rules=[Rule(per_route, path="/api/items")])
    responses = get_many(app, 3, "/api/items")
    assert statuses(responses) == [200, 429, 429]
    assert responses[0].headers["ratelimit"] == '"overall";r=4;t=1, "route";r=0;t=1'
    assert json.loads(responses[1].content)["violated-policies"] == ["route"]
    # The rejected requests consumed nothing from the overall limit: 4 left.
    assert statuses(get_many(app, 5, "/")) == [200, 200, 200, 200, 429]


def test_dynamic_limiter_picks_a_tier_per_request() -> None:
    clock = FakeClock()
    tiers = {"gold": Limiter(10, 3, clock=clock, name="gold")}
    free = Limiter(1, 1, clock=clock, name="free")

    def tier(info: RequestInfo) -> Limiter | None:
        if info.headers.get("x-tier") == "internal":
            return None
        return tiers.get(info.headers.get("x-tier", ""), free)

    app = limited(rules=[Rule(tier)], key=lambda info: info.headers.get("x-user", "anon"))
    gold = get_many(app, 4, headers={"x-tier": "gold", "x-user": "a"})
    plain = get_many(app, 2, headers={"x-user": "b"})
    internal = get_many(app, 3, headers={"x-tier": "internal"})
    assert statuses(gold) == [200, 200, 200, 429]
    assert statuses(plain) == [200, 429]
    assert statuses(internal) == [200, 200, 200]


def test_window_limiter_from_limits_strings_works_in_a_rule() -> None:
    app = limited(rules=[Rule(WindowLimiter("2/minute", name="minute"))])
    responses = get_many(app, 3)
    assert statuses(responses) == [200, 200, 429]
    assert responses[0].headers["ratelimit-policy"] == '"minute";q=2;w=60'


def test_malformed_headers_and_bytes_never_cause_a_500() -> None:
    app = limited(
        limiter=Limiter(100, 100, clock=FakeClock()),
        key=client_ip(trusted_proxies=["127.0.0.1"], header="forwarded"),
    )
    nasty: list[dict[str, Any]] = [
        {"forwarded": "for=not-an-ip;proto=http"},
        {"forwarded": "for=" + "9" * 20000},
        {"forwarded": ",,,;;;==="},
        {"forwarded": 'for="[2001:db8::1]:4711"'},
        {"forwarded": b"for=\xff\xfe"},
        {"x-api-key": b"\xff\x00\xfe"},
        {"authorization": "Bearer " + "x" * 10000},
    ]
    for headers in nasty:
        assert get_many(app, 1, headers=headers)[0].status_code == 200


def test_missing_client_address_is_limited_as_unknown() -> None:
    limiter = Limiter(1, 1, clock=FakeClock())
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def record(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = RateLimitMiddleware(app, limiter=limiter)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": None}
    for _ in range(2):
        asyncio.run(middleware(scope, None, record))  # type: ignore[arg-type]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200, 429]
    assert limiter.holds("unknown")
    assert len(limiter) == 1


def _websocket_messages(extensions: dict[str, Any]) -> list[list[dict[str, Any]]]:
    app = limited(limiter=Limiter(1, 1, clock=FakeClock()), websockets=True)
    runs = []
    for _ in range(2):
        sent: list[dict[str, Any]] = []
        incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

        async def receive(incoming: list[dict[str, Any]] = incoming) -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "websocket.disconnect"}

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        scope = {
            "type": "websocket",
            "path": "/ws",
            "headers": [],
            "client": ("127.0.0.1", 5000),
            "extensions": extensions,
            "subprotocols": [],
        }
        asyncio.run(app(scope, receive, send))
        runs.append(sent)
    return runs


def test_websocket_handshake_is_limited_with_a_close_code() -> None:
    first, second = _websocket_messages({})
    assert first[0]["type"] == "websocket.accept"
    assert second == [{"type": "websocket.close", "code": 1008, "reason": "rate limited"}]


def test_websocket_handshake_gets_a_429_where_the_server_supports_it() -> None:
    _, second = _websocket_messages({"websocket.http.response": {}})
    assert second[0]["type"] == "websocket.http.response.start"
    assert second[0]["status"] == 429


def test_under_real_uvicorn_the_limit_holds_and_headers_arrive() -> None:
    app = limited(limiter=Limiter(10, 2, clock=FakeClock(), name="api"))
    with serve_asgi(app) as base, httpx.Client(base_url=base) as client:
        responses = [client.get("/") for _ in range(3)]
    assert statuses(responses) == [200, 200, 429]
    assert responses[0].headers["ratelimit-policy"] == '"api";q=2;w=1'
    assert responses[2].headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "give a limiter, or rules"),
        ({"limiter": Limiter(1, 1), "headers": "draft99"}, "headers must be"),
        ({"limiter": "10/second"}, "limiter must be a Limiter"),
        ({"limiter": Limiter(1, 1), "key": "ip"}, "key must be a key function"),
        ({"limiter": Limiter(1, 1), "rules": ["/x"]}, "rules must be Rule objects"),
    ],
)
def test_invalid_middleware_configuration_fails_at_construction(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RateLimitMiddleware(starlette_app(), **options)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((Limiter(1, 2),), {"cost": 3}, "cost 3 exceeds the limiter's burst 2"),
        ((Limiter(1, 2),), {"cost": -1}, "cost must be an int >= 0"),
        ((Limiter(1, 2),), {"path": "api"}, "path must be a string starting with '/'"),
        ((Limiter(1, 2),), {"methods": ["FETCH"]}, "methods must be HTTP methods"),
        ((Limiter(1, 2),), {"exempt": True}, "an exempt rule takes no limiter"),
        ((42,), {}, "limiter must be a Limiter"),
    ],
)
def test_invalid_rules_fail_at_construction(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Rule(*args, **kwargs)
