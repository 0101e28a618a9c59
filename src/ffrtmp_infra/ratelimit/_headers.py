"""RateLimit header fields (IETF draft-10 or legacy X-RateLimit-*) and problem bodies."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Literal

from ffrtmp_infra.ratelimit._decision import Decision
from ffrtmp_infra.ratelimit._errors import ConfigurationError

__all__ = ["HeaderMode", "HeaderWriter", "Rejection", "rate_limit_headers", "rejection"]

HeaderMode = Literal["draft10", "legacy"] | None
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
REDUCED_CAPACITY = "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
_CACHE_SIZE = 4096


def _reset_seconds(limiter: Any, decision: Decision) -> int:
    """``t``: whole seconds until more quota is available (0 when the bucket is full)."""
    interval = getattr(limiter, "interval", None)
    if interval is None:  # a window: quota comes back when the window resets
        return max(0, math.ceil(decision.reset_after - 1e-9))
    remaining = decision.remaining
    if remaining >= decision.limit:
        return 0
    wait: float = decision.reset_after - limiter.tolerance + (remaining + 1) * interval
    return max(0, math.ceil(wait - 1e-9))


class Rejection:
    """A ready-to-send 429 (or 503) exactly as the middleware answers it.

    Attributes:
        status: ``429``, or ``503`` when only a limiter failing closed on an
            unreachable storage rejected.
        headers: ``(name, value)`` pairs (str): ``Content-Type:
            application/problem+json``, ``Retry-After``, ``Content-Length`` and the
            quota headers of the header mode.
        body: the RFC 9457 problem document (JSON bytes).
    """

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class HeaderWriter:
    """Builds the header pairs for decisions; ``encode`` gives bytes (ASGI) or str (WSGI)."""

    def __init__(self, mode: HeaderMode, *, encode: bool) -> None:
        if mode not in ("draft10", "legacy", None):
            raise ConfigurationError(f'headers must be "draft10", "legacy" or None, got {mode!r}')
        self.mode = mode
        self.encode = encode
        self._cache: dict[tuple[int, int, int], list[Any]] = {}
        self._state_cache: dict[int, list[Any]] = {}  # one limiter per writer on this path

    def pairs(self, results: Sequence[tuple[Any, Decision]]) -> list[tuple[str, str]]:
        """Header pairs (as str) for the limits a request went through."""
        if self.mode is None or not results:
            return []
        if self.mode == "draft10":
            policy = ", ".join(f'"{lim.name}";q={lim.burst};w={lim.window}' for lim, _ in results)
            state = ", ".join(
                f'"{d.policy}";r={d.remaining};t={_reset_seconds(lim, d)}' for lim, d in results
            )
            return [("RateLimit-Policy", policy), ("RateLimit", state)]
        _lim, d = min(results, key=lambda pair: pair[1].remaining)
        return [
            ("X-RateLimit-Limit", str(d.limit)),
            ("X-RateLimit-Remaining", str(d.remaining)),
            ("X-RateLimit-Reset", str(max(0, math.ceil(d.reset_after - 1e-9)))),
        ]

    def single(self, limiter: Any, decision: Decision) -> list[Any]:
        """Header pairs for one limiter's decision, cached by (limiter, remaining, reset)."""
        if self.mode is None:
            return []
        if self.mode == "draft10":
            reset = _reset_seconds(limiter, decision)
        else:
            reset = max(0, math.ceil(decision.reset_after - 1e-9))
        cache_key = (id(limiter), decision.remaining, reset)
        found = self._cache.get(cache_key)
        if found is None:
            found = self.encoded(self.pairs([(limiter, decision)]))
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[cache_key] = found
        return found

    def for_state(self, limiter: Any, code: int) -> list[Any]:
        """Encoded pairs for ``Limiter._admit``'s ``remaining << 24 | reset`` (cached)."""
        found = self._state_cache.get(code)
        if found is None:
            remaining, reset = code >> 24, code & 0xFFFFFF
            if self.mode == "draft10":
                pairs = [
                    ("RateLimit-Policy", f'"{limiter.name}";q={limiter.burst};w={limiter.window}'),
                    ("RateLimit", f'"{limiter.name}";r={remaining};t={reset}'),
                ]
            else:
                pairs = [
                    ("X-RateLimit-Limit", str(limiter.burst)),
                    ("X-RateLimit-Remaining", str(remaining)),
                    ("X-RateLimit-Reset", str(reset)),
                ]
            found = self.encoded(pairs)
            if len(self._state_cache) >= _CACHE_SIZE:
                self._state_cache.clear()
            self._state_cache[code] = found
        return found

    def encoded(self, pairs: list[tuple[str, str]]) -> list[Any]:
        if not self.encode:
            return pairs
        return [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in pairs]

    def rejection(self, results: Sequence[tuple[Any, Decision]]) -> Rejection:
        """The 429 (or 503 when only the storage failure policy rejected) to send."""
        denied = [(lim, d) for lim, d in results if not d.allowed]
        failed = bool(denied) and all(d.storage_error for _, d in denied)
        names = [d.policy for _, d in denied]
        retry = max((d.retry_after for _, d in denied), default=1.0)
        headers = [("Content-Type", "application/problem+json")]
        if failed:
            status, title, kind = 503, "Service Unavailable", REDUCED_CAPACITY
            detail = "Rate limiting is temporarily unavailable; retry later."
        else:
            status, title, kind = 429, "Too Many Requests", QUOTA_EXCEEDED
            detail = "Rate limit exceeded for " + ", ".join(names) + "."
        if math.isfinite(retry):
            seconds = max(1, math.ceil(retry - 1e-9))
            headers.append(("Retry-After", str(seconds)))
            detail += f" Retry in {seconds} s."
        else:
            detail = "This request costs more than the limit allows; it can never be admitted."
        body = json.dumps(
            {
                "type": kind,
                "title": title,
                "status": status,
                "detail": detail,
                "violated-policies": names,
            },
            separators=(",", ":"),
        ).encode()
        headers.append(("Content-Length", str(len(body))))
        headers += self.pairs(results)
        return Rejection(status, headers, body)


