"""Rate limits for Django: a middleware configured from settings, and a view decorator.

```python
# settings.py
from ffrtmp_infra.ratelimit import Limiter, Rule

MIDDLEWARE = ["ffrtmp_infra.ratelimit.django.RateLimitMiddleware", ...]
FFRTMP_RATELIMIT = {"limiter": Limiter(100, 20), "rules": [Rule(path="/health", exempt=True)]}
```

Both work under WSGI (gunicorn) and ASGI (uvicorn), with sync and async views.
Needs Django (``pip install 'ffrtmp-infra[django]'``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.http import HttpResponse
except ImportError as exc:  # pragma: no cover - exercised without the extra
    from ffrtmp_infra.ratelimit._errors import MissingExtraError

    raise MissingExtraError("ffrtmp_infra.ratelimit.django", "django", "Django") from exc

from ffrtmp_infra.ratelimit._decision import Decision
from ffrtmp_infra.ratelimit._errors import ConfigurationError
from ffrtmp_infra.ratelimit._headers import HeaderMode, Rejection, rate_limit_headers, rejection
from ffrtmp_infra.ratelimit._keys import KeyFunction, RequestInfo
from ffrtmp_infra.ratelimit._rules import LimiterSource
from ffrtmp_infra.ratelimit._views import ViewLimit
from ffrtmp_infra.ratelimit._wsgi import WSGIRateLimitMiddleware

__all__ = ["SETTING", "RateLimitMiddleware", "limit"]

#: The Django setting holding the middleware's options.
SETTING = "FFRTMP_RATELIMIT"
_OPTIONS = ("limiter", "rules", "key", "headers", "dry_run", "preflights")
View = TypeVar("View", bound=Callable[..., Any])


def _response(found: Rejection) -> HttpResponse:
    return HttpResponse(found.body, status=found.status, headers=dict(found.headers))


def _add_headers(response: Any, pairs: list[tuple[str, str]]) -> Any:
    for name, value in pairs:
        response[name] = value
    return response


def _unused_app(environ: Any, start_response: Any) -> Any:  # pragma: no cover - never called
    raise AssertionError("the Django middleware calls check(), never the WSGI app")


class RateLimitMiddleware:
    """Django middleware limiting every request, configured by ``settings.FFRTMP_RATELIMIT``.

    The setting is a dict of :class:`~ffrtmp_infra.ratelimit.RateLimitMiddleware`'s
    options: ``limiter``, ``rules``, ``key`` (synchronous), ``headers``, ``dry_run``,
    ``preflights``.
    A rejected request gets the middleware's ``429`` (problem+json, ``Retry-After``);
    allowed responses carry the quota headers. Works sync (WSGI) and async (ASGI; a
    Redis limiter then uses the asyncio client).

    Raises:
        ImproperlyConfigured: the setting is missing or invalid (naming the value and
            the rule it broke), when Django loads the middleware.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        options = getattr(settings, SETTING, None)
        if not isinstance(options, Mapping):
            raise ImproperlyConfigured(
                f"{SETTING} must be a dict of rate-limit options ({', '.join(_OPTIONS)}), "
                f"got {options!r}"
            )
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ImproperlyConfigured(
                f"{SETTING} has unknown options {unknown}; expected some of {', '.join(_OPTIONS)}"
            )
        try:
            self.limits = WSGIRateLimitMiddleware(_unused_app, **options)
        except ConfigurationError as exc:
            raise ImproperlyConfigured(f"{SETTING}: {exc}") from exc
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self._acall(request)
        found, extra = self.limits.check(request.META)
        if found is not None:
            return _response(found)
        return _add_headers(self.get_response(request), extra)

    async def _acall(self, request: Any) -> Any:
        found, extra = await self.limits.acheck(request.META)
        if found is not None:
            return _response(found)
        return _add_headers(await self.get_response(request), extra)


def limit(
    limiter: LimiterSource,
    key: KeyFunction | None = None,
    cost: int | Callable[[RequestInfo], int] = 1,
    *,
    name: str | None = None,
    headers: HeaderMode = "draft10",
) -> Callable[[View], View]:
    """Decorate a Django view (a function taking ``request``, sync or async) with a limit.

    A rejected request gets the middleware's ``429``; an allowed response carries
    the quota headers. A request already charged for ``limiter`` (by the middleware
    or another ``limit`` of it) is not charged again. ``key`` (synchronous), ``cost``,
    ``name`` and ``headers`` are those of :class:`ffrtmp_infra.ratelimit.fastapi.RateLimit`.

    Raises:
        ConfigurationError: an invalid limiter, key, cost, name or header mode.
    """
    view_limit = ViewLimit(limiter, key, cost, name, headers, allow_async_keys=False)

    def answer(decision: Decision | None) -> HttpResponse | None:
        if decision is None or decision.allowed:
            return None
        return _response(rejection(decision, mode=headers))

    def report(response: Any, decision: Decision | None) -> Any:
        if decision is None:
            return response
        return _add_headers(response, rate_limit_headers(decision, mode=headers))

    def decorate(view: View) -> View:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def limited_async(request: Any, *args: Any, **kwargs: Any) -> Any:
                meta = request.META
                decision = None
                if not view_limit.charged(meta):
                    decision = await view_limit.adecide(RequestInfo.from_environ(meta))
                rejected = answer(decision)
                if rejected is not None:
                    return rejected
                return report(await view(request, *args, **kwargs), decision)

            return limited_async  # type: ignore[return-value]

        @functools.wraps(view)
        def limited(request: Any, *args: Any, **kwargs: Any) -> Any:
            meta = request.META
            decision = None
            if not view_limit.charged(meta):
                decision = view_limit.decide(RequestInfo.from_environ(meta))
            rejected = answer(decision)
            if rejected is not None:
                return rejected
            return report(view(request, *args, **kwargs), decision)

        return limited  # type: ignore[return-value]

    return decorate
