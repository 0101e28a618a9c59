"""WSGI rate-limit middleware (Flask, Django, any WSGI app), sharing the ASGI core."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ffrtmp_infra.ratelimit._engine import Engine, Outcome
from ffrtmp_infra.ratelimit._headers import HeaderMode, Rejection
from ffrtmp_infra.ratelimit._keys import KeyFunction, RequestInfo
from ffrtmp_infra.ratelimit._limiter import Limiter
from ffrtmp_infra.ratelimit._rules import Rule
from ffrtmp_infra.ratelimit._views import mark_charged
from ffrtmp_infra.ratelimit._window import WindowLimiter

__all__ = ["REASONS", "WSGIRateLimitMiddleware"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
#: WSGI status lines of the answers the limits give
REASONS = {429: "429 Too Many Requests", 503: "503 Service Unavailable"}


class WSGIRateLimitMiddleware:
    """Rate-limit a WSGI app: ``app.wsgi_app = WSGIRateLimitMiddleware(app.wsgi_app, ...)``.

    Takes the same options as :class:`RateLimitMiddleware` (key functions must be
    synchronous; no ``websockets``); the storage calls are synchronous, as WSGI is.
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
        preflights: bool = False,
    ) -> None:
        self.app = app
        self._skip_preflights = not preflights
        self.engine = Engine(
            limiter, rules, key, headers, dry_run, encode=False, allow_async_keys=False
        )

    def check(self, environ: dict[str, Any]) -> tuple[Rejection | None, list[tuple[str, str]]]:
        """Decide a request: the rejection to send (or ``None``) and the headers to add.

        Django's :class:`ffrtmp_infra.ratelimit.django.RateLimitMiddleware` calls it
        with ``request.META``.
        """
        if self._skip_preflights and _is_preflight(environ):
            return None, []
        engine = self.engine
        ip_key = engine.client_ip_key
        if engine.simple and ip_key is not None:
            keyed: list[tuple[Any, str, int]] = [(engine.limiter, ip_key.from_environ(environ), 1)]
        else:
            info = RequestInfo.from_environ(environ)
            checks = engine.plan(info)
            keyed = engine.keys(info, checks) if checks is not None else []
        if not keyed:
            return None, []
        return self._answer(environ, *engine.decide(keyed))

    async def acheck(
        self, environ: dict[str, Any]
    ) -> tuple[Rejection | None, list[tuple[str, str]]]:
        """:meth:`check` with async storage calls (for Django under ASGI)."""
        if self._skip_preflights and _is_preflight(environ):
            return None, []
        engine = self.engine
        info = RequestInfo.from_environ(environ)
        checks = engine.plan(info)
        keyed = await engine.akeys(info, checks) if checks is not None else []
        if not keyed:
            return None, []
        return self._answer(environ, *await engine.adecide(keyed))

    def _answer(
        self, environ: dict[str, Any], allowed: bool, outcomes: list[Outcome]
    ) -> tuple[Rejection | None, list[tuple[str, str]]]:
        engine = self.engine
        engine.record(allowed, outcomes)
        pairs = [(lim, d) for lim, _, _, d in outcomes]
        if not allowed and not engine.dry_run:
            return engine.writer.rejection(pairs), []
        if allowed:
            mark_charged(environ, tuple((lim, None) for lim, _ in pairs))
        extra = engine.writer.single(*pairs[0]) if len(pairs) == 1 else engine.writer.pairs(pairs)
        return None, extra

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rejection, extra = self.check(environ)
        if rejection is not None:
            start_response(REASONS[rejection.status], rejection.headers)
            return [rejection.body]
        if not extra:
            return self.app(environ, start_response)

        def start_with_headers(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            return start_response(status, [*headers, *extra], exc_info)

        return self.app(environ, start_with_headers)


def _is_preflight(environ: dict[str, Any]) -> bool:
    return (
        environ.get("REQUEST_METHOD") == "OPTIONS"
        and "HTTP_ORIGIN" in environ
        and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
    )
