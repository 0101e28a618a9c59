"""HTTP server metrics per the stable semantic conventions, shared by ASGI and WSGI.

Recorded for every request the middleware sees (sampled or not; WebSockets
and excluded URLs aside), so request rate, error rate and latency do not
depend on the trace sampling ratio. The instruments are created once per
meter provider; a request pays for two or three histogram ``record`` calls
(request size only with a Content-Length) and two counter updates kept here,
with one attribute dict built from values the middleware has at hand anyway.
Measurements are taken while the request's span is current (or with its
context passed), so the SDK's default ``trace_based`` exemplar filter links
histogram exemplars to sampled spans.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Histogram, Observation

from ffrtmp_infra import __version__
from ffrtmp_infra.tracing._attributes import (
    ERROR_TYPE,
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
    NETWORK_PROTOCOL_VERSION,
    URL_SCHEME,
)
from ffrtmp_infra.tracing._compat import (
    HISTOGRAM_ADVISORY,
    MEASUREMENT_CONTEXT,
    global_meter_provider,
)
from ffrtmp_infra.tracing._server import INSTRUMENTATION_NAME, SCHEMA_URL

__all__ = ["DURATION_BUCKETS", "DURATION_METRIC", "MeterChoice", "ServerMetrics"]

DURATION_METRIC = "http.server.request.duration"

#: ``http.server.request.duration`` bucket boundaries in seconds (the semconv advice).
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip

Attributes = dict[str, str | int]


class ActiveRequests:
    """``http.server.active_requests``: counted here, reported at each collection.

    A synchronous UpDownCounter would cost two SDK measurements per request
    (~10 µs each on SDK 1.45: attribute cleaning and hashing per call); an
    observable one fed from these counts exports the same data (a
    non-monotonic cumulative sum per method and scheme) for a dict update
    under a lock per request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

    def add(self, key: tuple[str, str], delta: int) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + delta

    def observe(self, options: CallbackOptions) -> list[Observation]:
        with self._lock:
            counts = list(self._counts.items())
        return [
            Observation(count, {HTTP_REQUEST_METHOD: method, URL_SCHEME: scheme})
            for (method, scheme), count in counts
        ]


class ServerMetrics:
    """The four HTTP server instruments of one meter provider (one set per provider)."""

    __slots__ = ("__weakref__", "active", "duration", "request_size", "response_size")

    @classmethod
    def of(cls, provider: metrics.MeterProvider) -> ServerMetrics:
        """The instruments for ``provider``, created on first use and then shared by
        every middleware (a second set would be a duplicate registration, and the
        SDK would keep only the first observable callback)."""
        with _instruments_lock:
            found = _instruments.get(provider)
            if found is None:
                found = _instruments[provider] = cls(provider)
            return found

    def __init__(self, provider: metrics.MeterProvider) -> None:
        meter = provider.get_meter(INSTRUMENTATION_NAME, __version__, schema_url=SCHEMA_URL)
        advice: dict[str, list[float]] = (
            {"explicit_bucket_boundaries_advisory": list(DURATION_BUCKETS)}
            if HISTOGRAM_ADVISORY
            else {}
        )
        self.duration: Histogram = meter.create_histogram(
            DURATION_METRIC, unit="s", description="Duration of HTTP server requests.", **advice
        )
        self.active = ActiveRequests()
        meter.create_observable_up_down_counter(
            "http.server.active_requests",
            callbacks=[self.active.observe],
            unit="{request}",
            description="Number of active HTTP server requests.",
        )
        self.request_size: Histogram = meter.create_histogram(
            "http.server.request.body.size",
            unit="By",
            description="Size of HTTP server request bodies.",
        )
        self.response_size: Histogram = meter.create_histogram(
            "http.server.response.body.size",
            unit="By",
            description="Size of HTTP server response bodies.",
        )

    def start(self, method: str, scheme: str) -> tuple[str, str]:
        """Count the request as active; returns what :meth:`finish` takes."""
        key = (method, scheme)
        self.active.add(key, 1)
        return key

    def finish(
        self,
        active: tuple[str, str],
        *,
        duration: float,
        protocol: str | None,
        status_code: int | None,
        route: str | None,
        error: str | None,
        request_size: int | None,
        response_size: int | None,
        context: Context | None = None,
    ) -> None:
        """Record one finished request. ``error`` is ``error.type``: the exception's
        type, else the status code for a 5xx, else None."""
        self.active.add(active, -1)
        attributes: Attributes = {HTTP_REQUEST_METHOD: active[0], URL_SCHEME: active[1]}
        if protocol:
            attributes[NETWORK_PROTOCOL_VERSION] = protocol
        if status_code is not None:
            attributes[HTTP_RESPONSE_STATUS_CODE] = status_code
            if error is None and status_code >= 500:
                error = str(status_code)
        if route is not None:
            attributes[HTTP_ROUTE] = route
        if error is not None:
            attributes[ERROR_TYPE] = error
        if context is not None and MEASUREMENT_CONTEXT:
            self.duration.record(max(duration, 0.0), attributes, context=context)
            if request_size is not None:
                self.request_size.record(request_size, attributes, context=context)
            if response_size is not None:
                self.response_size.record(response_size, attributes, context=context)
            return
        self.duration.record(max(duration, 0.0), attributes)
        if request_size is not None:
            self.request_size.record(request_size, attributes)
        if response_size is not None:
            self.response_size.record(response_size, attributes)


_instruments: weakref.WeakKeyDictionary[metrics.MeterProvider, ServerMetrics] = (
    weakref.WeakKeyDictionary()
)
_instruments_lock = threading.Lock()


@dataclass
class _Resolved:
    provider: metrics.MeterProvider | None
    instruments: ServerMetrics | None


class MeterChoice:
    """Which instruments a middleware records into, looked up per request.

    ``enabled=False`` is the off switch. Otherwise the provider passed in, or
    the global one read per request (so a provider installed after the app
    was built is used); while none is installed, or it is the API's no-op
    provider, there is nothing to record and the request pays one lookup.
    """

    def __init__(self, provider: metrics.MeterProvider | None, *, enabled: bool) -> None:
        self._fixed = provider
        self._enabled = enabled
        self._resolved = _Resolved(None, None)

    def current(self) -> ServerMetrics | None:
        if not self._enabled:
            return None
        provider = self._fixed or global_meter_provider()
        resolved = self._resolved
        if resolved.provider is not provider:
            instruments = (
                None
                if provider is None or isinstance(provider, metrics.NoOpMeterProvider)
                else ServerMetrics.of(provider)
            )
            resolved = self._resolved = _Resolved(provider, instruments)
        return resolved.instruments


def content_length(value: str | bytes) -> int | None:
    """A Content-Length header's value as an int; None when it is not a plain number."""
    return int(value) if value.isdigit() else None
