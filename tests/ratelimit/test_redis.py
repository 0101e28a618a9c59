"""The token bucket on a real redis-server: atomic script, server clock, failure policy."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import time
from typing import Any

import httpx
import pytest

from ffrtmp_infra.ratelimit import Limiter, RateLimitMiddleware, Rule, WindowLimiter
from tests.ratelimit.apps import starlette_app
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis


def test_redis_bucket_allows_burst_then_rejects_with_retry_after(redis_url: str) -> None:
    limiter = Limiter(1, 2, storage=redis_url, name="api")
    first, second, third = (limiter.hit("k") for _ in range(3))
    assert (first.allowed, first.remaining) == (True, 1)
    assert (second.allowed, second.remaining) == (True, 0)
    assert not third.allowed
    assert 0.8 < third.retry_after <= 1.0
    assert 1.8 < third.reset_after <= 2.0
    limiter.reset("k")
    assert limiter.hit("k").allowed


def test_redis_state_lives_under_the_prefix_and_expires(redis_url: str, redis_server: Any) -> None:
    limiter = Limiter(10, 5, storage=redis_url, name="api", key_prefix="myapp")
    limiter.hit("203.0.113.1", cost=3)
    client = redis_server.client()
    try:
        assert client.keys("*") == [b"myapp:api:203.0.113.1"]
        assert 0 < client.pttl("myapp:api:203.0.113.1") <= 300
    finally:
        client.close()


def test_redis_decisions_use_the_server_clock_not_the_hosts(redis_url: str) -> None:
    # Two "hosts" whose clocks disagree by hours share one bucket correctly.
    early = Limiter(1, 2, storage=redis_url, name="shared", clock=lambda: 0.0)
    late = Limiter(1, 2, storage=redis_url, name="shared", clock=lambda: 1e6)
    assert early.hit("k").allowed
    assert late.hit("k").allowed
    assert not early.hit("k").allowed
    assert not late.hit("k").allowed


def test_redis_cost_above_burst_is_never_admitted(redis_url: str) -> None:
    decision = Limiter(1, 2, storage=redis_url).hit("k", cost=3)
    assert not decision.allowed
    assert decision.retry_after == float("inf")


def test_redis_async_hits_share_state_with_sync_hits(redis_url: str) -> None:
    limiter = Limiter(1, 3, storage=redis_url)
    limiter.hit("k")

    async def scenario() -> list[bool]:
        results = [(await limiter.ahit("k")).allowed for _ in range(3)]
        await limiter.areset("k")
        results.append((await limiter.ahit("k")).allowed)
        return results

    assert asyncio.run(scenario()) == [True, True, False, True]


_HAMMER = textwrap.dedent(
    """
    import sys, time
    from ffrtmp_infra.ratelimit import Limiter
    limiter = Limiter(50, 10, storage=sys.argv[1], name="hammer")
    limiter.hit("warm-up")
    print("ready", flush=True)
    sys.stdin.readline()  # every process starts hammering on the same "go"
    deadline = time.monotonic() + 1.0
    admitted = 0
    while time.monotonic() < deadline:
        admitted += limiter.hit("one-key").allowed
    print(admitted, flush=True)
    """
)


def test_several_processes_on_one_key_admit_no_more_than_the_bound(redis_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _HAMMER, redis_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    start = time.monotonic()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    counts = [int(proc.communicate(timeout=30)[0]) for proc in procs]
    elapsed = time.monotonic() - start
    total = sum(counts)
    assert total <= 10 + 50 * elapsed
    assert total >= 10 + 50 * 0.5  # the bucket really was refilling and admitting


def test_redis_costs_and_slow_rates_match_the_memory_bucket(redis_url: str) -> None:
    """Costs above one, a rate far below one per second and a long tolerance (the reset
    in microseconds has 16 digits) decide exactly as the in-memory bucket does."""
    for rate, burst, costs in ((1e-9, 5, (2, 2, 2, 1, 1)), (0.01, 4, (3, 2, 1, 1, 1))):
        shared = Limiter(rate, burst, storage=redis_url, name=f"slow-{rate:g}")
        local = Limiter(rate, burst, clock=lambda: 0.0)
        for cost in costs:
            remote, mine = shared.hit("k", cost=cost), local.hit("k", cost=cost)
            assert (remote.allowed, remote.remaining) == (mine.allowed, mine.remaining), cost
            assert remote.reset_after == pytest.approx(mine.reset_after, rel=1e-3, abs=0.01)
            assert remote.retry_after == pytest.approx(mine.retry_after, rel=1e-3, abs=0.01)


def test_several_redis_limits_are_all_or_nothing(redis_url: str) -> None:
    overall = Limiter(0.001, 5, storage=redis_url, name="overall")
    per_route = Limiter(0.001, 1, storage=redis_url, name="route")
    app = starlette_app()
    app.add_middleware(
        RateLimitMiddleware, limiter=overall, rules=[Rule(per_route, path="/api/items")]
    )

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            codes = [(await client.get("/api/items")).status_code for _ in range(3)]
            codes += [(await client.get("/")).status_code for _ in range(5)]
            return codes

    # /api/items is charged to both; its two rejections gave the overall units back.
    assert asyncio.run(run()) == [200, 429, 429, 200, 200, 200, 200, 429]


def test_window_limiter_on_redis(redis_url: str) -> None:
    limiter = WindowLimiter("2/minute", storage=redis_url, strategy="sliding-window-counter")
    assert [limiter.hit("k").allowed for _ in range(3)] == [True, True, False]

    async def again() -> bool:
        return (await limiter.ahit("k")).allowed

    assert asyncio.run(again()) is False


# ---------------------------------------------------------------- failure policy
def _down(server: RedisServer, failure: str, **options: Any) -> Limiter:
    limiter = Limiter(1, 2, storage=server.url, failure=failure, recovery_interval=0.0, **options)  # type: ignore[arg-type]
    assert limiter.hit("k").allowed  # reachable at first
    server.kill()
    return limiter


def test_fail_open_admits_and_flags_the_decision(private_redis: RedisServer) -> None:
    limiter = _down(private_redis, "open")
    decisions = [limiter.hit("k") for _ in range(5)]
    assert all(d.allowed and d.storage_error for d in decisions)


def test_fail_closed_rejects_and_the_middleware_answers_503(private_redis: RedisServer) -> None:
    limiter = _down(private_redis, "closed")
    decision = limiter.hit("k")
    assert not decision.allowed
    assert decision.storage_error
    app = starlette_app()
    app.add_middleware(RateLimitMiddleware, limiter=limiter)

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/")

    response = asyncio.run(get())
    assert response.status_code == 503
    assert json.loads(response.content)["type"].endswith("#temporary-reduced-capacity")


def test_fail_local_limits_in_memory_then_recovers(private_redis: RedisServer) -> None:
    limiter = _down(private_redis, "local")
    local = [limiter.hit("k") for _ in range(3)]
    assert [d.allowed for d in local] == [True, True, False]
    assert all(d.storage_error for d in local)
    private_redis.start()
    back = limiter.hit("other")
    assert back.allowed
    assert not back.storage_error


def test_failures_are_logged_once_per_interval_and_recovery_is_logged(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = _down(private_redis, "open", log_interval=3600)
    with caplog.at_level(logging.WARNING, logger="ffrtmp_infra.ratelimit"):
        for _ in range(20):
            limiter.hit("k")
        private_redis.start()
        assert not limiter.hit("k").storage_error
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "unavailable" in m]) == 1
    assert len([m for m in messages if "reachable again" in m]) == 1
    assert all(private_redis.url not in m for m in messages)


def test_circuit_skips_the_dead_storage_until_the_recovery_interval(
    private_redis: RedisServer,
) -> None:
    limiter = Limiter(1, 2, storage=private_redis.url, failure="open", recovery_interval=60)
    private_redis.kill()
    limiter.hit("k")
    private_redis.start()
    # Still inside the recovery interval: decided by the policy without trying Redis.
    assert limiter.hit("k").storage_error


def test_async_path_fails_open_and_recovers(private_redis: RedisServer) -> None:
    limiter = Limiter(1, 2, storage=private_redis.url, failure="open", recovery_interval=0.0)

    async def scenario() -> list[bool]:
        flags = [(await limiter.ahit("k")).storage_error]
        private_redis.kill()
        flags.append((await limiter.ahit("k")).storage_error)
        private_redis.start()
        flags.append((await limiter.ahit("k")).storage_error)
        return flags

    assert asyncio.run(scenario()) == [False, True, False]


def _script_calls(server: Any) -> int:
    client = server.client()
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(stats.get(name, {}).get("calls", 0) for name in ("cmdstat_evalsha", "cmdstat_eval"))


def test_limits_on_one_redis_are_decided_in_one_round_trip(
    redis_url: str, redis_server: Any
) -> None:
    overall = Limiter(0.001, 5, storage=redis_url, name="overall")
    per_route = Limiter(0.001, 1, storage=redis_url, name="route")
    app = starlette_app()
    app.add_middleware(
        RateLimitMiddleware, limiter=overall, rules=[Rule(per_route, path="/api/items")]
    )

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/api/items")  # loads the script
            before = _script_calls(redis_server)
            codes = [(await client.get("/api/items")).status_code for _ in range(2)]
            assert _script_calls(redis_server) - before == 2
            return codes

    assert asyncio.run(run()) == [429, 429]
    # Rejected by "route" inside the script: "overall" was never charged for them.
    assert overall.hit("127.0.0.1").remaining == 3


def test_script_is_reloaded_after_the_server_forgets_it(redis_url: str, redis_server: Any) -> None:
    limiter = Limiter(1, 2, storage=redis_url)
    assert limiter.hit("k").allowed
    client = redis_server.client()
    try:
        client.script_flush()
    finally:
        client.close()
    decision = limiter.hit("k")
    assert decision.allowed
    assert not decision.storage_error

    async def async_after_flush() -> bool:
        await limiter.ahit("x")
        flusher = redis_server.client()
        try:
            flusher.script_flush()
        finally:
            flusher.close()
        return (await limiter.ahit("x")).storage_error

    assert asyncio.run(async_after_flush()) is False


def test_the_storage_password_never_appears_in_repr_or_logs(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = private_redis.url.replace("redis://", "redis://:s3cret-pw@")
    private_redis.kill()
    limiter = Limiter(1, 1, storage=url, failure="open")
    with caplog.at_level(logging.WARNING, logger="ffrtmp_infra.ratelimit"):
        assert limiter.hit("k").storage_error
    assert "s3cret-pw" not in repr(limiter)
    assert caplog.records
    assert all("s3cret-pw" not in r.getMessage() for r in caplog.records)


def test_under_real_uvicorn_the_async_redis_path_limits_and_reports(redis_url: str) -> None:
    from tests.support.servers import serve_asgi

    app = starlette_app()
    app.add_middleware(RateLimitMiddleware, limiter=Limiter(0.5, 2, storage=redis_url, name="api"))
    with serve_asgi(app) as base, httpx.Client(base_url=base) as client:
        responses = [client.get("/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["ratelimit-policy"] == '"api";q=2;w=4'
    assert responses[1].headers["ratelimit"] == '"api";r=0;t=2'
    assert responses[2].headers["retry-after"] == "2"
