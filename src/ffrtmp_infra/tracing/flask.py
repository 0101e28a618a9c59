"""Flask tracing in one call: ``instrument_app(app)``.

```python
from flask import Flask

from ffrtmp_infra.tracing.flask import instrument_app

app = Flask(__name__)
instrument_app(app)
```

Needs ``pip install 'ffrtmp-infra[flask]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace

from ffrtmp_infra.tracing._errors import MissingExtraError
from ffrtmp_infra.tracing._server import route_template
from ffrtmp_infra.tracing._wsgi import ENVIRON_KEY, RequestSpan, WSGITracingMiddleware

try:
    import flask
except ImportError as exc:
    raise MissingExtraError("ffrtmp_infra.tracing.flask", "flask", "Flask") from exc

__all__ = ["instrument_app"]

_ENV_VARS = ("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
_INSTRUMENTED = "ffrtmp_infra.tracing"  # key in app.extensions


def instrument_app(
    app: flask.Flask,
    *,
    excluded_urls: str | Sequence[str] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> flask.Flask:
    """Trace every request of ``app``: a SERVER span named ``GET /items/{item_id}``.

    * The name and ``http.route`` come from the matched ``url_rule``, its
      converters rewritten (``/items/<int:item_id>`` becomes ``/items/{item_id}``);
      unmatched requests are named by the method alone.
    * An unhandled exception (Flask's ``got_request_exception``) is recorded as
      an ``exception`` event with ``error.type`` = its class; the 500 that Flask
      answers keeps that type. Exceptions handled by an error handler and
      HTTP errors (404, 405 ...) are not exceptions of the request.
    * The span ends when Flask is done with the request (``teardown_request``,
      once the response is built), not when the server has sent the body: it
      ends under Flask's test client without ``response.close()``, and a
      streamed body's time is not in it. Inside ``with client:`` Flask keeps
      the request (and the span) open until the next request or the block's end.
    * ``excluded_urls`` and ``tracer_provider`` as for :class:`TracingMiddleware`
      (env: ``OTEL_PYTHON_FLASK_EXCLUDED_URLS``, ``OTEL_PYTHON_EXCLUDED_URLS``).

    Wraps ``app.wsgi_app``; calling it again on the same app changes nothing.
    Returns ``app``.
    """
    if _INSTRUMENTED in app.extensions:
        return app
    app.extensions[_INSTRUMENTED] = True
    app.wsgi_app = WSGITracingMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        excluded_urls=excluded_urls,
        tracer_provider=tracer_provider,
        route_getter=_route,
        env_vars=_ENV_VARS,
    )
    flask.got_request_exception.connect(_record_exception, app, weak=False)
    app.teardown_request(_end_span)
    return app


def _request_span() -> RequestSpan | None:
    request_span = flask.request.environ.get(ENVIRON_KEY)
    return request_span if isinstance(request_span, RequestSpan) else None


def _route(environ: dict[str, Any]) -> str | None:
    rule = flask.request.url_rule
    return route_template(rule.rule) if rule is not None else None


def _record_exception(sender: flask.Flask, exception: BaseException, **extra: Any) -> None:
    request_span = _request_span()
    if request_span is not None:
        request_span.fail(exception)


def _end_span(exc: BaseException | None) -> None:
    request_span = _request_span()
    if request_span is not None:
        request_span.end()
