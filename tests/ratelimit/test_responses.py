"""rate_limit_headers and rejection: the middleware's headers and 429 for glue of your own."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ffrtmp_infra.ratelimit import (
    ConfigurationError,
    Decision,
    Limiter,
    RateLimitMiddleware,
    Rejection,
    WindowLimiter,
    rate_limit_headers,
    rejection,
)
from tests.ratelimit.conftest import FakeClock


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _middleware_answer(limiter: Limiter, headers: Any = "draft10") -> dict[str, Any]:
    app = RateLimitMiddleware(_ok, limiter=limiter, headers=headers)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": ("1.2.3.4", 1)}
    asyncio.run(app(scope, receive, send))
    start, body = sent
    pairs = [(n.decode(), v.decode()) for n, v in start["headers"]]
    return {"status": start["status"], "headers": pairs, "body": body["body"]}


@pytest.mark.parametrize("mode", ["draft10", "legacy", None])
def test_rejection_is_what_the_middleware_sends(mode: Any) -> None:
    theirs_limiter = Limiter(2, 1, clock=FakeClock(), name="api")
    _middleware_answer(theirs_limiter, mode)
    theirs = _middleware_answer(theirs_limiter, mode)
    limiter = Limiter(2, 1, clock=FakeClock(), name="api")
    limiter.hit("1.2.3.4")
    ours = rejection(limiter.hit("1.2.3.4"), mode=mode)
    assert isinstance(ours, Rejection)
    assert ours.status == theirs["status"] == 429
    assert ours.body == theirs["body"]
    assert [(n.lower(), v) for n, v in ours.headers] == theirs["headers"]


def test_rate_limit_headers_are_what_an_allowed_response_carries() -> None:
    theirs = _middleware_answer(Limiter(1, 3, clock=FakeClock(), name="api"))
    decision = Limiter(1, 3, clock=FakeClock(), name="api").hit("1.2.3.4")
    assert [(n.lower(), v) for n, v in rate_limit_headers(decision)] == theirs["headers"]
    assert rate_limit_headers(decision) == [
        ("RateLimit-Policy", '"api";q=3;w=3'),
        ("RateLimit", '"api";r=2;t=1'),
    ]
    assert rate_limit_headers(decision, mode=None) == []


def test_several_decisions_give_one_list_item_each_and_name_the_violated_policy() -> None:
    per_second = Limiter(1, 2, clock=FakeClock(), name="second")
    hourly = WindowLimiter("1/hour", name="hour")
    hourly.hit("k")
    decisions = [per_second.hit("k"), hourly.hit("k")]
    headers = dict(rate_limit_headers(*decisions))
    assert headers["RateLimit-Policy"] == '"second";q=2;w=2, "hour";q=1;w=3600'
    found = rejection(*decisions)
    assert json.loads(found.body)["violated-policies"] == ["hour"]
    assert int(dict(found.headers)["Retry-After"]) > 3000


def test_a_limiter_failing_closed_gives_the_503() -> None:
    limiter = Limiter(1, 1, storage="redis://127.0.0.1:1", failure="closed")
    found = rejection(limiter.hit("k"))
    assert found.status == 503
    assert json.loads(found.body)["status"] == 503


def test_decisions_made_by_hand_are_refused_with_the_reason() -> None:
    with pytest.raises(TypeError, match="a Decision returned by a limiter"):
        rate_limit_headers(Decision(True, 2, 1, 0.0, 0.5))
    with pytest.raises(TypeError, match="at least one Decision"):
        rejection()


def test_an_unknown_header_mode_names_the_value() -> None:
    decision = Limiter(1, 1).hit("k")
    with pytest.raises(ConfigurationError, match="'draft99'"):
        rate_limit_headers(decision, mode="draft99")  # type: ignore[arg-type]


def test_decisions_compare_by_their_numbers_not_their_limiter() -> None:
    one = Limiter(1, 2, clock=FakeClock(), name="same").hit("k")
    other = Limiter(1, 2, clock=FakeClock(), name="same").hit("k")
    assert one == other
    assert one.limiter is not other.limiter
