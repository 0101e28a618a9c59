"""``TracingMiddleware``: one SERVER span per HTTP request or WebSocket connection."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from time import perf_counter
from types import ModuleType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.propagate import get_global_textmap
from opentelemetry.trace import SpanKind, Status, StatusCode

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
    route_name,
    serves_this_request,
    synthetic_type,
)
from ffrtmp_infra.tracing._spans import record_error

__all__ = ["TracingMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MARK = "ffrtmp.tracing"  # set in the scope while a span is open: nested copies pass through
_ENV_VARS = ("OTEL_PYTHON_ASGI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")


_MAX_ROUTER_DEPTH = 16  # nested mounts followed when matching a request again


def _route(scope: Scope, entry_root_path: str) -> str | None:
    """The matched route template (``/admin/nodes/{node_id}``), or None when unknown.

    Starlette >= 1.7 (and FastAPI's own routes on any version) leave the
    matched route in ``scope["route"]``; for older Starlette the request is
    matched again (see :func:`_rematch`). Starlette is never imported here:
    if no Starlette router ran, its module need not even be loaded.
    """
    routing = sys.modules.get("starlette.routing")
    route = scope.get("route")
    root_path: str = scope.get("root_path", "")
    if route is None:
        if routing is None or "endpoint" not in scope:  # no router ran, or nothing matched
            return None
        try:
            found = _rematch(routing, scope, entry_root_path)
        except Exception:  # naming is best effort: never break the request over it
            return None
        if found is None:
            return None
        route, root_path = found
    path_format = getattr(route, "path_format", None)
    if not isinstance(path_format, str):
        return None
    if routing is not None and isinstance(route, routing.Mount):
        return root_path or "/"  # a mounted app that is not itself a Starlette router
    return (root_path.rstrip("/") + path_format) or "/"


def _rematch(routing: ModuleType, scope: Scope, entry_root_path: str) -> tuple[Any, str] | None:
    """(route, root path) the Starlette routers chose, for Starlette < 1.7.

    Those releases record no route in the scope, so the routes are matched
    again the way ``Router.app`` does (first full match, else first partial),
    from the outermost router down through mounts. Only for recorded spans and
    metrics, once per request.
    """
    routes = getattr(scope.get("router"), "routes", None)
    probe: Scope = {**scope, "root_path": entry_root_path}
    for _ in range(_MAX_ROUTER_DEPTH):
        if not routes:
            return None
        chosen = None
        for candidate in routes:
            match, child = candidate.matches(probe)
            if match is routing.Match.FULL:
                chosen = (candidate, child)
                break
            if match is routing.Match.PARTIAL and chosen is None:
                chosen = (candidate, child)
        if chosen is None:
            return None
        route, child = chosen
        probe = {**probe, **child}
        routes = getattr(route, "routes", None)  # a Mount or Host around a router: go in
        if not routes:
            return route, probe.get("root_path", "")
    return None


class TracingMiddleware:
    """Pure ASGI middleware: a SERVER span per request, named ``METHOD /route/{template}``.

    * Incoming ``traceparent``/``tracestate``/``baggage`` (whatever the global
      propagator reads) are continued; without them the span is a root.
    * Attributes follow the stable HTTP semantic conventions; ``url.query`` has
      secret-looking values (``key``, ``token``, ``sig`` ...) redacted.
    * Exceptions are recorded (event, ``error.type``, ERROR status) wherever the
      middleware sits in the stack; a 5xx response marks the span as an error.
    * ``excluded_urls``: regexes searched in the path (comma-separated string or
      a sequence). ``None`` means the :func:`init_tracer` config's value, else
      ``OTEL_PYTHON_ASGI_EXCLUDED_URLS`` / ``OTEL_PYTHON_EXCLUDED_URLS``, else
      :data:`DEFAULT_EXCLUDED_URLS` (health and metrics). Pass ``()`` to trace all.
    * WebSockets get one span per connection; ``lifespan`` passes through.
    * ``tracer_provider``: defaults to the global one, looked up per request so
      a provider installed after the app was built is used.
    * Headers named by ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`` /
      ``..._SERVER_RESPONSE`` become ``http.request.header.<name>`` /
      ``http.response.header.<name>`` attributes (tuples; ``..._SANITIZE_FIELDS``
      values are ``[REDACTED]``), read when the middleware is built.
    * HTTP server metrics (``http.server.request.duration``, ``.active_requests``,
      ``.request.body.size``, ``.response.body.size``) for every HTTP request,
      sampled or not, into ``meter_provider`` or else the global one (looked up
      per request too); nothing is recorded while no meter provider is
      installed. ``metrics=False`` turns them off.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        excluded_urls: str | Sequence[str] | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        metrics: bool = True,
    ) -> None:
        self.app = app
        self._exclusions = Exclusions.resolve(excluded_urls, _ENV_VARS)
        self._excluded = self._exclusions.matcher
        self._fixed_provider = tracer_provider
        self._plan = (
            Plan.build(tracer_provider) if tracer_provider is not None else Plan(None, None)
        )
        self._fields = PropagationFields()
        self._meters = MeterChoice(meter_provider, enabled=metrics)
        self._request_headers, self._response_headers = server_captures()

    def _replan(self, provider: trace.TracerProvider) -> Plan:
        plan = self._plan = Plan.build(provider)
        return plan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Hot path, written for the unsampled and disabled cases: no helper
        # calls, no attribute building, until the sampler's answer is known.
        provider = self._fixed_provider or global_provider()
        meters = self._meters.current()
        if provider is None:
            if meters is None:
                await self.app(scope, receive, send)
                return
            plan = _NO_TRACING
        else:
            plan = self._plan
            if plan.provider is not provider:
                plan = self._replan(provider)
        kind = scope["type"]
        tracer = plan.tracer
        excluded = self._excluded
        ambient = otel_context.get_current()  # empty for a server's request: cheap checks
        if (
            (kind != "http" and kind != "websocket")
            or (tracer is None and (meters is None or kind != "http"))
            or _MARK in scope
            or (excluded is not None and excluded(scope["path"]) is not None)
            or (ambient and http_suppressed(ambient))
        ):
            await self.app(scope, receive, send)
            return
        if kind != "http":
            meters = None  # WebSockets have no HTTP server metrics
        if tracer is None:
            await self._exchange(scope, receive, send, None, meters)
            return

        fields = self._fields
        textmap = get_global_textmap()
        if textmap is not fields.textmap:
            fields.refresh(textmap)
        wanted = fields.raw_fields
        carrier: dict[str, str] | None = None
        for name, value in scope["headers"]:
            if name in wanted:
                if carrier is None:
                    carrier = {}
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        span_kind = SpanKind.SERVER
        if ambient and serves_this_request(trace.get_current_span(ambient)):
            # An outer layer (FastAPI's own telemetry, a contrib instrumentor, a
            # serverless adapter) opened this request's SERVER span and already
            # continued any incoming trace: one trace per request, so ours is its child.
            parent = ambient
            span = None
            span_kind = SpanKind.INTERNAL
        elif carrier is None:
            parent = None
            span = plan.root_span()
        else:
            parent = fields.extract(textmap, carrier)
            span = plan.certain_drop(trace.get_current_span(parent).get_span_context())

        if span is None:
            # A server starts clean: no ambient context (an in-process caller's span) leaks in.
            start_context = parent if parent is not None else Context()
            method, original = (
                normalize_method(scope.get("method", "GET")) if kind == "http" else ("GET", None)
            )
            name = route_name(method, None) if kind == "http" else "WEBSOCKET"
            if plan.attribute_blind:
                span = tracer.start_span(name, start_context, span_kind)
                if span.is_recording():
                    span.set_attributes(_attributes(scope, method, original))
            else:
                attributes = _attributes(scope, method, original)
                span = tracer.start_span(name, start_context, span_kind, attributes)
            plan.unprime()
        token = otel_context.attach(context_with_span(span, parent))
        try:
            if span.is_recording():
                await self._exchange(scope, receive, send, span, meters)
            elif meters is not None or response_propagator() is not None:
                await self._exchange(scope, receive, send, None, meters)
            else:
                await self.app(scope, receive, send)
        except Exception as exc:
            remember_span(exc, span.get_span_context())
            raise
        finally:
            otel_context.detach(token)

    async def _exchange(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        span: trace.Span | None,
        meters: ServerMetrics | None,
    ) -> None:
        """Run the app watching its response, for the span (when recording) and the metrics.

        The span ends when the app returns (so an exception re-raised after the
        500 was sent is still recorded) but is timed to the last body byte, as
        is the duration metric. Response attributes are set once, at the end:
        one validation pass. Everything here is per request: nothing about a
        response is kept on the middleware.
        """
        ended_at: int | None = None
        finished: float | None = None
        status_code: int | None = None
        body_size = 0

        async def observed_send(message: Message) -> None:
            nonlocal ended_at, finished, status_code, body_size
            kind = message["type"]
            if kind == "http.response.start" or kind == "websocket.http.response.start":
                status = message.get("status")
                status_code = status if type(status) is int else _status(status)
                if span is not None and response_headers is not None:
                    _capture(span, response_headers, message)
                if propagator is not None:
                    message = _with_response_context(message, propagator, request_context)
            elif kind == "http.response.body":
                body = message.get("body")
                if body:
                    try:  # noqa: SIM105 (cheaper than contextlib.suppress, per message)
                        body_size += len(body)
                    except TypeError:  # a spec-breaking body: the server will say so
                        pass
                if not message.get("more_body", False):
                    finished = perf_counter()
                    if span is not None:
                        ended_at = time.time_ns()
            await send(message)

        response_headers = self._response_headers
        propagator = response_propagator()
        # the request's span, for the propagator (the app may make other spans current)
        request_context = otel_context.get_current() if propagator is not None else Context()
        if span is not None and self._request_headers is not None:
            _capture(span, self._request_headers, scope)
        active = None
        started = 0.0
        if meters is not None:
            started = perf_counter()
            active = meters.start(
                normalize_method(scope.get("method", "GET"))[0], scope.get("scheme") or "http"
            )
        entry_root_path = scope.get("root_path", "")
        scope[_MARK] = True
        error: str | None = None
        try:
            await self.app(scope, receive, observed_send)
        except Exception as exc:
            error = exception_type(exc)
            if span is not None:
                record_error(span, exc)
                remember_span(exc, span.get_span_context())
            raise
        finally:
            scope.pop(_MARK, None)
            if status_code is None and error is not None and scope["type"] == "http":
                status_code = 500  # nothing was sent: the server answers the exception with 500
            route = _route(scope, entry_root_path)
            try:
                if span is not None:
                    _set_response(span, scope, status_code, error is not None, route)
            finally:
                if span is not None:
                    span.end(ended_at)  # a started span always ends, whatever went wrong above
                if active is not None:
                    assert meters is not None
                    meters.finish(
                        active,
                        duration=(finished or perf_counter()) - started,
                        protocol=scope.get("http_version"),
                        status_code=status_code,
                        route=route,
                        error=error,
                        request_size=_request_size(scope),
                        response_size=body_size if status_code is not None else None,
                    )


