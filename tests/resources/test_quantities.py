"""Amount parsing: fixed-point integers, clear errors for bad input."""

from __future__ import annotations

import math

import pytest

from ffrtmp_infra.resources import InvalidAmountError
from ffrtmp_infra.resources._quantity import parse_count, parse_cpu, parse_extended, parse_ram


@pytest.mark.parametrize(
    ("value", "milli"),
    [(2, 2000), (0, 0), (0.5, 500), (0.1, 100), (1.5, 1500), ("500m", 500), ("2", 2000),
     ("1.25", 1250), ("0.001", 1), (" 3 ", 3000), ("1e1", 10000), (2.0, 2000)],
)  # fmt: skip
def test_cpu_accepts_cores_and_millicores(value: object, milli: int) -> None:
    assert parse_cpu(value) == milli


@pytest.mark.parametrize(
    ("value", "mib"),
    [(16, 16384), (0.5, 512), ("2Gi", 2048), ("512Mi", 512), ("1Ti", 1 << 20), ("1", 1024),
     ("1G", 954), ("1024Ki", 1), ("1Ki", 1), (0.1, 103)],
)  # fmt: skip
def test_ram_accepts_gib_and_byte_quantities_rounding_up_to_mib(value: object, mib: int) -> None:
    assert parse_ram(value) == mib


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1, ">= 0"), (-0.5, ">= 0"), (math.nan, "finite"), (math.inf, "finite"),
     ("-2", ">= 0"), ("abc", "look like"), ("2x", "unit"), (True, "number"), (None, "number"),
     ([1], "number"), (10**9, "at most")],
)  # fmt: skip
def test_cpu_rejects_bad_amounts_naming_the_rule(value: object, message: str) -> None:
    with pytest.raises(InvalidAmountError, match=message) as info:
        parse_cpu(value)
    assert "cpu" in str(info.value)


@pytest.mark.parametrize("value", [-1, math.nan, -math.inf, "1Qi", "nan", "inf"])
def test_ram_rejects_bad_amounts(value: object) -> None:
    with pytest.raises(InvalidAmountError, match="ram_gb"):
        parse_ram(value)


def test_gpu_must_be_whole() -> None:
    assert parse_count(2, "gpu") == 2
    assert parse_count(2.0, "gpu") == 2
    assert parse_count("3", "gpu") == 3
    with pytest.raises(InvalidAmountError, match="whole number"):
        parse_count(0.5, "gpu")
    with pytest.raises(InvalidAmountError, match="no unit"):
        parse_count("2Gi", "gpu")


def test_extended_names_are_validated_and_zero_amounts_dropped() -> None:
    assert parse_extended({"nvenc_sessions": 3, "b": 0}) == {"nvenc_sessions": 3}
    with pytest.raises(InvalidAmountError, match="reserved"):
        parse_extended({"cpu": 1})
    with pytest.raises(InvalidAmountError, match="resource name"):
        parse_extended({"bad name!": 1})
    with pytest.raises(InvalidAmountError, match=r"extended\['x'\] must be >= 0"):
        parse_extended({"x": -1})


def test_three_tenths_of_a_core_hold_three_tenth_core_jobs() -> None:
    # The float trap the upstream manager falls into: 0.1 + 0.1 + 0.1 > 0.3.
    assert 0.1 + 0.1 + 0.1 > 0.3
    assert parse_cpu(0.1) * 3 == parse_cpu(0.3)


def test_finer_than_a_millicore_or_a_mib_rounds_up_for_requests_down_for_capacity() -> None:
    assert parse_cpu("0.0001") == 1
    assert parse_cpu(1 / 3) == 334
    assert parse_cpu(1 / 3, round_up=False) == 333
    assert parse_ram("1G") == 954
    assert parse_ram("1G", round_up=False) == 953
