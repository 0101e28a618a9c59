"""The worker's retry pacing."""

from __future__ import annotations

import pytest
from examples.worker.backoff import Backoff


class Throttled(Exception):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("429")
        self.retry_after = retry_after


def test_delays_double_up_to_the_cap_with_jitter_below_each_step() -> None:
    backoff = Backoff(first=0.1, cap=1.0)
    steps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for step in steps:
        assert step / 2 <= backoff.next() <= step


def test_jitter_spreads_workers_apart() -> None:
    assert len({round(Backoff(first=1.0, cap=1.0).next(), 6) for _ in range(50)}) > 10


def test_retry_after_is_a_floor_and_reset_starts_over() -> None:
    backoff = Backoff(first=0.1, cap=5.0)
    assert backoff.next(Throttled(3.0)) == 3.0
    assert backoff.next(Throttled(None)) <= 0.2
    assert backoff.next(ValueError("no retry_after")) <= 0.4
    backoff.reset()
    assert backoff.next() <= 0.1


@pytest.mark.parametrize(("first", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_bad_settings_are_named(first: float, cap: float) -> None:
    with pytest.raises(ValueError, match=f"first={first!r} cap={cap!r}"):
        Backoff(first=first, cap=cap)
