"""API-key bearer auth, per-node credentials and an auth-failure lockout.

Two roles: ``submitter`` (the ``api_key``: jobs and node administration) and
``worker`` (the ``worker_key``: the fleet's enrollment key). A role whose key is
``None`` is open. Keys are compared in constant time.

The worker key only says "a worker of this fleet". Registration hands each node its own
``node_token`` (:class:`NodeCredentials`); every node-scoped request (heartbeat, claim,
progress, result, its own deregistration) must carry it in ``X-Node-Token`` as well, so
one worker cannot act for another node or on another node's jobs (403).

Failed attempts are counted per client, where the client is the same identity the rate
limiter uses (:func:`~ffrtmp_infra.ratelimit.client_ip`: the socket peer, or the forwarded
client behind a ``--trust-proxy``), with the library's token bucket. Past the limit a
client's *failures* get 429 until its lockout ends, which makes guessing slow; a request
with a correct key is never refused, so one bad actor behind a shared address (a proxy, a
NAT, a worker left running with a rotated key) cannot lock everyone else out.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable, Sequence

from starlette.requests import Request

from examples.master.errors import APIError
from examples.master.metrics import MasterMetrics
from examples.master.store import Store
from ffrtmp_infra.ratelimit import Limiter, RequestInfo, client_ip

__all__ = ["Authenticator", "NodeCredentials"]

NODE_TOKEN_HEADER = "x-node-token"  # noqa: S105 (a header name, not a secret)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class NodeCredentials:
    """Per-node tokens: issued at first registration, stored hashed, revoked on removal."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def issue(self, node_id: str) -> str:
        """A new token for ``node_id`` (replacing any previous one); only its hash is kept."""
        token = secrets.token_urlsafe(32)
        self._store.set_node_token(node_id, _digest(token))
        return token

    def has(self, node_id: str) -> bool:
        """True when ``node_id`` holds a token (it registered and was not removed)."""
        return self._store.node_token(node_id) is not None

    def verify(self, node_id: str, presented: str) -> bool:
        """True when ``presented`` is ``node_id``'s token (constant-time comparison)."""
        stored = self._store.node_token(node_id)
        return stored is not None and hmac.compare_digest(_digest(presented), stored)

    def revoke(self, node_id: str) -> None:
        """Forget the node's token: it must register again (with the enrollment key)."""
        self._store.set_node_token(node_id, None)


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
        credentials: NodeCredentials,
        trusted_proxies: Sequence[str] = (),
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
        self.credentials = credentials
        self._client = client_ip(trusted_proxies=trusted_proxies)

    def client(self, request: Request) -> str:
        """The client identity failures are counted under (the limiter's, see the module)."""
        scope = request.scope
        info = RequestInfo(
            request.method,
            request.url.path,
            client=request.client.host if request.client else None,
            raw=scope,
            raw_headers=scope.get("headers", ()),
        )
        return str(self._client(info) or "unknown")

    def has_role(self, request: Request, *roles: str) -> bool:
        """True when the request carries the key of one of ``roles`` (or one is open)."""
        expected = [self._expected[role] for role in roles]
        if None in expected:
            return True
        presented = request.headers.get("authorization", "").encode()
        # every key is compared (no early exit), each in constant time
        matches = [hmac.compare_digest(presented, key) for key in expected if key is not None]
        return bool(presented) and any(matches)

    async def check(self, request: Request, *roles: str) -> None:
        """Return if the request carries the key of one of ``roles``; raise 401 or 429 otherwise."""
        if self.has_role(request, *roles):
            return
        role = "|".join(roles)
        await self.count_failure(request, role)
        if not request.headers.get("authorization"):
            raise APIError(401, "missing Authorization: Bearer <key> header", {"role": role})
        raise APIError(401, "invalid API key", {"role": role})

    async def check_node(self, request: Request, node_id: str, *, operator: bool = False) -> None:
        """The worker key plus ``node_id``'s own token (or, if ``operator``, the submitter key).

        A node the master holds no token for passes (the route then answers 404 or 410,
        which tells a worker to register again or to stop). Raises 401, 403 or 429.
        """
        if operator and self.has_role(request, "submitter"):
            return
        await self.check(request, "worker")
        if not self.credentials.has(node_id):
            return
        presented = request.headers.get(NODE_TOKEN_HEADER, "")
        if presented and self.credentials.verify(node_id, presented):
            return
        await self.count_failure(request, "node")
        raise APIError(
            403,
            f"this request does not carry node {node_id[:80]!r}'s token ({NODE_TOKEN_HEADER})",
            {"node_id": node_id[:80]},
        )

    async def count_failure(self, request: Request, role: str) -> None:
        """Count a failure for the client; raise 429 when it is (or just got) locked out."""
        client = self.client(request)
        now = self._clock()
        self._metrics.auth_failures.labels(role).inc()
        until = self._locked_until.get(client)
        if until is not None:
            if now < until:
                self._metrics.auth_lockouts.inc()
                raise _locked(until - now)
            del self._locked_until[client]
        decision = await self._failures.ahit(client)
        if not decision.allowed:
            if len(self._locked_until) >= _MAX_LOCKED:
                self._locked_until = {k: t for k, t in self._locked_until.items() if t > now}
            self._locked_until[client] = now + decision.retry_after
            self._metrics.auth_lockouts.inc()
            raise _locked(decision.retry_after)


def _locked(retry_after: float) -> APIError:
    seconds = max(1, math.ceil(retry_after))
    return APIError(
        429,
        "too many failed authentication attempts; try again later",
        {"retry_after": seconds},
        headers={"Retry-After": str(seconds)},
    )
