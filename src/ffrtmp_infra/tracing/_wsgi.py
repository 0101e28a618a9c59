"""``WSGITracingMiddleware``: the ASGI middleware's span shape for WSGI apps."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ffrtmp_infra.tracing._attributes import (
    CLIENT_ADDRESS,
    CLIENT_PORT,
    ERROR_TYPE,
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
    NETWORK_PROTOCOL_VERSION,
    SERVER_ADDRESS,
    SERVER_PORT,
    URL_PATH,
    URL_QUERY,
    URL_SCHEME,
    USER_AGENT_ORIGINAL,
)
from ffrtmp_infra.tracing._logging import remember_span
from ffrtmp_infra.tracing._server import (
    Attributes,
    Exclusions,
    Plan,
    PropagationFields,
    context_with_span,
    global_provider,
    normalize_method,
    parse_host,
    redact_query,
    route_name,
)
from ffrtmp_infra.tracing._spans import record_error

__all__ = ["WSGITracingMiddleware"]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
RouteGetter = Callable[[Environ], "str | None"]

_ENV_VARS = ("OTEL_PYTHON_WSGI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
ROUTE_KEY = "ffrtmp.route"


def _environ_route(environ: Environ) -> str | None:
    route = environ.get(ROUTE_KEY)
    return route if isinstance(route, str) and route else None


class WSGITracingMiddleware:
    """A SERVER span per WSGI request, shaped like :class:`TracingMiddleware`'s.

    The span is named ``METHOD route`` when a route is known: ``route_getter``
    is called with the environ when the app starts its response (inside the
    framework's request context, so for Flask
    ``route_getter=lambda environ: flask.request.url_rule.rule`` works); by
    default the app may put the template in ``environ["ffrtmp.route"]``.
    Otherwise the name is the method alone. The span ends when the server
    closes the response iterable (or it is exhausted), timed to that moment;
    the request's context is current while the app is called, not while the
    server iterates the body.
    """

    def __init__(
        self,
        wsgi_app: WSGIApp,
        *,
        excluded_urls: str | Sequence[str] | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        route_getter: RouteGetter | None = None,
    ) -> None:
        self.wsgi_app = wsgi_app
        self._exclusions = Exclusions.resolve(excluded_urls, _ENV_VARS)
        self._fixed_provider = tracer_provider
        self._plan = Plan.build(tracer_provider) if tracer_provider else Plan(None, None)
        self._fields = PropagationFields()
        self._route_getter = route_getter or _environ_route

    def _current_plan(self) -> Plan:
        provider = self._fixed_provider or global_provider()
        plan = self._plan
        if plan.provider is not provider:
            plan = self._plan = Plan.build(provider)
        return plan

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        plan = self._current_plan()
        if plan.tracer is None:
            return self.wsgi_app(environ, start_response)
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if self._exclusions.excluded(path or "/"):
            return self.wsgi_app(environ, start_response)

        textmap = self._fields.current()
        carrier: dict[str, str] = {}
        for field, key in self._fields.environ_keys:
            value = environ.get(key)
            if value:
                carrier[field] = value
        if carrier:
            parent = self._fields.extract(textmap, carrier)
            span = plan.certain_drop(trace.get_current_span(parent).get_span_context())
        else:
            parent = None
            span = plan.root_span()
        method, original = normalize_method(environ.get("REQUEST_METHOD", "GET"))
        if span is None:
            start_context = parent if parent is not None else Context()
            name = route_name(method, None)
            if plan.attribute_blind:
                span = plan.tracer.start_span(name, start_context, SpanKind.SERVER)
                if span.is_recording():
                    span.set_attributes(_attributes(environ, path, method, original))
            else:
                attributes = _attributes(environ, path, method, original)
                span = plan.tracer.start_span(name, start_context, SpanKind.SERVER, attributes)
            plan.unprime()
        token = otel_context.attach(context_with_span(span, parent))
        try:
            if not span.is_recording():
                return self.wsgi_app(environ, start_response)
            return self._traced(environ, start_response, span, method)
        except Exception as exc:
            remember_span(exc, span.get_span_context())
            raise
        finally:
            otel_context.detach(token)

    def _traced(
        self, environ: Environ, start_response: StartResponse, span: Span, method: str
    ) -> Iterable[bytes]:
        route_getter = self._route_getter

        def traced_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            code = status.split(" ", 1)[0]
            if code.isdigit():
                status_code = int(code)
                span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status_code)
                if status_code >= 500:
                    span.set_attribute(ERROR_TYPE, code)
                    span.set_status(Status(StatusCode.ERROR))
            try:
                route = route_getter(environ)
            except Exception:  # a broken getter must not break the response
                route = None
            if route:
                span.set_attribute(HTTP_ROUTE, route)
                span.update_name(route_name(method, route))
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        try:
            body = self.wsgi_app(environ, traced_start_response)
        except Exception as exc:
            _record(span, exc)
            span.end()
            raise
        return _SpanClosingBody(body, span)


def _record(span: Span, exc: BaseException) -> None:
    record_error(span, exc)
    remember_span(exc, span.get_span_context())


class _SpanClosingBody:
    """The app's body iterable, ending the span when exhausted or closed."""

    def __init__(self, body: Iterable[bytes], span: Span) -> None:
        self._body = body
        self._span = span
        self._ended = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except Exception as exc:
            _record(self._span, exc)
            self._end()
            raise
        self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._span.end(time.time_ns())

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._end()


def _attributes(environ: Environ, path: str, method: str, original: str | None) -> Attributes:
    attributes: Attributes = {
        HTTP_REQUEST_METHOD: method,
        URL_SCHEME: environ.get("wsgi.url_scheme", "http"),
        URL_PATH: path or "/",
    }
    if original is not None:
        attributes[HTTP_REQUEST_METHOD_ORIGINAL] = original
    query = environ.get("QUERY_STRING")
    if query:
        attributes[URL_QUERY] = redact_query(query)
    host = environ.get("HTTP_HOST")
    port: int | None = None
    if host:
        address, port = parse_host(host)
    else:
        address = environ.get("SERVER_NAME", "")
    if port is None:
        server_port = str(environ.get("SERVER_PORT", ""))
        port = int(server_port) if server_port.isdigit() else None
    if address:
        attributes[SERVER_ADDRESS] = address
    if port is not None:
        attributes[SERVER_PORT] = port
    protocol = environ.get("SERVER_PROTOCOL", "")
    if protocol.startswith("HTTP/"):
        attributes[NETWORK_PROTOCOL_VERSION] = protocol[5:]
    if environ.get("REMOTE_ADDR"):
        attributes[CLIENT_ADDRESS] = environ["REMOTE_ADDR"]
    remote_port = str(environ.get("REMOTE_PORT", ""))
    if remote_port.isdigit():
        attributes[CLIENT_PORT] = int(remote_port)
    if environ.get("HTTP_USER_AGENT"):
        attributes[USER_AGENT_ORIGINAL] = environ["HTTP_USER_AGENT"]
    return attributes
