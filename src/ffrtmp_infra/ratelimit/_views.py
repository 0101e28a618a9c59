"""One limit on one view or route: the core of the FastAPI, Flask and Django adapters."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from ffrtmp_infra.ratelimit._decision import Decision
from ffrtmp_infra.ratelimit._engine import Engine
from ffrtmp_infra.ratelimit._headers import HeaderMode
from ffrtmp_infra.ratelimit._keys import KeyFunction, RequestInfo
from ffrtmp_infra.ratelimit._limiter import _check_policy_name
from ffrtmp_infra.ratelimit._rules import LimiterSource, Rule

__all__ = ["CHARGED", "ViewLimit", "mark_charged"]

#: Key of the ASGI scope / WSGI environ holding the ``(limiter, name)`` pairs this
#: request was already charged for (by the middleware or a per-view limit), so a
#: request passing several of them is never charged twice for one limiter.
CHARGED = "ffrtmp_infra.ratelimit.charged"


def mark_charged(raw: MutableMapping[str, Any], marks: tuple[Any, ...]) -> None:
    """Record in the scope or environ ``raw`` that ``marks`` were charged."""
    before = raw.get(CHARGED)
    raw[CHARGED] = marks if before is None else before + marks


class ViewLimit:
    """A validated per-view limit: decides a request with the middleware's engine.

    ``name`` gives this view its own buckets of ``limiter`` (keys ``name:<key>``);
    without it the buckets are the limiter's own, shared with the middleware and
    every other use of the limiter.
    """

    def __init__(
        self,
        limiter: LimiterSource,
        key: KeyFunction | None,
        cost: int | Callable[[RequestInfo], int],
        name: str | None,
        headers: HeaderMode,
        *,
        allow_async_keys: bool,
    ) -> None:
        rule = Rule(limiter, key=key, cost=cost)  # validates limiter, key and cost
        self.engine = Engine(
            None, [rule], key, headers, False, encode=False, allow_async_keys=allow_async_keys
        )
        if name is not None:
            _check_policy_name(name)
        self._marks: tuple[Any, ...] = ((limiter, name),)
        self._prefix = "" if name is None else name + ":"

    def charged(self, raw: MutableMapping[str, Any]) -> bool:
        """True when this request was already charged for this limit."""
        return self._marks[0] in raw.get(CHARGED, ())

    def _named(self, keyed: list[tuple[Any, str, int]]) -> list[tuple[Any, str, int]]:
        prefix = self._prefix
        return [(lim, prefix + key, cost) for lim, key, cost in keyed] if prefix else keyed

    def _done(self, info: RequestInfo, allowed: bool, outcomes: list[Any]) -> Decision:
        self.engine.record(allowed, outcomes)
        if allowed:
            mark_charged(info.raw, self._marks)
        decision: Decision = outcomes[0][3]
        return decision

    def decide(self, info: RequestInfo) -> Decision | None:
        """Hit the limit for the request (``None``: exempt by its key or tier)."""
        engine = self.engine
        checks = engine.plan(info)
        keyed = self._named(engine.keys(info, checks)) if checks else []
        if not keyed:
            return None
        return self._done(info, *engine.decide(keyed))

    async def adecide(self, info: RequestInfo) -> Decision | None:
        """:meth:`decide` with async key functions and async storage calls."""
        engine = self.engine
        checks = engine.plan(info)
        keyed = self._named(await engine.akeys(info, checks)) if checks else []
        if not keyed:
            return None
        return self._done(info, *await engine.adecide(keyed))
