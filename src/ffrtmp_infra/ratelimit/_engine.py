"""The decision core shared by the ASGI and WSGI middleware."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from ffrtmp_infra.ratelimit import _metrics
from ffrtmp_infra.ratelimit._decision import Decision
from ffrtmp_infra.ratelimit._errors import ConfigurationError
from ffrtmp_infra.ratelimit._headers import HeaderMode, HeaderWriter
from ffrtmp_infra.ratelimit._keys import ClientIP, KeyFunction, RequestInfo, client_ip
from ffrtmp_infra.ratelimit._limiter import Limiter
from ffrtmp_infra.ratelimit._rules import Rule, is_async_callable
from ffrtmp_infra.ratelimit._window import WindowLimiter

__all__ = ["Check", "Engine"]

#: (limiter, key function, cost) for one limit of one request
Check = tuple[Any, KeyFunction, int]
#: (limiter, key, cost, decision)
Outcome = tuple[Any, str, int, Decision]


class Engine:
    """Validated configuration plus the per-request planning and all-or-nothing hits."""

    def __init__(
        self,
        limiter: Limiter | WindowLimiter | None,
        rules: Sequence[Rule],
        key: KeyFunction | None,
        headers: HeaderMode,
        dry_run: bool,
        *,
        encode: bool,
        allow_async_keys: bool,
    ) -> None:
        if limiter is not None and not isinstance(limiter, Limiter | WindowLimiter):
            raise ConfigurationError(f"limiter must be a Limiter or WindowLimiter, got {limiter!r}")
        rules = tuple(rules)
        for rule in rules:
            if not isinstance(rule, Rule):
                raise ConfigurationError(f"rules must be Rule objects, got {rule!r}")
        if limiter is None and not any(r.limiter is not None for r in rules):
            raise ConfigurationError("give a limiter, or rules that carry limiters")
        if key is None:
            key = client_ip()
        if not callable(key):
            raise ConfigurationError(f"key must be a key function, got {key!r}")
        async_keys = [
            k for k in [key, *(r.key for r in rules)] if k is not None and is_async_callable(k)
        ]
        if async_keys and not allow_async_keys:
            raise ConfigurationError(f"WSGI needs synchronous key functions, got {async_keys[0]!r}")
        self.limiter = limiter
        self.rules = rules
        self.key = key
        self.key_is_async = is_async_callable(key)
        self.dry_run = bool(dry_run)
        self.writer = HeaderWriter(headers, encode=encode)
        self.headers_on = headers is not None
        #: no rules: one limiter, one key, cost 1 (the middleware's fast path)
        self.simple = not rules and limiter is not None
        self.client_ip_key = key if isinstance(key, ClientIP) else None

    def plan(self, info: RequestInfo) -> list[Check] | None:
        """The limits that apply to this request; ``None`` when a rule exempts it."""
        default_key = self.key
        default_cost = 1
        overridden = False
        checks: list[Check] = []
        for rule in self.rules:
            if not rule.matches(info.method, info.path):
                continue
            if rule.exempt:
                return None
            if rule.limiter is None:
                if not overridden:
                    overridden = True
                    default_key = rule.key or default_key
                    default_cost = rule.cost_of(info)
                continue
            chosen = rule.resolve_limiter(info)
            if chosen is not None:
                checks.append((chosen, rule.key or self.key, rule.cost_of(info)))
        if self.limiter is not None:
            checks.insert(0, (self.limiter, default_key, default_cost))
        # Token buckets first (they can refund), windows last (they cannot).
        checks.sort(key=lambda check: isinstance(check[0], WindowLimiter))
        return checks

    # ------------------------------------------------------------ sync
    def keys(self, info: RequestInfo, checks: list[Check]) -> list[tuple[Any, str, int]]:
        found: dict[int, Any] = {}
        keyed = []
        for limiter, key_fn, cost in checks:
            ident = id(key_fn)
            if ident not in found:
                found[ident] = key_fn(info)
            key = found[ident]
            if key is not None:
                keyed.append((limiter, str(key), cost))
        return keyed

    def decide(self, keyed: list[tuple[Any, str, int]]) -> tuple[bool, list[Outcome]]:
        """Hit every limit all-or-nothing; returns (allowed, outcomes)."""
        outcomes: list[Outcome] = []
        together = hit_together(keyed) if len(keyed) > 1 else None
        if together is not None:
            outcomes = [(*check, d) for check, d in zip(keyed, together, strict=True)]
            return all(d.allowed for d in together), outcomes
        if len(keyed) > 1:
            for limiter, key, cost in keyed:
                if isinstance(limiter, WindowLimiter) and not limiter.test(key, cost):
                    outcomes.append((limiter, key, cost, limiter.hit(key, cost)))
                    return False, outcomes
        for limiter, key, cost in keyed:
            decision = limiter.hit(key, cost)
            outcomes.append((limiter, key, cost, decision))
            if not decision.allowed:
                for lim, k, c, d in outcomes[:-1]:
                    if d.allowed:
                        lim.refund(k, c)
                return False, outcomes
        return True, outcomes

    # ------------------------------------------------------------ async
    async def akeys(self, info: RequestInfo, checks: list[Check]) -> list[tuple[Any, str, int]]:
        found: dict[int, Any] = {}
        keyed = []
        for limiter, key_fn, cost in checks:
            ident = id(key_fn)
            if ident not in found:
                value = key_fn(info)
                if inspect.isawaitable(value):
                    value = await value
                found[ident] = value
            key = found[ident]
            if key is not None:
                keyed.append((limiter, str(key), cost))
        return keyed

    async def adecide(self, keyed: list[tuple[Any, str, int]]) -> tuple[bool, list[Outcome]]:
        """:meth:`decide` with async storage calls for shared limiters."""
        outcomes: list[Outcome] = []
        together = await ahit_together(keyed) if len(keyed) > 1 else None
        if together is not None:
            outcomes = [(*check, d) for check, d in zip(keyed, together, strict=True)]
            return all(d.allowed for d in together), outcomes
        if len(keyed) > 1:
            for limiter, key, cost in keyed:
                if isinstance(limiter, WindowLimiter) and not await limiter.atest(key, cost):
                    outcomes.append((limiter, key, cost, await limiter.ahit(key, cost)))
                    return False, outcomes
        for limiter, key, cost in keyed:
            if limiter.shared:
                decision = await limiter.ahit(key, cost)
            else:
                decision = limiter.hit(key, cost)
            outcomes.append((limiter, key, cost, decision))
            if not decision.allowed:
                for lim, k, c, d in outcomes[:-1]:
                    if d.allowed:
                        await lim.arefund(k, c)
                return False, outcomes
        return True, outcomes

    # ------------------------------------------------------------ reporting
    def record(self, allowed: bool, outcomes: list[Outcome]) -> None:
        """Count the outcome of each limit (only when metrics are instrumented)."""
        if not _metrics.enabled():
            return
        if allowed:
            for _, _, _, decision in outcomes:
                _metrics.decision(decision.policy, "allowed")
            return
        outcome = "shadowed" if self.dry_run else "rejected"
        for _, _, _, decision in outcomes:
            if not decision.allowed:
                _metrics.decision(decision.policy, outcome)


# ---------------------------------------------------------------- one script for several limits
def _together(items: list[tuple[Any, str, int]]) -> tuple[Any, list[str], list[bytes]] | None:
    """The shared backend, keys and script arguments, when ``items`` fit one script call."""
    first = items[0][0]
    remote = getattr(first, "_remote", None)
    if len(items) < 2 or remote is None or remote.cluster:
        return None
    keys: list[str] = []
    args: list[bytes] = []
    for limiter, key, cost in items:
        if (
            not isinstance(limiter, Limiter)
            or limiter._remote is not remote
            or limiter._down_until
            or not 0 <= cost <= limiter.burst
        ):
            return None
        keys.append(limiter._key_prefix + key)
        args.append(b"%d" % cost + limiter._arg_spec)
    return remote, keys, args


def _decisions(items: list[tuple[Any, str, int]], reply: list[int]) -> list[Decision]:
    allowed = bool(reply[0])
    out = []
    for i, (limiter, _, _) in enumerate(items):
        remaining, retry_us, reset_us = reply[1 + 3 * i : 4 + 3 * i]
        out.append(
            Decision(
                allowed or retry_us <= 0,
                limiter.burst,
                int(remaining),
                retry_us / 1e6,
                reset_us / 1e6,
                limiter.name,
                limiter=limiter,
            )
        )
    return out


def hit_together(items: list[tuple[Any, str, int]]) -> list[Decision] | None:
    """Decide several token buckets on one Redis in one atomic script call.

    Returns ``None`` when they do not share a (non-cluster) backend or the call
    failed; the caller then decides them one by one, applying failure policies.
    """
    plan = _together(items)
    if plan is None:
        return None
    remote, keys, args = plan
    try:
        reply = remote.run(keys, args)
    except remote.errors:
        return None
    return _decisions(items, reply)


async def ahit_together(items: list[tuple[Any, str, int]]) -> list[Decision] | None:
    """:func:`hit_together` for async code."""
    plan = _together(items)
    if plan is None:
        return None
    remote, keys, args = plan
    try:
        reply = await remote.arun(keys, args)
    except remote.errors:
        return None
    return _decisions(items, reply)