_WRITERS = {mode: HeaderWriter(mode, encode=False) for mode in ("draft10", "legacy", None)}


def _writer(mode: HeaderMode) -> HeaderWriter:
    writer = _WRITERS.get(mode)
    if writer is None:
        HeaderWriter(mode, encode=False)  # raises the ConfigurationError naming the mode
    assert writer is not None
    return writer


def _results(decisions: tuple[Decision, ...]) -> list[tuple[Any, Decision]]:
    if not decisions:
        raise TypeError("give at least one Decision")
    results = []
    for decision in decisions:
        if not isinstance(decision, Decision) or decision.limiter is None:
            raise TypeError(
                f"expected a Decision returned by a limiter (it names the limiter), "
                f"got {decision!r}"
            )
        results.append((decision.limiter, decision))
    return results


def rate_limit_headers(*decisions: Decision, mode: HeaderMode = "draft10") -> list[tuple[str, str]]:
    """The quota header pairs an allowed response carries for ``decisions``.

    ``mode`` is the middleware's ``headers=`` option: ``"draft10"`` gives
    ``RateLimit-Policy`` and ``RateLimit`` (one list item per decision), ``"legacy"``
    the ``X-RateLimit-*`` trio, ``None`` nothing. The middleware builds its headers
    with the same code, so glue of your own answers exactly like it.
    """
    return _writer(mode).pairs(_results(decisions))


def rejection(*decisions: Decision, mode: HeaderMode = "draft10") -> Rejection:
    """The :class:`Rejection` the middleware sends when ``decisions`` rejected a request.

    Give every decision taken for the request (the allowed ones appear in the quota
    headers, the rejected ones in ``Retry-After`` and ``violated-policies``).
    """
    return _writer(mode).rejection(_results(decisions))
