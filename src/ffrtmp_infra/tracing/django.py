"""Django tracing: one line in ``MIDDLEWARE``.

```python
MIDDLEWARE = [
    "ffrtmp_infra.tracing.django.TracingMiddleware",
    ...
]
```

Needs ``pip install 'ffrtmp-infra[django]'``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from ffrtmp_infra.tracing._errors import ConfigurationError, MissingExtraError
from ffrtmp_infra.tracing._server import route_template
from ffrtmp_infra.tracing._wsgi import RequestSpan, ServerSpans

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.conf import settings
    from django.http import HttpRequest, HttpResponseBase
except ImportError as exc:
    raise MissingExtraError("ffrtmp_infra.tracing.django", "django", "Django") from exc

__all__ = ["TracingMiddleware"]

_ENV_VARS = ("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
_OPTIONS = frozenset({"excluded_urls", "tracer_provider"})
_SPAN_ATTR = "_ffrtmp_tracing_span"
_EXCEPTION_ATTR = "_ffrtmp_tracing_exception"

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def _options() -> dict[str, Any]:
    options = getattr(settings, "FFRTMP_TRACING", None) or {}
    if not isinstance(options, dict):
        raise ConfigurationError(f"settings.FFRTMP_TRACING must be a dict, got {options!r}")
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"settings.FFRTMP_TRACING has unknown keys {unknown}; "
            f"allowed: {', '.join(sorted(_OPTIONS))}"
        )
    return {"excluded_urls": None, "tracer_provider": None, **options}


class TracingMiddleware:
    """A SERVER span per request, named by the resolved route: ``GET /items/{item_id}``.

    * Spans have the shape of :class:`~ffrtmp_infra.tracing.TracingMiddleware`'s
      (stable HTTP attributes, ``traceparent`` continued, redacted query); the
      name and ``http.route`` come from ``request.resolver_match.route`` with
      converters rewritten (``items/<int:item_id>`` becomes ``/items/{item_id}``,
      a ``re_path`` group ``(?P<pk>...)`` becomes ``{pk}``).
    * An exception a view raises that Django answers with a 5xx is recorded
      (``exception`` event, ``error.type`` = its class, ERROR status); ``Http404``,
      ``PermissionDenied`` and other 4xx are not errors.
    * Sync and async capable: under WSGI and ASGI Django runs it in the
      handler's mode. The span ends when the response is returned (a streamed
      body is sent after that).
    * Options in ``settings.FFRTMP_TRACING`` (a dict): ``excluded_urls`` and
      ``tracer_provider``, as for the ASGI middleware (env:
      ``OTEL_PYTHON_DJANGO_EXCLUDED_URLS``, ``OTEL_PYTHON_EXCLUDED_URLS``).

    Place it first in ``MIDDLEWARE`` so the span covers the other middleware.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        self._spans = ServerSpans(env_vars=_ENV_VARS, **_options())

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        started = self._start(request)
        if started is None:
            return self.get_response(request)
        request_span, token = started
        try:
            response = self.get_response(request)
        except Exception as exc:
            _fail(request_span, exc)
            raise
        finally:
            otel_context.detach(token)
        return _finish(request, request_span, response)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        started = self._start(request)
        if started is None:
            return await self.get_response(request)
        request_span, token = started
        try:
            response = await self.get_response(request)
        except Exception as exc:
            _fail(request_span, exc)
            raise
        finally:
            otel_context.detach(token)
        return _finish(request, request_span, response)

    def _start(self, request: HttpRequest) -> tuple[RequestSpan, Token[Context]] | None:
        started = self._spans.start(request.META, scheme=request.scheme)
        if started is not None:
            setattr(request, _SPAN_ATTR, started[0])
        return started

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """Keep the view's exception; it is recorded if Django answers it with a 5xx."""
        if hasattr(request, _SPAN_ATTR):
            setattr(request, _EXCEPTION_ATTR, exception)


def _fail(request_span: RequestSpan, exc: BaseException) -> None:
    request_span.fail(exc)
    request_span.end()


def _finish(
    request: HttpRequest, request_span: RequestSpan, response: HttpResponseBase
) -> HttpResponseBase:
    if request_span.span.is_recording():
        status_code = response.status_code
        exception = getattr(request, _EXCEPTION_ATTR, None)
        if exception is not None and status_code >= 500:
            request_span.fail(exception)
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None)
        request_span.respond(
            status_code, route_template(route) if route is not None else None, response.items()
        )
    request_span.end()
    return response
