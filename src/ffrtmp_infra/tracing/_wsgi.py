"""``WSGITracingMiddleware``: the ASGI middleware's span shape for WSGI apps."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import Token
from time import perf_counter
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
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
    USER_AGENT_SYNTHETIC_TYPE,
)
from ffrtmp_infra.tracing._compat import http_suppressed, response_propagator
from ffrtmp_infra.tracing._headers import HeaderCapture, server_captures
from ffrtmp_infra.tracing._logging import remember_span
from ffrtmp_infra.tracing._metrics import MeterChoice, ServerMetrics, content_length
from ffrtmp_infra.tracing._server import (
    Attributes,
    Exclusions,
    Plan,
    PropagationFields,
    context_with_span,
    exception_type,
    global_provider,
    normalize_method,
    parse_host,
    redact_query,
    response_headers,
    route_name,
    serves_this_request,
    synthetic_type,
)
from ffrtmp_infra.tracing._spans import record_error

__all__ = ["ENVIRON_KEY", "RequestSpan", "ServerSpans", "WSGITracingMiddleware"]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
RouteGetter = Callable[[Environ], "str | None"]

_ENV_VARS = ("OTEL_PYTHON_WSGI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
ROUTE_KEY = "ffrtmp.route"
#: The request's :class:`RequestSpan` in the environ while the app runs (for framework hooks).
ENVIRON_KEY = "ffrtmp.tracing"


def _text(value: object) -> str:
    """An environ value as the str PEP 3333 promises: bytes decoded, anything else empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return value.decode("latin-1")
    return ""


def _path(environ: Environ) -> str:
    return _text(environ.get("SCRIPT_NAME")) + _text(environ.get("PATH_INFO")) or "/"


def _environ_route(environ: Environ) -> str | None:
    route = environ.get(ROUTE_KEY)
    return route if isinstance(route, str) and route else None


class RequestSpan:
    """The span of one request, driven by the WSGI middleware or a framework adapter."""

    __slots__ = ("_ended", "_response_headers", "error", "method", "span")

    def __init__(
        self, span: Span, method: str, response_headers: HeaderCapture | None = None
    ) -> None:
        self.span = span
        self.method = method
        self.error: BaseException | None = None
        self._ended = False
        self._response_headers = response_headers

    def respond(
        self,
        status_code: int | None,
        route: str | None,
        headers: Iterable[tuple[str, str]] | None = None,
    ) -> None:
        """Record the response status (5xx is an error) and name the span after ``route``;
        ``headers`` are the response's, captured when the environment asks for them."""
        span = self.span
        if headers is not None and self._response_headers is not None:
            try:
                captured = self._response_headers.from_pairs(headers)
            except (TypeError, ValueError, AttributeError):  # malformed: capture nothing
                captured = {}
            if captured:
                span.set_attributes(captured)
        if status_code is not None:
            span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status_code)
            if status_code >= 500 and self.error is None:
                span.set_attribute(ERROR_TYPE, str(status_code))
                span.set_status(Status(StatusCode.ERROR))
        if route:
            span.set_attribute(HTTP_ROUTE, route)
            span.update_name(route_name(self.method, route))

    def fail(self, exc: BaseException) -> None:
        """Record ``exc`` once (event, ``error.type`` = its class, ERROR status)."""
        if self.error is exc:
            return
        self.error = exc
        record_error(self.span, exc)
        remember_span(exc, self.span.get_span_context())

    def end(self) -> None:
        """End the span now; later calls do nothing (a framework hook may end it first)."""
        if not self._ended:
            self._ended = True
            self.span.end(time.time_ns())


