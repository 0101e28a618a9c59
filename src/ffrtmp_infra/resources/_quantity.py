"""Parsing of user amounts into the fixed-point integers the manager keeps.

CPU is kept in millicores, RAM in MiB, GPUs and extended resources in whole units.
Floats go through their shortest decimal ``repr`` so ``0.1`` is exactly 100 millicores.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from ._errors import InvalidAmountError

#: Largest amounts kept, in internal units. CPU times RAM stays below 2**53 so every
#: score is computed exactly in the doubles Redis' Lua uses (see ``_scoring``).
MAX_CPU_MILLI = 10**7  # 10,000 cores
MAX_RAM_MIB = 10**8  # about 95 TiB
MAX_UNITS = 10**9  # GPUs and extended resources
MAX_CORES = MAX_CPU_MILLI // 1000  # whole cores: an int request up to this needs no parsing
MAX_GIB = MAX_RAM_MIB >> 10

_NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
_RAM_UNITS = {
    "": Decimal(1 << 30),  # a bare number is GiB, as in ``ram_gb``
    "Ki": Decimal(1 << 10),
    "Mi": Decimal(1 << 20),
    "Gi": Decimal(1 << 30),
    "Ti": Decimal(1 << 40),
    "Pi": Decimal(1 << 50),
    "k": Decimal(10**3),
    "K": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
}
_MIB = Decimal(1 << 20)
RESERVED_NAMES = frozenset({"cpu", "ram", "ram_gb", "gpu", "memory"})


def _decimal(name: str, value: object, hint: str) -> tuple[Decimal, str]:
    """Split ``value`` into a finite, non-negative Decimal and its unit suffix."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise InvalidAmountError(
            f"{name} must be a number or a string such as {hint}, got {value!r}"
        )
    unit = ""
    if isinstance(value, str):
        match = _NUMBER.match(value)
        if match is None:
            raise InvalidAmountError(f"{name} must look like {hint}, got {value!r}")
        number, unit = Decimal(match.group(1)), match.group(2)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidAmountError(f"{name} must be finite, got {value!r}")
        number = Decimal(repr(value))
    else:
        try:
            number = Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - Decimal(int) cannot fail
            raise InvalidAmountError(f"{name} is not a number: {value!r}") from exc
    if not number.is_finite():
        raise InvalidAmountError(f"{name} must be finite, got {value!r}")
    if number < 0:
        raise InvalidAmountError(f"{name} must be >= 0, got {value!r}")
    return number, unit


def _bounded(name: str, units: int, value: object, limit: int, unit: str) -> int:
    if units > limit:
        raise InvalidAmountError(f"{name} must be at most {limit:,} {unit}, got {value!r}")
    return units


def parse_cpu(value: object, name: str = "cpu", *, round_up: bool = True) -> int:
    """Cores (``2``, ``0.5``, ``"1.5"``) or millicores (``"500m"``) -> millicores.

    Precision finer than 1m rounds up (requests, reserves) or down (``round_up=False``,
    capacities), so the manager never promises more than the node has.
    """
    if type(value) is int and 0 <= value <= MAX_CPU_MILLI // 1000:
        return value * 1000
    number, unit = _decimal(name, value, "2, 0.5 or '500m'")
    if unit == "":
        milli = number * 1000
    elif unit == "m":
        milli = number
    else:
        raise InvalidAmountError(f"{name} unit must be cores or 'm' (millicores), got {value!r}")
    units = math.ceil(milli) if round_up else math.floor(milli)
    return _bounded(name, units, value, MAX_CPU_MILLI, "millicores")


def parse_ram(value: object, name: str = "ram_gb", *, round_up: bool = True) -> int:
    """GiB (``16``, ``0.5``) or a byte quantity (``"2Gi"``, ``"512Mi"``, ``"1G"``) -> MiB.

    Amounts that are not a whole number of MiB round up (requests, reserves) or down
    (``round_up=False``, capacities).
    """
    if type(value) is int and 0 <= value <= MAX_RAM_MIB >> 10:
        return value << 10
    number, unit = _decimal(name, value, "16, 0.5, '2Gi' or '512Mi'")
    scale = _RAM_UNITS.get(unit)
    if scale is None:
        raise InvalidAmountError(
            f"{name} unit must be one of Ki, Mi, Gi, Ti, Pi, k, M, G, T, P "
            f"(a bare number is GiB), got {value!r}"
        )
    mib = number * scale / _MIB
    units = math.ceil(mib) if round_up else math.floor(mib)
    return _bounded(name, units, value, MAX_RAM_MIB, "MiB")


def parse_count(value: object, name: str) -> int:
    """A whole, non-negative number of units (GPUs, extended resources)."""
    if type(value) is int and 0 <= value <= MAX_UNITS:
        return value
    number, unit = _decimal(name, value, "a whole number such as 2")
    if unit:
        raise InvalidAmountError(f"{name} takes no unit, got {value!r}")
    if number != number.to_integral_value():
        raise InvalidAmountError(f"{name} must be a whole number, got {value!r}")
    return _bounded(name, int(number), value, MAX_UNITS, "units")


