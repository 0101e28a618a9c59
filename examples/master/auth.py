"""API-key bearer auth with constant-time comparison and an auth-failure lockout.

Two roles: ``submitter`` (the ``api_key``: jobs and node administration) and
``worker`` (the ``worker_key``: register, heartbeat, claim, report). A role
whose key is ``None`` is open. Failed attempts are counted per client address
with the library's token-bucket :class:`~ffrtmp_infra.ratelimit.Limiter`; a
client over the limit gets 429 on *every* request, right key or not, until its
lockout ends, which makes guessing keys slow.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable

from starlette.requests import Request

from examples.master.errors import APIError
from examples.master.metrics import MasterMetrics
from ffrtmp_infra.ratelimit import Limiter

__all__ = ["Authenticator"]

_MAX_LOCKED = 100_000  # locked-out addresses kept before expired entries are pruned


class Authenticator:
    """Checks ``Authorization: Bearer <key>`` for a role; locks out repeated failures."""

    def __init__(
        self,
        *,
        api_key: str | None,
        worker_key: str | None,
        failure_limit: int,
        failure_window: float,
        metrics: MasterMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._expected = {
            "submitter": None if api_key is None else f"Bearer {api_key}".encode(),
            "worker": None if worker_key is None else f"Bearer {worker_key}".encode(),
        }
        self._failures = Limiter(
            failure_limit / failure_window, failure_limit, name="auth-failures"
        )
        self._locked_until: dict[str, float] = {}
        self._metrics = metrics
        self._clock = clock

    async def check(self, request: Request, *roles: str) -> None:
        """Return if the request carries the key of one of ``roles``; raise 401 or 429 otherwise."""
        client = request.client.host if request.client else "unknown"
        now = self._clock()
        until = self._locked_until.get(client)
        if until is not None:
            if now < until:
                self._metrics.auth_lockouts.inc()
                raise _locked(until - now)
            del self._locked_until[client]
        expected = [self._expected[role] for role in roles]
        if None in expected:
            return
        presented = request.headers.get("authorization", "").encode()
        # every key is compared (no early exit), each in constant time
        matches = [hmac.compare_digest(presented, key) for key in expected if key is not None]
        if presented and any(matches):
            return
        role = "|".join(roles)
        self._metrics.auth_failures.labels(role).inc()
        decision = await self._failures.ahit(client)
        if not decision.allowed:
            if len(self._locked_until) >= _MAX_LOCKED:
                self._locked_until = {k: t for k, t in self._locked_until.items() if t > now}
            self._locked_until[client] = now + decision.retry_after
            self._metrics.auth_lockouts.inc()
            raise _locked(decision.retry_after)
        if not presented:
            raise APIError(401, "missing Authorization: Bearer <key> header", {"role": role})
        raise APIError(401, "invalid API key", {"role": role})


def _locked(retry_after: float) -> APIError:
    seconds = max(1, math.ceil(retry_after))
    return APIError(
        429,
        "too many failed authentication attempts; try again later",
        {"retry_after": seconds},
        headers={"Retry-After": str(seconds)},
    )