class ServerSpans:
    """Opens the span of a request described by a WSGI environ (or Django's ``request.META``).

    The span is the request's SERVER span, continuing an incoming
    ``traceparent``; when another layer already opened a SERVER span for the
    request (a contrib instrumentation around the app), it is that span's
    INTERNAL child, so the request stays one trace.
    """

    def __init__(
        self,
        *,
        excluded_urls: str | Sequence[str] | None,
        tracer_provider: trace.TracerProvider | None,
        env_vars: Sequence[str] = _ENV_VARS,
    ) -> None:
        self._exclusions = Exclusions.resolve(excluded_urls, env_vars)
        self._fixed_provider = tracer_provider
        self._plan = Plan.build(tracer_provider) if tracer_provider else Plan(None, None)
        self._fields = PropagationFields()
        self._request_headers, self._response_headers = server_captures()

    def _current_plan(self) -> Plan:
        provider = self._fixed_provider or global_provider()
        plan = self._plan
        if plan.provider is not provider:
            plan = self._plan = Plan.build(provider)
        return plan

    def excluded(self, environ: Environ) -> bool:
        """Whether the request's path is one of the excluded URLs."""
        return self._exclusions.excluded(_path(environ))

    def start(
        self, environ: Environ, *, scheme: str | None = None
    ) -> tuple[RequestSpan, Token[Context]] | None:
        """(the request's span, the context token to detach), or None when not traced.

        The span's context is attached (current) until the caller detaches the
        token. ``scheme`` overrides ``wsgi.url_scheme`` (Django knows it better).
        """
        plan = self._current_plan()
        if plan.tracer is None:
            return None
        path = _path(environ)
        if self._exclusions.excluded(path):
            return None
        method, original = normalize_method(_text(environ.get("REQUEST_METHOD")) or "GET")
        kind = SpanKind.SERVER
        ambient = otel_context.get_current()
        if ambient and http_suppressed(ambient):
            return None
        if ambient and serves_this_request(trace.get_current_span(ambient)):
            parent: Context | None = ambient
            span = None
            kind = SpanKind.INTERNAL
        else:
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
        if span is None:
            start_context = parent if parent is not None else Context()
            name = route_name(method, None)
            if plan.attribute_blind:
                span = plan.tracer.start_span(name, start_context, kind)
                if span.is_recording():
                    span.set_attributes(_attributes(environ, path, method, original, scheme))
            else:
                attributes = _attributes(environ, path, method, original, scheme)
                span = plan.tracer.start_span(name, start_context, kind, attributes)
            plan.unprime()
            if self._request_headers is not None and span.is_recording():
                captured = self._request_headers.from_environ(environ)
                if captured:
                    span.set_attributes(captured)
        token = otel_context.attach(context_with_span(span, parent))
        return RequestSpan(span, method, self._response_headers), token


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

    HTTP server metrics as for :class:`TracingMiddleware` (``meter_provider``,
    ``metrics=False``), for every request, the duration running until the
    server closes the body.
    """

    def __init__(
        self,
        wsgi_app: WSGIApp,
        *,
        excluded_urls: str | Sequence[str] | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        route_getter: RouteGetter | None = None,
        env_vars: Sequence[str] = _ENV_VARS,
        meter_provider: MeterProvider | None = None,
        metrics: bool = True,
    ) -> None:
        self.wsgi_app = wsgi_app
        self._spans = ServerSpans(
            excluded_urls=excluded_urls, tracer_provider=tracer_provider, env_vars=env_vars
        )
        self._route_getter = route_getter or _environ_route
        self._meters = MeterChoice(meter_provider, enabled=metrics)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        meters = self._meters.current()
        ambient = otel_context.get_current()
        if ambient and http_suppressed(ambient):
            return self.wsgi_app(environ, start_response)
        started = self._spans.start(environ)
        if started is None:  # not traced: no tracer, or an excluded URL
            if meters is None or self._spans.excluded(environ):
                return self.wsgi_app(environ, start_response)
            return self._exchange(environ, start_response, None, meters)
        request, token = started
        try:
            if request.span.is_recording():
                return self._exchange(environ, start_response, request, meters)
            if meters is not None or response_propagator() is not None:
                return self._exchange(environ, start_response, None, meters)
            return self.wsgi_app(environ, start_response)
        except Exception as exc:
            remember_span(exc, request.span.get_span_context())
            raise
        finally:
            otel_context.detach(token)

    def _exchange(
        self,
        environ: Environ,
        start_response: StartResponse,
        request: RequestSpan | None,
        meters: ServerMetrics | None,
    ) -> Iterable[bytes]:
        exchange = _Exchange(environ, start_response, request, meters, self._route_getter)
        if request is not None:
            environ[ENVIRON_KEY] = request
        try:
            exchange.body = self.wsgi_app(environ, exchange.start_response)
        except Exception as exc:
            exchange.fail(exc)
            raise
        return exchange


class _Exchange:
    """One request's response, watched for its span (when recording) and its metrics.

    It is also the body iterable handed to the server: the span ends and the
    request is measured when the body is exhausted or closed. Everything about
    a response lives here, per request, never on the middleware.
    """

    body: Iterable[bytes] = ()

    def __init__(
        self,
        environ: Environ,
        start_response: StartResponse,
        request: RequestSpan | None,
        meters: ServerMetrics | None,
        route_getter: RouteGetter,
    ) -> None:
        self._environ = environ
        self._start_response = start_response
        self._request = request
        self._meters = meters
        self._route_getter = route_getter
        self._ended = False
        self._status_code: int | None = None
        self._route: str | None = None
        self._error: str | None = None
        self._body_size = 0
        self._active: tuple[str, str] | None = None
        self._started = 0.0
        # The request's context: for exemplars, measured after the server has iterated
        # the body (when it is no longer current), and for the response propagator.
        self._context = otel_context.get_current()
        self._propagator = response_propagator()
        if meters is not None:
            self._started = perf_counter()
            method = normalize_method(_text(environ.get("REQUEST_METHOD")) or "GET")[0]
            self._active = meters.start(method, _text(environ.get("wsgi.url_scheme")) or "http")

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        code = _text(status).split(" ", 1)[0]
        status_code = self._status_code = int(code) if code.isdigit() else None
        try:
            route = self._route_getter(self._environ)
        except Exception:  # a broken getter must not break the response
            route = None
        self._route = route or None
        if self._request is not None:
            self._request.respond(status_code, route, headers)
        if self._propagator is not None:
            added = response_headers(self._propagator, self._context)
            if added:
                headers = [*headers, *added.items()]
        if exc_info is None:
            return self._start_response(status, headers)
        return self._start_response(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.body:
                self._body_size += len(chunk)
                yield chunk
        except Exception as exc:
            self.fail(exc)
            raise
        self._end()

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self._end()

    def fail(self, exc: BaseException) -> None:
        """The app raised: record it, end the span, measure the request."""
        self._error = exception_type(exc)
        if self._request is not None:
            self._request.fail(exc)
        self._end()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        request = self._request
        if request is not None:
            request.end()
            if request.error is not None and self._error is None:
                # a framework hook saw an exception its error page then answered
                self._error = exception_type(request.error)
        if self._meters is not None and self._active is not None:
            status_code = self._status_code
            if status_code is None and self._error is not None:
                status_code = 500  # nothing was sent: the server answers the exception with 500
            protocol = _text(self._environ.get("SERVER_PROTOCOL"))
            self._meters.finish(
                self._active,
                duration=perf_counter() - self._started,
                protocol=protocol[5:] if protocol.startswith("HTTP/") else None,
                status_code=status_code,
                route=self._route,
                error=self._error,
                request_size=content_length(_text(self._environ.get("CONTENT_LENGTH"))),
                response_size=self._body_size if self._status_code is not None else None,
                context=self._context,
            )


def _attributes(
    environ: Environ, path: str, method: str, original: str | None, scheme: str | None
) -> Attributes:
    attributes: Attributes = {
        HTTP_REQUEST_METHOD: method,
        URL_SCHEME: scheme or _text(environ.get("wsgi.url_scheme")) or "http",
        URL_PATH: path or "/",
    }
    if original is not None:
        attributes[HTTP_REQUEST_METHOD_ORIGINAL] = original
    query = _text(environ.get("QUERY_STRING"))
    if query:
        attributes[URL_QUERY] = redact_query(query)
    host = _text(environ.get("HTTP_HOST"))
    port: int | None = None
    if host:
        address, port = parse_host(host)
    else:
        address = _text(environ.get("SERVER_NAME"))
    if port is None:
        server_port = str(environ.get("SERVER_PORT", ""))
        port = int(server_port) if server_port.isdigit() else None
    if address:
        attributes[SERVER_ADDRESS] = address
    if port is not None:
        attributes[SERVER_PORT] = port
    protocol = _text(environ.get("SERVER_PROTOCOL"))
    if protocol.startswith("HTTP/"):
        attributes[NETWORK_PROTOCOL_VERSION] = protocol[5:]
    remote_address = _text(environ.get("REMOTE_ADDR"))
    if remote_address:
        attributes[CLIENT_ADDRESS] = remote_address
    remote_port = str(environ.get("REMOTE_PORT", ""))
    if remote_port.isdigit():
        attributes[CLIENT_PORT] = int(remote_port)
    user_agent = _text(environ.get("HTTP_USER_AGENT"))
    if user_agent:
        attributes[USER_AGENT_ORIGINAL] = user_agent
        synthetic = synthetic_type(user_agent)
        if synthetic is not None:
            attributes[USER_AGENT_SYNTHETIC_TYPE] = synthetic
    return attributes