def parse_extended(value: Mapping[str, object] | None, name: str = "extended") -> dict[str, int]:
    """Validate an extended-resource mapping; zero amounts are dropped."""
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidAmountError(f"{name} must be a mapping of name to count, got {value!r}")
    out: dict[str, int] = {}
    for key, amount in value.items():
        check_name(key, f"{name} resource name")
        if key in RESERVED_NAMES:
            raise InvalidAmountError(
                f"{name} resource name {key!r} is reserved; use the cpu/gpu/ram_gb arguments"
            )
        units = parse_count(amount, f"{name}[{key!r}]")
        if units:
            out[key] = units
    return dict(sorted(out.items()))


def check_name(value: object, what: str) -> str:
    """Names of resources and label keys: 1-63 characters of ``A-Za-z0-9._/-``."""
    if not isinstance(value, str) or _NAME.match(value) is None:
        raise InvalidAmountError(
            f"{what} must be 1-63 characters of letters, digits, '.', '_', '/', '-' "
            f"starting with a letter or digit, got {value!r}"
        )
    return value


def check_id(value: object, what: str) -> str:
    """Node and job ids: non-empty strings of at most 256 characters, no control characters."""
    if type(value) is not str or not value or len(value) > 256 or not value.isprintable():
        raise InvalidAmountError(
            f"{what} must be a non-empty printable string of at most 256 characters, got {value!r}"
        )
    return value


def format_cpu(milli: int) -> str:
    """Millicores for messages: ``4`` or ``0.5`` cores."""
    return f"{milli // 1000}" if milli % 1000 == 0 else f"{milli / 1000:g}"


def format_ram(mib: int) -> str:
    """MiB for messages: ``8Gi`` or ``512Mi``."""
    return f"{mib >> 10}Gi" if mib % 1024 == 0 else f"{mib}Mi"


# -- requests: the reserve path parses with these ---------------------------------------
# Parsed float and string amounts ("500m", 0.5): jobs repeat a few sizes, and parsing
# through Decimal costs microseconds. Only valid amounts are cached; bools never reach
# here (they are not float or str), and NaN never matches itself.
_CPU_CACHE: dict[float | str, int] = {}
_RAM_CACHE: dict[float | str, int] = {}
_CACHE_LIMIT = 4096


def _cached(cache: dict[float | str, int], parse: Callable[[object], int], value: object) -> int:
    if type(value) is float or type(value) is str:
        units = cache.get(value)
        if units is None:
            units = parse(value)
            if len(cache) < _CACHE_LIMIT:
                cache[value] = units
        return units
    return parse(value)


def request_cpu(value: object) -> int:
    """:func:`parse_cpu` of a request, float and string amounts cached."""
    return _cached(_CPU_CACHE, parse_cpu, value)


def request_ram(value: object) -> int:
    """:func:`parse_ram` of a request, float and string amounts cached."""
    return _cached(_RAM_CACHE, parse_ram, value)


def parse_request(cpu: object, gpu: object, ram_gb: object) -> tuple[int, int, int]:
    """A request's ``(millicores, MiB, GPUs)``; whole ints take no parsing."""
    rc = cpu * 1000 if type(cpu) is int and 0 <= cpu <= MAX_CORES else request_cpu(cpu)
    rr = ram_gb << 10 if type(ram_gb) is int and 0 <= ram_gb <= MAX_GIB else request_ram(ram_gb)
    rg = gpu if type(gpu) is int and 0 <= gpu <= MAX_UNITS else parse_count(gpu, "gpu")
    return rc, rr, rg


#: The longest lease, in seconds (30 days): a longer one is a reservation without a TTL.
MAX_TTL = 30 * 86400


def parse_ttl(ttl: object, name: str = "ttl") -> int:
    """A lease length in seconds (``30``, ``2.5``) -> whole milliseconds, rounded up."""
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or not math.isfinite(ttl)
        or not 0 < ttl <= MAX_TTL
    ):
        raise InvalidAmountError(
            f"{name} must be a number of seconds > 0 and <= {MAX_TTL:,}, got {ttl!r}"
        )
    return max(1, math.ceil(ttl * 1000))


class Lease(NamedTuple):
    """A parsed lease: ``ttl_ms`` milliseconds, renewed by ``owner`` (or by job id only)."""

    owner: str | None
    ttl_ms: int


def parse_lease(owner: object, ttl: object) -> Lease | None:
    """The lease of a reserve call, None without one; an owner needs a ttl."""
    if ttl is None:
        if owner is None:
            return None
        raise InvalidAmountError(
            f"owner={owner!r} needs a ttl: a lease is an owner and a ttl in seconds"
        )
    ttl_ms = parse_ttl(ttl)
    return Lease(None if owner is None else check_id(owner, "owner"), ttl_ms)


def check_job(job_id: object) -> str:
    """:func:`check_id` for a job id, the common valid case first."""
    if type(job_id) is str and job_id and len(job_id) <= 256 and job_id.isprintable():
        return job_id
    return check_id(job_id, "job_id")
