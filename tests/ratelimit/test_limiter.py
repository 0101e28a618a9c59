"""The in-memory token bucket (GCRA) under an injected clock."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffrtmp_infra.ratelimit import ConfigurationError, Limiter
from tests.ratelimit.conftest import FakeClock


def test_go_acceptance_rate_10_burst_2_allow_allow_deny_then_allow_150ms_later() -> None:
    clock = FakeClock()
    limiter = Limiter(10, 2, clock=clock)
    assert limiter.hit("k").allowed
    assert limiter.hit("k").allowed
    assert not limiter.hit("k").allowed
    clock.advance(0.150)
    assert limiter.hit("k").allowed


def test_decision_reports_limit_remaining_and_reset() -> None:
    clock = FakeClock()
    limiter = Limiter(10, 2, clock=clock)
    first = limiter.hit("k")
    assert (first.allowed, first.limit, first.remaining, first.retry_after) == (True, 2, 1, 0.0)
    assert first.reset_after == pytest.approx(0.1)
    second = limiter.hit("k")
    assert second.remaining == 0
    assert second.reset_after == pytest.approx(0.2)


def test_rejected_decision_says_when_to_retry() -> None:
    clock = FakeClock()
    limiter = Limiter(10, 2, clock=clock)
    limiter.hit("k")
    limiter.hit("k")
    denied = limiter.hit("k")
    assert not denied.allowed
    assert denied.remaining == 0
    assert denied.retry_after == pytest.approx(0.1)
    clock.advance(denied.retry_after)
    assert limiter.hit("k").allowed


def test_keys_have_separate_buckets() -> None:
    limiter = Limiter(1, 1, clock=FakeClock())
    assert limiter.hit("a").allowed
    assert limiter.hit("b").allowed
    assert not limiter.hit("a").allowed


def test_cost_consumes_several_units_and_a_rejected_cost_consumes_nothing() -> None:
    limiter = Limiter(1, 5, clock=FakeClock())
    assert limiter.hit("k", cost=3).remaining == 2
    denied = limiter.hit("k", cost=3)
    assert not denied.allowed
    assert denied.retry_after == pytest.approx(1.0)
    assert limiter.hit("k", cost=2).allowed


def test_cost_above_burst_is_never_admitted() -> None:
    decision = Limiter(1, 2, clock=FakeClock()).hit("k", cost=3)
    assert not decision.allowed
    assert decision.retry_after == math.inf


def test_negative_cost_is_refused() -> None:
    with pytest.raises(ValueError, match="cost must be >= 0"):
        Limiter(1, 2).hit("k", cost=-1)


def test_fractional_rate_refills_slowly() -> None:
    clock = FakeClock()
    limiter = Limiter(0.5, 1, clock=clock)
    assert limiter.hit("k").allowed
    clock.advance(1.9)
    assert not limiter.hit("k").allowed
    clock.advance(0.1)
    assert limiter.hit("k").allowed


def test_reset_gives_a_full_bucket() -> None:
    limiter = Limiter(1, 1, clock=FakeClock())
    limiter.hit("k")
    limiter.reset("k")
    assert limiter.hit("k").allowed


def test_async_hit_and_reset_match_sync() -> None:
    async def scenario() -> list[bool]:
        limiter = Limiter(10, 2, clock=FakeClock())
        out = [(await limiter.ahit("k")).allowed for _ in range(3)]
        await limiter.areset("k")
        out.append((await limiter.ahit("k")).allowed)
        return out

    assert asyncio.run(scenario()) == [True, True, False, True]


def test_refilled_keys_are_swept_so_idle_keys_cost_nothing() -> None:
    clock = FakeClock()
    limiter = Limiter(1000, 1, clock=clock)  # each bucket refills 1 ms after its hit
    for i in range(100_000):
        clock.advance(0.001)
        limiter.hit(f"client-{i}")
    # 100,000 distinct clients, never more than one with a bucket that is not full:
    # the table stayed at its smallest size.
    assert limiter._table.mask + 1 == 1024
    assert not limiter.holds("client-0")
    assert limiter.holds("client-99999")


def test_reset_and_refund_do_not_break_other_keys_in_the_table() -> None:
    clock = FakeClock()
    limiter = Limiter(1, 1, clock=clock)
    for i in range(3000):  # forces several rebuilds with long probe chains
        limiter.hit(f"k{i}")
    limiter.reset("k10")
    limiter.refund("k11")
    assert limiter.hit("k10").allowed
    assert limiter.hit("k11").allowed
    assert not any(limiter.hit(f"k{i}").allowed for i in range(12, 3000))


def test_max_keys_bounds_memory_even_when_all_keys_are_live() -> None:
    limiter = Limiter(0.001, 1, clock=FakeClock(), max_keys=1000)
    for i in range(10_000):
        limiter.hit(f"k{i}")
    assert len(limiter) <= 1000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": -1, "burst": 1}, "rate must be a finite number > 0"),
        ({"rate": 0, "burst": 1}, "rate must be a finite number > 0"),
        ({"rate": math.nan, "burst": 1}, "rate must be a finite number > 0"),
        ({"rate": 1, "burst": 0}, "burst must be an int >= 1, got 0"),
        ({"rate": 1, "burst": 1.5}, "burst must be an int >= 1"),
        ({"rate": 1, "burst": 1, "failure": "maybe"}, "failure must be one of"),
        ({"rate": 1, "burst": 1, "max_keys": 0}, "max_keys must be an int >= 1"),
        ({"rate": 1, "burst": 1, "name": 'a"b'}, "name must be"),
        ({"rate": 1, "burst": 1, "storage": "carrier-pigeon://x"}, "unknown storage scheme"),
        ({"rate": 1, "burst": 1, "storage": "memcached://localhost:11211"}, "cannot hold a token"),
    ],
)
def test_invalid_configuration_fails_at_construction(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Limiter(**kwargs)  # type: ignore[arg-type]


def test_configuration_error_is_a_value_error() -> None:
    assert issubclass(ConfigurationError, ValueError)


# ---------------------------------------------------------------- properties
_steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=2, allow_nan=False),  # clock advance
        st.integers(min_value=0, max_value=4),  # cost
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=50),
    burst=st.integers(min_value=1, max_value=10),
    steps=_steps,
)
def test_admitted_cost_never_exceeds_burst_plus_rate_times_elapsed(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    limiter = Limiter(rate, burst, clock=clock)
    start = clock.now
    admitted = 0
    for advance, cost in steps:
        clock.advance(advance)
        if limiter.hit("k", cost).allowed:
            admitted += cost
        assert admitted <= burst + rate * (clock.now - start) + 1e-6


@settings(max_examples=150, deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=50),
    burst=st.integers(min_value=1, max_value=10),
    steps=_steps,
)
def test_a_rejected_hit_changes_nothing(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    limiter = Limiter(rate, burst, clock=clock)
    for advance, cost in steps:
        clock.advance(advance)
        before = limiter._table.snapshot()
        if not limiter.hit("k", cost).allowed:
            assert limiter._table.snapshot() == before


@settings(max_examples=100, deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=50),
    burst=st.integers(min_value=1, max_value=10),
    steps=_steps,
)
def test_remaining_is_exactly_what_the_next_hits_can_take(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    limiter = Limiter(rate, burst, clock=clock)
    for advance, cost in steps:
        clock.advance(advance)
        limiter.hit("k", cost)
    probe = limiter.hit("k", 0)
    assert 0 <= probe.remaining <= burst
    if probe.remaining:
        assert limiter.hit("k", probe.remaining).allowed
    else:
        assert not limiter.hit("k", 1).allowed


@settings(max_examples=100, deadline=None)
@given(
    rate=st.floats(min_value=0.05, max_value=50),
    burst=st.integers(min_value=1, max_value=10),
    advances=st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), max_size=40),
    legacy=st.booleans(),
)
def test_middleware_fast_path_reports_the_same_headers_as_decisions(
    rate: float, burst: int, advances: list[float], legacy: bool
) -> None:
    from ffrtmp_infra.ratelimit._headers import HeaderWriter

    clock = FakeClock()
    fast = Limiter(rate, burst, clock=clock, name="p")
    slow = Limiter(rate, burst, clock=clock, name="p")
    writer = HeaderWriter("legacy" if legacy else "draft10", encode=False)
    for advance in advances:
        clock.advance(advance)
        code = fast._admit("k", legacy)
        decision = slow.hit("k")
        assert (code >= 0) == decision.allowed
        if code >= 0:
            assert writer.for_state(fast, code) == writer.single(slow, decision)


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=40),  # which key
            st.floats(min_value=0, max_value=0.5, allow_nan=False),  # clock advance
            st.integers(min_value=0, max_value=3),  # cost
        ),
        max_size=300,
    ),
    max_keys=st.integers(min_value=100, max_value=10_000),
)
def test_many_keys_decide_exactly_like_a_plain_dict_model(
    steps: list[tuple[int, float, int]], max_keys: int
) -> None:
    clock = FakeClock()
    limiter = Limiter(2, 3, clock=clock, max_keys=max_keys)
    model: dict[str, float] = {}
    interval, tolerance = 0.5, 1.5
    for which, advance, cost in steps:
        clock.advance(advance)
        key = f"key-{which}"
        tat = max(model.get(key, clock.now), clock.now)
        expected = tat + cost * interval - tolerance - clock.now <= 1e-9
        if expected:
            model[key] = tat + cost * interval
        assert limiter.hit(key, cost).allowed == expected


def test_bucket_table_probes_past_colliding_keys_and_rebuilds_keep_live_ones() -> None:
    from ffrtmp_infra.ratelimit._table import BucketTable

    table = BucketTable(max_keys=10_000)
    colliding = [1 + 1024 * n for n in range(50)]  # all start at slot 1
    for n, slot_key in enumerate(colliding):
        table.add(slot_key, 100.0 + n, now=0.0)
    assert [table.get(k) for k in colliding] == [100.0 + n for n in range(50)]
    assert table.get(3) is None
    table.rebuild(now=124.5)  # keeps the keys whose time is still ahead
    assert [table.get(k) for k in colliding[:25]] == [None] * 25
    assert [table.get(k) for k in colliding[25:]] == [100.0 + n for n in range(25, 50)]
    assert table.used == 25


def test_bucket_table_at_max_keys_forgets_the_keys_closest_to_full() -> None:
    from ffrtmp_infra.ratelimit._table import BucketTable

    table = BucketTable(max_keys=100)
    for n in range(1, 101):
        table.add(n, float(n), now=0.0)
    table.add(1000, 1000.0, now=0.0)  # full of live keys: rebuild keeps 3/4
    assert table.used == 76
    assert table.get(1) is None
    assert table.get(100) == 100.0
    assert table.get(1000) == 1000.0
