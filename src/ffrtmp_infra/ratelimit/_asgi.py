"""Pure ASGI rate-limit middleware (no BaseHTTPMiddleware, streaming untouched)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from ffrtmp_infra.ratelimit import _metrics
from ffrtmp_infra.ratelimit._decision import Decision
from ffrtmp_infra.ratelimit._engine import Engine, Outcome
from ffrtmp_infra.ratelimit._headers import HeaderMode, Rejection
from ffrtmp_infra.ratelimit._keys import KeyFunction, RequestInfo
from ffrtmp_infra.ratelimit._limiter import Limiter
from ffrtmp_infra.ratelimit._routes import RouteTable, is_preflight
from ffrtmp_infra.ratelimit._rules import Rule
from ffrtmp_infra.ratelimit._views import CHARGED, mark_charged
from ffrtmp_infra.ratelimit._window import WindowLimiter

__all__ = ["RateLimitMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RateLimitMiddleware:
    """Rate-limit HTTP requests (and optionally WebSocket handshakes) of an ASGI app.

    ``app.add_middleware(RateLimitMiddleware, limiter=Limiter(100, 20))``.

    Args:
        app: the ASGI app to protect.
        limiter: the default limit applied to every request (optional with rules).
        rules: more limits, exemptions and per-route keys/costs (:class:`Rule`).
        key: default key function (default :func:`client_ip`, the socket peer).
        headers: ``"draft10"`` (IETF ``RateLimit``/``RateLimit-Policy``, default),
            ``"legacy"`` (``X-RateLimit-*``) or ``None``.
        dry_run: decide, count and set headers, but never reject (shadow mode).
        websockets: also limit WebSocket handshakes (a rejected one gets 429 where
            the server supports denial responses, else a close with code 1008).
        preflights: also limit CORS preflights (``OPTIONS`` with ``Origin`` and
            ``Access-Control-Request-Method``); by default they pass uncharged, so a
            CORS middleware inside this one always answers them.

    A rejected request's route (on a Starlette/FastAPI app) is put in
    ``scope["route"]``, as Starlette's router does for requests it serves, so
    tracing outside the limiter names the span by route. At startup (lifespan, or
    the first request) a rule whose path matches no route of the app logs a warning.

    Rejections are ``429`` ``application/problem+json`` with ``Retry-After``; a
    limiter failing closed on an unreachable storage gives ``503``. ``lifespan``
    and other scopes pass straight through.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: Limiter | WindowLimiter | None = None,
        rules: Sequence[Rule] = (),
        key: KeyFunction | None = None,
        headers: HeaderMode = "draft10",
        dry_run: bool = False,
        websockets: bool = False,
        preflights: bool = False,
    ) -> None:
        self.app = app
        self.engine = Engine(
            limiter, rules, key, headers, dry_run, encode=True, allow_async_keys=True
        )
        self.websockets = websockets
        self._skip_preflights = not preflights
        self._rules_unchecked = any(rule.path is not None for rule in self.engine.rules)
        self._routes: RouteTable | None = None
        self._writer = self.engine.writer
        self._dry_run = self.engine.dry_run
        # The fast path: one in-memory limiter, no rules, a synchronous key function.
        engine = self.engine
        self._fast_limiter = (
            limiter
            if engine.simple
            and limiter is not None
            and not limiter.shared
            and not engine.key_is_async
            else None
        )
        ip_key = engine.client_ip_key
        self._fast_key: Callable[[Any], Any] | None = None
        if self._fast_limiter is not None:
            if ip_key is not None:
                self._fast_key = ip_key.from_scope
            else:
                key_fn = engine.key
                self._fast_key = lambda scope: key_fn(RequestInfo.from_scope(scope))
        # The hottest path: that limiter is a token bucket (no Decision objects needed).
        self._bucket = self._fast_limiter if isinstance(self._fast_limiter, Limiter) else None
        self._plain_ip = ip_key is not None and not ip_key.trusted_proxies
        self._ip_key: Callable[[Any], str] = ip_key.from_scope if ip_key is not None else str
        self._legacy = headers == "legacy"
        self._headers_off = headers is None
        self._state_cache = self._writer._state_cache
        self._marks: tuple[Any, ...] = ((limiter, None),)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and self.websockets:
                await self._websocket(scope, receive, send)
                return
            if self._rules_unchecked and scope["type"] == "lifespan":
                self._check_rules(scope)
            await self.app(scope, receive, send)
            return
        if (
            scope["method"] == "OPTIONS"
            and self._skip_preflights
            and is_preflight(scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        bucket = self._bucket
        if bucket is not None and _metrics._instruments is None:
            # The hot path: one in-memory token bucket, no rules, no metrics.
            if self._plain_ip:
                client = scope.get("client")
                key = client[0] if client else "unknown"
                if ":" in key:
                    key = self._ip_key(scope)
            else:
                key = self._fast_key(scope)  # type: ignore[misc]
                if key is None:
                    await self.app(scope, receive, send)
                    return
            code = bucket._admit(key, self._legacy)
            if code >= 0:
                # Per-route limits of the same limiter (RateLimit, limit) skip this request.
                charged = scope.get(CHARGED)
                scope[CHARGED] = self._marks if charged is None else charged + self._marks
                if self._headers_off:
                    await self.app(scope, receive, send)
                    return
                cached = self._state_cache.get(code)
                extra: list[Any] = (
                    cached if cached is not None else self._writer.for_state(bucket, code)
                )

                # A plain function returning send's awaitable: no extra coroutine per message.
                def send_with_state(message: Message) -> Awaitable[None]:
                    if message["type"] == "http.response.start":
                        headers = message.get("headers")
                        if type(headers) is list:
                            message["headers"] = headers + extra
                        else:
                            message["headers"] = [*(headers or ()), *extra]
                    return send(message)

                await self.app(scope, receive, send_with_state)
                return
            # Rejected (nothing was consumed): the full Decision path below says why.
        limiter = self._fast_limiter
        if limiter is not None:
            key = self._fast_key(scope)  # type: ignore[misc]
            if key is None:
                await self.app(scope, receive, send)
                return
            decision = limiter.hit(key)
            if _metrics._instruments is not None:
                self.engine.record(decision.allowed, [(limiter, key, 1, decision)])
            if decision.allowed:
                mark_charged(scope, self._marks)
            if decision.allowed or self._dry_run:
                extra = self._writer.single(limiter, decision)
                await self.app(scope, receive, _adding_headers(send, extra) if extra else send)
                return
            await self._reject(self._writer.rejection([(limiter, decision)]), scope, send)
            return
        await self._general(scope, receive, send)

    def _check_rules(self, scope: Scope) -> None:
        self._rules_unchecked = False
        self._route_table(scope).warn_unmatched(self.engine.rules)

    def _route_table(self, scope: Scope) -> RouteTable:
        """The routes of the app in ``scope["app"]`` (read once: the app is one)."""
        table = self._routes
        if table is None:
            table = self._routes = RouteTable(scope.get("app"))
        return table

    async def _evaluate(self, scope: Scope) -> tuple[bool, list[Outcome]] | None:
        engine = self.engine
        info = RequestInfo.from_scope(scope)
        checks = engine.plan(info)
        if checks is None:
            return None
        keyed = await engine.akeys(info, checks)
        if not keyed:
            return None
        allowed, outcomes = await engine.adecide(keyed)
        engine.record(allowed, outcomes)
        return allowed, outcomes

    async def _general(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._rules_unchecked:
            self._check_rules(scope)
        result = await self._evaluate(scope)
        if result is None:
            await self.app(scope, receive, send)
            return
        allowed, outcomes = result
        pairs = [(lim, d) for lim, _, _, d in outcomes]
        if not allowed and not self._dry_run:
            await self._reject(self._writer.rejection(pairs), scope, send)
            return
        if allowed:
            mark_charged(scope, tuple((lim, None) for lim, _ in pairs))
        extra = self._writer.encoded(self._writer.pairs(_shown(outcomes)))
        await self.app(scope, receive, _adding_headers(send, extra) if extra else send)

    async def _reject(self, rejection: Rejection, scope: Scope, send: Send) -> None:
        self._route_table(scope).record(scope)
        await send(
            {
                "type": "http.response.start",
                "status": rejection.status,
                "headers": self._writer.encoded(rejection.headers),
            }
        )
        await send({"type": "http.response.body", "body": rejection.body})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        result = await self._evaluate(scope)
        if result is None or result[0] or self._dry_run:
            await self.app(scope, receive, send)
            return
        rejection = self._writer.rejection([(lim, d) for lim, _, _, d in result[1]])
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if "websocket.http.response" in (scope.get("extensions") or {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": rejection.status,
                    "headers": self._writer.encoded(rejection.headers),
                }
            )
            await send({"type": "websocket.http.response.body", "body": rejection.body})
            return
        await send({"type": "websocket.close", "code": 1008, "reason": "rate limited"})


def _adding_headers(send: Send, extra: Sequence[Any]) -> Send:
    """``send`` that appends ``extra`` to the response's headers (returns send's awaitable)."""

    def send_with_headers(message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *extra]
        return send(message)

    return send_with_headers


def _shown(outcomes: list[Outcome]) -> list[tuple[Any, Decision]]:
    """The decisions a response reports (in a shadowed rejection, all of them)."""
    return [(lim, d) for lim, _, _, d in outcomes]
