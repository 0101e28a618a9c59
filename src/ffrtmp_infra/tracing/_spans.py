"""Domain spans for the job lifecycle, workers, the database and errors.

Each helper returns a :class:`DomainSpan`: use it as ``with`` / ``async with``
(the span is the ``as`` target) or as a decorator of a sync or async function
(a fresh span per call). Span names are fixed and low-cardinality
(``job.create``); ids go into attributes (``job.id``). Keyword attributes are
namespaced by the helper: ``job_create("j1", codec="h264")`` sets
``job.codec``; keys containing a dot are used as given
(``job_create("j1", **{"ffrtmp.queue": "gpu"})``). ``None`` values are skipped.
"""

from __future__ import annotations

import functools
import inspect
import re
import traceback
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ffrtmp_infra import __version__
from ffrtmp_infra.tracing._attributes import (
    DB_COLLECTION_NAME,
    DB_OPERATION_NAME,
    DB_SYSTEM_NAME,
    ERROR_TYPE,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from ffrtmp_infra.tracing._redact import redact_text
from ffrtmp_infra.tracing._server import (
    INSTRUMENTATION_NAME,
    SCHEMA_URL,
    exception_type,
    global_provider,
)

__all__ = [
    "DomainSpan",
    "db_operation",
    "job_assign",
    "job_complete",
    "job_create",
    "job_execute",
    "record_error",
    "worker_heartbeat",
    "worker_register",
]

P = ParamSpec("P")
R = TypeVar("R")

_NOOP_TRACER = trace.NoOpTracer()
_cached: tuple[trace.TracerProvider | None, trace.Tracer] = (None, _NOOP_TRACER)


def _tracer() -> trace.Tracer:
    """The global provider's tracer, cached per provider.

    Not a module-level ProxyTracer: that binds to the first provider for ever,
    and this must follow the provider actually installed now.
    """
    global _cached
    provider = global_provider()
    cached_provider, tracer = _cached
    if provider is cached_provider:
        return tracer
    if provider is None:
        current = trace.get_tracer_provider()  # may load OTEL_PYTHON_TRACER_PROVIDER
        if isinstance(current, trace.ProxyTracerProvider):
            return _NOOP_TRACER
        provider = current
    tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__, schema_url=SCHEMA_URL)
    _cached = (provider, tracer)
    return tracer


_FAILED_STATUSES = frozenset({"failed", "error", "errored", "timeout", "timed_out"})
_OPERATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")

AttributeValue = str | bool | int | float


def record_error(span: Span, exc: BaseException) -> None:
    """Record ``exc`` on ``span`` as an ``exception`` event, ``error.type`` and ERROR status.

    Unlike ``span.record_exception`` the message and stack trace have URLs
    redacted (credentials, stream keys), as errors from subprocesses and HTTP
    clients often quote the command line or URL.
    """
    if not span.is_recording():
        return
    kind = exception_type(exc)
    message = redact_text(str(exc))
    stacktrace = redact_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    span.add_event(
        "exception",
        {EXCEPTION_TYPE: kind, EXCEPTION_MESSAGE: message, EXCEPTION_STACKTRACE: stacktrace},
    )
    span.set_attribute(ERROR_TYPE, kind)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"))


def _namespaced(namespace: str, attrs: Mapping[str, Any]) -> dict[str, AttributeValue]:
    result: dict[str, AttributeValue] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if not isinstance(value, str | bool | int | float):
            value = str(value)
        result[key if "." in key else f"{namespace}.{key}"] = value
    return result


