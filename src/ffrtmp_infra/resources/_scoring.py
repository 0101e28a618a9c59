"""Placement policies: how the feasible nodes are ranked.

The built-in scorers follow Kubernetes' NodeResourcesFit (MostAllocated,
LeastAllocated) and BalancedAllocation over CPU and RAM, computed on the node's
use *after* the request, as one exact division so the in-memory backend and
the Redis Lua scripts rank nodes identically. Ties go to
the node registered first.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol, runtime_checkable

from ._errors import InvalidAmountError
from ._quantity import check_name
from ._types import Node, Resources

Selector = tuple[tuple[str, frozenset[str]], ...]


@runtime_checkable
class Scorer(Protocol):
    """A placement policy: the feasible node with the highest score wins.

    ``score`` receives the node as it is now and the request; it must be a pure
    function (no I/O, no locks), since it runs while the manager holds its lock.
    """

    name: str

    def score(self, node: Node, request: Resources) -> float:
        """Higher is better."""
        ...


def builtin_score(kind: str, ac: int, ar: int, uc: int, ur: int, rc: int, rr: int) -> float:
    """The score of the built-in policy ``kind`` after adding ``(rc, rr)`` to a node that
    uses ``(uc, ur)`` of ``(ac, ar)`` allocatable CPU and RAM.

    With ``fc = (uc + rc) / ac`` and ``fr = (ur + rr) / ar`` (a resource the node lacks
    counts as 0): binpack ``fc + fr``, spread ``2 - fc - fr``, balanced
    ``1 - |fc - fr|``. Each is computed as one division of exact integers, so Python
    and Redis' Lua (IEEE doubles, exact below 2**53) produce the same float.
    """
    ac = ac or 1
    ar = ar or 1
    den = ac * ar
    if kind == "binpack":
        return ((uc + rc) * ar + (ur + rr) * ac) / den
    if kind == "spread":
        return (2 * den - (uc + rc) * ar - (ur + rr) * ac) / den
    return (den - abs((uc + rc) * ar - (ur + rr) * ac)) / den


class BuiltinScorer:
    """One of the built-in policies; the manager recognises them and uses its index."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def score(self, node: Node, request: Resources) -> float:
        alloc, used = node.allocatable, node.used
        return builtin_score(
            self.name,
            alloc.cpu_milli,
            alloc.ram_mib,
            used.cpu_milli,
            used.ram_mib,
            request.cpu_milli,
            request.ram_mib,
        )

    def __repr__(self) -> str:
        return f"BuiltinScorer({self.name!r})"


BINPACK = BuiltinScorer("binpack")
SPREAD = BuiltinScorer("spread")
BALANCED = BuiltinScorer("balanced")
BUILTIN = {s.name: s for s in (BINPACK, SPREAD, BALANCED)}


def resolve_scorer(scorer: str | Scorer) -> Scorer:
    """A scorer from its name (``"binpack"``, ``"spread"``, ``"balanced"``) or an object."""
    if isinstance(scorer, str):
        found = BUILTIN.get(scorer)
        if found is None:
            raise InvalidAmountError(
                f"scorer must be one of {sorted(BUILTIN)} or a Scorer object, got {scorer!r}"
            )
        return found
    if not isinstance(scorer, Scorer):
        raise InvalidAmountError(
            f"scorer must be one of {sorted(BUILTIN)} or have .name and .score(node, request), "
            f"got {scorer!r}"
        )
    return scorer


def parse_selector(selector: Mapping[str, str | Collection[str]] | None) -> Selector:
    """``{"gpu_type": "a100", "encoder": ["nvenc", "qsv"]}``: every key must match, a
    collection means "any of these values"."""
    if not selector:
        return ()
    if not isinstance(selector, Mapping):
        raise InvalidAmountError(
            f"selector must be a mapping of label to value(s), got {selector!r}"
        )
    out = []
    for key, value in selector.items():
        check_name(key, "selector label")
        values = (value,) if isinstance(value, str) else value
        if not isinstance(values, Collection) or not values:
            raise InvalidAmountError(
                f"selector[{key!r}] must be a string or a non-empty collection of strings, "
                f"got {value!r}"
            )
        for v in values:
            if not isinstance(v, str):
                raise InvalidAmountError(f"selector[{key!r}] values must be strings, got {v!r}")
        out.append((key, frozenset(values)))
    return tuple(sorted(out))


def matches(labels: Mapping[str, str], selector: Selector) -> bool:
    """Whether the labels satisfy every term of the selector."""
    return all(labels.get(key) in values for key, values in selector)
