"""WindowLimiter: limits' own window strategies behind the same Decision."""

from __future__ import annotations

import asyncio

import pytest

from ffrtmp_infra.ratelimit import ConfigurationError, WindowLimiter


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
def test_each_strategy_admits_the_quota_then_rejects(strategy: str) -> None:
    limiter = WindowLimiter("3/minute", strategy=strategy)  # type: ignore[arg-type]
    decisions = [limiter.hit("k") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert 0 < decisions[3].retry_after <= 60
    assert decisions[0].limit == 3


def test_window_test_consumes_nothing_and_reset_clears() -> None:
    limiter = WindowLimiter("1/hour")
    assert limiter.test("k")
    assert limiter.hit("k").allowed
    assert not limiter.test("k")
    limiter.reset("k")
    assert limiter.hit("k").allowed


def test_window_async_on_memory_uses_the_same_state() -> None:
    limiter = WindowLimiter("1/hour")
    limiter.hit("k")

    async def again() -> bool:
        return (await limiter.ahit("k")).allowed

    assert asyncio.run(again()) is False


def test_window_policy_name_and_window_for_headers() -> None:
    limiter = WindowLimiter("10 per 5 seconds")
    assert limiter.window == 5
    assert limiter.name == "window-10 per 5 seconds"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("lots",), {}, "limit must be one limits rate string"),
        (("1/second;5/minute",), {}, "exactly one window"),
        (("1/second",), {"strategy": "token-bucket"}, "strategy must be one of"),
        (("1/second",), {"storage": "nowhere://x"}, "invalid storage"),
        ((100,), {}, "limit must be a string"),
    ],
)
def test_invalid_window_configuration_fails_at_construction(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WindowLimiter(*args, **kwargs)  # type: ignore[arg-type]