class DomainSpan:
    """A span description usable as a (async) context manager or a decorator."""

    def __init__(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue],
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        context: Context | None = None,
        on_exit: Callable[[Span], None] | None = None,
    ) -> None:
        self.name = name
        self.attributes = dict(attributes)
        self.kind = kind
        self.context = context
        self._on_exit = on_exit
        self._open: list[tuple[Span, object | None]] = []

    def _start(self) -> Span:
        tracer = _tracer()
        if tracer is _NOOP_TRACER:
            # No provider installed: nothing to record. A given parent context is
            # still made current, so propagation (and baggage) passes through.
            token = None if self.context is None else otel_context.attach(self.context)
            self._open.append((trace.INVALID_SPAN, token))
            return trace.INVALID_SPAN
        span = tracer.start_span(
            self.name,
            self.context,
            self.kind,
            self.attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        token = otel_context.attach(trace.set_span_in_context(span, self.context))
        self._open.append((span, token))
        return span

    def _finish(self, exc: BaseException | None) -> None:
        span, token = self._open.pop()
        if span is trace.INVALID_SPAN:
            if token is not None:
                otel_context.detach(token)  # type: ignore[arg-type]
            return
        try:
            if exc is not None:
                record_error(span, exc)
            elif self._on_exit is not None:
                self._on_exit(span)
            span.end()
        finally:
            otel_context.detach(token)  # type: ignore[arg-type]

    def __enter__(self) -> Span:
        return self._start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish(exc if isinstance(exc, Exception) else None)

    async def __aenter__(self) -> Span:
        return self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish(exc if isinstance(exc, Exception) else None)

    def _copy(self) -> DomainSpan:
        return DomainSpan(
            self.name, self.attributes, kind=self.kind, context=self.context, on_exit=self._on_exit
        )

    @overload
    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate ``func``: every call runs inside a new span like this one."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with self._copy():
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            with self._copy():
                return func(*args, **kwargs)

        return wrapper

    def __repr__(self) -> str:
        return f"<DomainSpan {self.name} {self.attributes}>"


def _context(parent: Context | Mapping[str, str] | str | None) -> Context | None:
    if parent is None or isinstance(parent, Context):
        return parent
    from ffrtmp_infra.tracing._propagation import extract_headers

    if isinstance(parent, str):  # a bare traceparent value stored with the job
        return extract_headers({"traceparent": parent})
    if isinstance(parent, Mapping):
        return extract_headers(cast("Mapping[str, str]", parent))
    raise TypeError(
        "context must be a Context, a mapping of trace headers or a traceparent string, "
        f"got {type(parent).__name__}"
    )


def job_create(job_id: str, **attrs: Any) -> DomainSpan:
    """Span ``job.create`` (a job is accepted) with ``job.id``."""
    return DomainSpan("job.create", {"job.id": str(job_id), **_namespaced("job", attrs)})


def job_assign(job_id: str, node_id: str, **attrs: Any) -> DomainSpan:
    """Span ``job.assign`` (a job is given to a node) with ``job.id`` and ``node.id``."""
    return DomainSpan(
        "job.assign",
        {"job.id": str(job_id), "node.id": str(node_id), **_namespaced("job", attrs)},
    )


def job_execute(
    job_id: str, *, context: Context | Mapping[str, str] | str | None = None, **attrs: Any
) -> DomainSpan:
    """Span ``job.execute`` (a worker runs a job) with ``job.id``.

    ``context`` continues the trace the job was created in: a ``Context``, the
    ``traceparent``/``tracestate``/``baggage`` headers stored with the job, or
    a bare ``traceparent`` string.
    """
    return DomainSpan(
        "job.execute",
        {"job.id": str(job_id), **_namespaced("job", attrs)},
        context=_context(context),
    )


def job_complete(job_id: str, *, status: str = "completed", **attrs: Any) -> DomainSpan:
    """Span ``job.complete`` with ``job.id`` and ``job.status``; a failed status is an error."""
    failed = status.lower() in _FAILED_STATUSES

    def mark(span: Span) -> None:
        if failed:
            span.set_attribute(ERROR_TYPE, f"job_{status.lower()}")
            span.set_status(Status(StatusCode.ERROR, f"job {status}"))

    return DomainSpan(
        "job.complete",
        {"job.id": str(job_id), "job.status": status, **_namespaced("job", attrs)},
        on_exit=mark,
    )


def worker_register(node_id: str, **attrs: Any) -> DomainSpan:
    """Span ``worker.register`` with ``node.id`` (``cpu=8`` becomes ``worker.cpu``)."""
    return DomainSpan("worker.register", {"node.id": str(node_id), **_namespaced("worker", attrs)})


def worker_heartbeat(node_id: str, **attrs: Any) -> DomainSpan:
    """Span ``worker.heartbeat`` with ``node.id``. Frequent: sample it low or exclude its URL."""
    return DomainSpan("worker.heartbeat", {"node.id": str(node_id), **_namespaced("worker", attrs)})


def db_operation(operation: str, *, system: str = "sqlite", table: str | None = None) -> DomainSpan:
    """CLIENT span ``db.<operation>`` with ``db.system.name``, ``db.operation.name``
    and ``db.collection.name``. ``operation`` is a word like ``select`` or
    ``claim_job`` (never SQL text: names must stay low-cardinality)."""
    if not isinstance(operation, str) or not _OPERATION.match(operation):
        raise ValueError(
            f"operation must be a short identifier like 'select' or 'claim_job', got {operation!r}"
        )
    attributes: dict[str, AttributeValue] = {
        DB_SYSTEM_NAME: system,
        DB_OPERATION_NAME: operation,
    }
    if table is not None:
        attributes[DB_COLLECTION_NAME] = table
    return DomainSpan(f"db.{operation}", attributes, kind=SpanKind.CLIENT)
