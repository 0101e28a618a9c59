"""WSGI rate-limit middleware (Flask, Django, any WSGI app), sharing the ASGI core."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ffrtmp_infra.ratelimit._engine import Engine
from ffrtmp_infra.ratelimit._headers import HeaderMode
from ffrtmp_infra.ratelimit._keys import KeyFunction, RequestInfo
from ffrtmp_infra.ratelimit._limiter import Limiter
from ffrtmp_infra.ratelimit._rules import Rule
from ffrtmp_infra.ratelimit._views import mark_charged
from ffrtmp_infra.ratelimit._window import WindowLimiter

__all__ = ["WSGIRateLimitMiddleware"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_REASONS = {429: "429 Too Many Requests", 503: "503 Service Unavailable"}


class WSGIRateLimitMiddleware:
    """Rate-limit a WSGI app: ``app.wsgi_app = WSGIRateLimitMiddleware(app.wsgi_app, ...)``.

    Takes the same options as :class:`RateLimitMiddleware` (key functions must be
    synchronous); the storage calls are synchronous, as WSGI is.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        limiter: Limiter | WindowLimiter | None = None,
        rules: Sequence[Rule] = (),
        key: KeyFunction | None = None,
        headers: HeaderMode = "draft10",
        dry_run: bool = False,
    ) -> None:
        self.app = app
        self.engine = Engine(
            limiter, rules, key, headers, dry_run, encode=False, allow_async_keys=False
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        engine = self.engine
        ip_key = engine.client_ip_key
        if engine.simple and ip_key is not None:
            keyed: list[tuple[Any, str, int]] = [(engine.limiter, ip_key.from_environ(environ), 1)]
        else:
            info = RequestInfo.from_environ(environ)
            checks = engine.plan(info)
            if checks is None:
                return self.app(environ, start_response)
            keyed = engine.keys(info, checks)
        if not keyed:
            return self.app(environ, start_response)
        allowed, outcomes = engine.decide(keyed)
        engine.record(allowed, outcomes)
        pairs = [(lim, d) for lim, _, _, d in outcomes]
        if not allowed and not engine.dry_run:
            rejection = engine.writer.rejection(pairs)
            start_response(_REASONS[rejection.status], rejection.headers)
            return [rejection.body]
        if allowed:
            mark_charged(environ, tuple((lim, None) for lim, _ in pairs))
        extra = engine.writer.single(*pairs[0]) if len(pairs) == 1 else engine.writer.pairs(pairs)
        if not extra:
            return self.app(environ, start_response)

        def start_with_headers(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            return start_response(status, [*headers, *extra], exc_info)

        return self.app(environ, start_with_headers)
