"""Log correlation: ``trace_id``/``span_id`` on every log record."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

from opentelemetry import trace
from opentelemetry.trace import SpanContext

__all__ = [
    "ExportLogLimiter",
    "TraceContextLogFilter",
    "install_log_correlation",
    "remember_span",
]

_NO_TRACE = "0" * 32
_NO_SPAN = "0" * 16
_EXC_ATTR = "__ffrtmp_span_context__"
_install_lock = threading.Lock()
_filter: TraceContextLogFilter | None = None
_log = logging.getLogger("ffrtmp_infra.tracing")


def remember_span(exc: BaseException, span_context: SpanContext) -> None:
    """Tag ``exc`` with the span it escaped from, for handlers that log it later."""
    if not hasattr(exc, _EXC_ATTR):
        with contextlib.suppress(AttributeError, TypeError):  # exceptions with __slots__
            setattr(exc, _EXC_ATTR, span_context)


def _annotate(record: logging.LogRecord) -> None:
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid and record.exc_info:
        # An exception handler outside the middleware (e.g. Starlette's 500
        # handler) runs after the request's span left the context: use the
        # span the exception escaped from.
        remembered = getattr(record.exc_info[1], _EXC_ATTR, None)
        if isinstance(remembered, SpanContext):
            span_context = remembered
    if span_context.is_valid:
        record.trace_id = format(span_context.trace_id, "032x")
        record.span_id = format(span_context.span_id, "016x")
        record.trace_sampled = span_context.trace_flags.sampled
    else:
        record.trace_id = _NO_TRACE
        record.span_id = _NO_SPAN
        record.trace_sampled = False


class TraceContextLogFilter(logging.Filter):
    """Adds ``trace_id`` (32 hex), ``span_id`` (16 hex) and ``trace_sampled`` to records.

    Attach it to a *handler* (``handler.addFilter(TraceContextLogFilter())``) so
    it sees records from every logger that reaches the handler; zeros when no
    span is current. Use ``%(trace_id)s`` in the format. It never drops a
    record, and leaves a ``trace_id`` the caller passed in ``extra=`` alone.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id"):
            _annotate(record)
        return True


def install_log_correlation(
    handlers: Iterable[logging.Handler] | None = None,
) -> TraceContextLogFilter:
    """Add a :class:`TraceContextLogFilter` to ``handlers`` (default: the root logger's).

    Call it after logging is configured (``basicConfig``/``dictConfig``): the
    root logger's handlers see records from every logger that propagates.
    Calling it again does not add a second filter. A filter rather than a
    record factory, because a factory's attributes make ``extra={"trace_id":
    ...}`` raise ``KeyError`` in ``logging``; a filter cannot break a log call.
    Returns the filter (one per process).
    """
    global _filter
    with _install_lock:
        if _filter is None:
            _filter = TraceContextLogFilter()
        targets = list(logging.getLogger().handlers if handlers is None else handlers)
        if not targets and handlers is None:
            _log.warning(
                "install_log_correlation: the root logger has no handlers yet; "
                "configure logging first or pass handlers="
            )
        for handler in targets:
            if _filter not in handler.filters:
                handler.addFilter(_filter)
        return _filter


class ExportLogLimiter(logging.Filter):
    """At most one record per ``interval`` seconds per (logger, level); drops the rest.

    Put on the OpenTelemetry exporter's own loggers: with the collector down,
    silent or late, the exporter logs a line per failed export and per retry,
    which floods the log of a busy service. The first record of each interval
    passes; the next one that passes says how many were suppressed meanwhile.
    ``interval`` 0 lets everything through. Thread-safe; ``clock`` is for tests.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[tuple[str, int], tuple[float, int]] = {}  # last passed, suppressed

    def filter(self, record: logging.LogRecord) -> bool:
        if self.interval <= 0:
            return True
        key = (record.name, record.levelno)
        now = self._clock()
        with self._lock:
            last, suppressed = self._state.get(key, (None, 0))
            if last is not None and now - last < self.interval:
                self._state[key] = (last, suppressed + 1)
                return False
            self._state[key] = (now, 0)
        if suppressed:
            note = f" ({suppressed} similar lines suppressed in the last {self.interval:g}s)"
            record.msg = str(record.msg) + note
        return True


_export_limiter: ExportLogLimiter | None = None


def limit_export_logs(loggers: Iterable[str], interval: float) -> ExportLogLimiter:
    """Put the process's one :class:`ExportLogLimiter` on ``loggers`` (idempotent)."""
    global _export_limiter
    with _install_lock:
        if _export_limiter is None:
            _export_limiter = ExportLogLimiter(interval)
        _export_limiter.interval = interval
        for name in loggers:
            target = logging.getLogger(name)
            if _export_limiter not in target.filters:
                target.addFilter(_export_limiter)
        return _export_limiter
