"""Each compatibility shim, forced onto its public-API fallback, still limits correctly.

The probes in ``ratelimit._compat`` look for ``limits``/redis-py names that are
private or exist only in some releases; each test here replaces one probe with
"not found" and checks the limiter against a real redis-server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ffrtmp_infra.ratelimit import ConfigurationError, Limiter, WindowLimiter, _compat, _redis
from tests.support.redis_server import RedisServer


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test sees its own warnings and builds its own backends.
    monkeypatch.setattr(_compat, "_warned", set())
    monkeypatch.setattr(_redis, "_backends", {})


def _missing(*_: Any, **__: Any) -> None:
    return None


def _keys(server: RedisServer) -> list[bytes]:
    client = server.client()
    try:
        return sorted(client.keys("*"))
    finally:
        client.close()


def _expected_fallbacks() -> set[str]:
    """The fallbacks the installed releases need (none with limits >= 5.1, redis-py >= 5.2)."""
    from importlib.metadata import version

    from packaging.version import Version

    limits, redis = Version(version("limits")), Version(version("redis"))
    no_async_redispy = limits < Version("4.2") or redis < Version("5.2")  # limits' rule
    expected = set()
    if limits < Version("4.1"):
        expected.add("the Redis token bucket")
    if no_async_redispy:
        expected.add("the async Redis token bucket")
        expected.add("WindowLimiter's async methods (sync storage in a worker thread)")
    if limits < Version("5.1"):
        expected.add("WindowLimiter's key_prefix")
    return expected


@pytest.mark.redis
def test_fallbacks_are_taken_only_where_the_installed_releases_lack_the_feature(
    redis_url: str,
) -> None:
    limiter = Limiter(1, 2, storage=redis_url)
    window = WindowLimiter("2/minute", storage=redis_url)

    async def main() -> None:
        assert (await limiter.ahit("k")).allowed
        assert (await window.ahit("k")).allowed

    asyncio.run(main())
    assert _compat._warned == _expected_fallbacks()


@pytest.mark.redis
def test_sync_bucket_builds_its_own_client_when_limits_hides_it(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_server: RedisServer
) -> None:
    monkeypatch.setattr(_compat, "_limits_sync_client", _missing)
    with pytest.warns(RuntimeWarning, match="get_connection"):
        limiter = Limiter(1, 2, storage=redis_url, name="api")
    assert [limiter.hit("k").allowed for _ in range(3)] == [True, True, False]
    assert _keys(redis_server) == [b"ffrtmp-rl:api:k"]
    limiter.reset("k")
    assert limiter.hit("k").allowed


@pytest.mark.redis
def test_async_bucket_builds_its_own_client_when_limits_has_no_bridge(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setattr(_compat, "_limits_async_client", _missing)
    limiter = Limiter(1, 2, storage=redis_url, name="api")
    assert limiter.hit("k").allowed

    async def main() -> list[bool]:
        allowed = [(await limiter.ahit("k")).allowed for _ in range(2)]
        await limiter.areset("k")
        return [*allowed, (await limiter.ahit("k")).allowed]

    with pytest.warns(RuntimeWarning, match="async storage's redis-py client"):
        assert asyncio.run(main()) == [True, False, True]


@pytest.mark.redis
def test_window_key_prefix_becomes_an_identifier_on_an_older_limits(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_server: RedisServer
) -> None:
    monkeypatch.setattr(_compat, "_limits_accepts", lambda option, asyncio_api: False)
    with pytest.warns(RuntimeWarning, match="key_prefix"):
        first = WindowLimiter("2/minute", storage=redis_url, key_prefix="one")
    other = WindowLimiter("2/minute", storage=redis_url, key_prefix="two")
    assert [first.hit("k").allowed for _ in range(3)] == [True, True, False]
    assert other.hit("k").allowed  # another prefix, another window
    assert all(b"/one/k/" in key or b"/two/k/" in key for key in _keys(redis_server))

    async def main() -> bool:  # no async redis-py storage either: a worker thread
        return (await first.ahit("k")).allowed

    with pytest.warns(RuntimeWarning, match="worker thread"):
        assert asyncio.run(main()) is False
    first.reset("k")
    assert first.hit("k").allowed


@pytest.mark.redis
def test_window_async_runs_the_sync_storage_in_a_thread_without_async_redis(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setattr(_compat, "_limits_async_storage", _missing)
    limiter = WindowLimiter("2/minute", storage=redis_url)
    assert limiter.hit("k").allowed

    async def main() -> list[bool]:
        allowed = [(await limiter.ahit("k")).allowed for _ in range(2)]
        tested = await limiter.atest("k")
        await limiter.areset("k")
        return [*allowed, tested, (await limiter.ahit("k")).allowed]

    with pytest.warns(RuntimeWarning, match="worker thread"):
        assert asyncio.run(main()) == [True, False, False, True]


def test_unknown_scheme_is_still_a_clear_error_without_limits_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_compat, "_limits_schemes", _missing)
    with (
        pytest.warns(RuntimeWarning, match="SCHEMES"),
        pytest.raises(ConfigurationError, match=r"unknown storage scheme 'memcached'"),
    ):
        Limiter(1, 2, storage="memcached://127.0.0.1:11211")


def test_a_limits_without_the_sliding_window_counter_names_the_strategies_it_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import limits.strategies

    monkeypatch.delattr(limits.strategies, "SlidingWindowCounterRateLimiter")
    with pytest.raises(ConfigurationError, match=r"\['fixed-window', 'moving-window'\]"):
        WindowLimiter("2/minute", strategy="sliding-window-counter")
    assert WindowLimiter("2/minute", strategy="fixed-window").hit("k").allowed


def test_warnings_are_given_once_per_process() -> None:
    import warnings

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):
            _compat.warn_fallback("x", "y is missing")
    assert [str(w.message) for w in record] == [
        "ffrtmp_infra.ratelimit: y is missing in the installed limits/redis-py; "
        "x uses its public-API fallback"
    ]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("redis://:s3cret@127.0.0.1:6390/2", {"host": "127.0.0.1", "port": 6390, "db": 2}),
        ("valkey://127.0.0.1:6391", {"host": "127.0.0.1", "port": 6391}),
        ("redis+unix:///tmp/redis.sock", {"path": "/tmp/redis.sock"}),
    ],
)
def test_the_fallback_client_reads_limits_uris(uri: str, expected: dict[str, Any]) -> None:
    for asyncio_client in (False, True):
        client = _compat.redis_client(uri, {}, asyncio_client=asyncio_client)
        kwargs = client.connection_pool.connection_kwargs
        assert {k: kwargs[k] for k in expected} == expected
        if "s3cret" in uri:
            assert kwargs["password"] == "s3cret"


def test_the_fallback_client_finds_the_sentinel_service() -> None:
    for asyncio_client in (False, True):
        client = _compat.redis_client(
            "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster",
            {"socket_timeout": 0.5},
            asyncio_client=asyncio_client,
        )
        pool = client.connection_pool
        assert pool.service_name == "mymaster"
        assert [
            (s.connection_pool.connection_kwargs["port"]) for s in pool.sentinel_manager.sentinels
        ] == [26379, 26380]