_NO_TRACING = Plan(None, None)


def _with_response_context(message: Message, propagator: Any, context: Context) -> Message:
    """``message`` with the global response propagator's headers (``traceresponse``) added."""
    carrier: dict[str, str] = {}
    try:
        propagator.inject(carrier, context=context)
        added = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in carrier.items()]
    except Exception:  # a broken propagator must not break the response
        return message
    if not added:
        return message
    return {**message, "headers": [*(message.get("headers") or ()), *added]}


def _capture(span: trace.Span, capture: HeaderCapture, scope_or_message: Scope) -> None:
    try:
        attributes = capture.from_asgi(scope_or_message.get("headers") or ())
    except (TypeError, ValueError, AttributeError):  # spec-breaking headers: capture nothing
        return
    if attributes:
        span.set_attributes(attributes)


def _request_size(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return content_length(value)
    return None


def _set_response(
    span: trace.Span, scope: Scope, status_code: int | None, raised: bool, route: str | None
) -> None:
    response: Attributes = {}
    if status_code is not None:
        response[HTTP_RESPONSE_STATUS_CODE] = status_code
        if status_code >= 500 and not raised:
            response[ERROR_TYPE] = str(status_code)
            span.set_status(Status(StatusCode.ERROR))
    if route is not None:
        response[HTTP_ROUTE] = route
        if scope["type"] == "http":
            method = normalize_method(scope.get("method", "GET"))[0]
            span.update_name(route_name(method, route))
        else:
            span.update_name(f"WEBSOCKET {route}")
    if response:
        span.set_attributes(response)


def _status(value: object) -> int | None:
    """The response status as an int: a spec-breaking str or float is converted, junk is None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str | float):
        return None
    try:
        status = int(value)
    except (ValueError, OverflowError):
        return None
    return status if 100 <= status <= 999 else None


def _attributes(scope: Scope, method: str, original: str | None) -> Attributes:
    """Stable HTTP server semconv attributes, built only for recording spans."""
    attributes: Attributes = {
        URL_SCHEME: scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http"),
        URL_PATH: scope["path"],
    }
    if scope["type"] == "http":
        attributes[HTTP_REQUEST_METHOD] = method
        if original is not None:
            attributes[HTTP_REQUEST_METHOD_ORIGINAL] = original
    query = scope.get("query_string")
    if query:
        if isinstance(query, bytes | bytearray):
            query = query.decode("latin-1")
        attributes[URL_QUERY] = redact_query(str(query))  # a str breaks the spec: keep it
    host = None
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
            attributes[USER_AGENT_ORIGINAL] = user_agent
            synthetic = synthetic_type(user_agent)
            if synthetic is not None:
                attributes[USER_AGENT_SYNTHETIC_TYPE] = synthetic
    server = scope.get("server")
    if host:
        address, port = parse_host(host)
        attributes[SERVER_ADDRESS] = address
        if port is None and server and server[1] is not None:
            port = server[1]
        if port is not None:
            attributes[SERVER_PORT] = port
    elif server:
        attributes[SERVER_ADDRESS] = server[0]
        if server[1] is not None:
            attributes[SERVER_PORT] = server[1]
    version = scope.get("http_version")
    if version:
        attributes[NETWORK_PROTOCOL_VERSION] = version
    client = scope.get("client")
    if client:
        attributes[CLIENT_ADDRESS] = client[0]
        if client[1] is not None:
            attributes[CLIENT_PORT] = client[1]
    return attributes
