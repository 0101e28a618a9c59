"""``init_tracer``: one call that installs an SDK tracer provider exporting over OTLP."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import metrics, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

from ffrtmp_infra import __version__
from ffrtmp_infra.tracing._attributes import (
    DEPLOYMENT_ENVIRONMENT_NAME,
    SERVICE_NAME,
    SERVICE_VERSION,
)
from ffrtmp_infra.tracing._compat import HISTOGRAM_ADVISORY, global_meter_provider
from ffrtmp_infra.tracing._config import TracingConfig, _env_flag_disabled
from ffrtmp_infra.tracing._errors import MissingExtraError
from ffrtmp_infra.tracing._logging import limit_export_logs
from ffrtmp_infra.tracing._metrics import DURATION_BUCKETS, DURATION_METRIC
from ffrtmp_infra.tracing._server import SamplingIdGenerator

if TYPE_CHECKING:  # the SDK's metrics package is imported only when metrics are set up
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader

__all__ = [
    "TracingHandle",
    "active_config",
    "build_meter_provider",
    "build_tracer_provider",
    "init_tracer",
]

_log = logging.getLogger("ffrtmp_infra.tracing")


class _SdkProvider(Protocol):
    """What the handle needs of the SDK's tracer and meter providers."""

    def force_flush(self, timeout_millis: int = ...) -> bool: ...

    def shutdown(self) -> Any: ...


_lock = threading.Lock()
_active: TracingHandle | None = None


class TracingHandle:
    """What :func:`init_tracer` set up: the provider, whether tracing is on, and its shutdown.

    ``provider`` is the SDK :class:`~opentelemetry.sdk.trace.TracerProvider` that
    ``init_tracer`` made, or the provider that was already installed when it
    found one (``owned`` is then False and :meth:`shutdown` leaves it alone, as
    its owner is the application). ``enabled`` is False when tracing was
    disabled by the config or ``OTEL_SDK_DISABLED``.

    ``meter_provider`` likewise: the SDK :class:`~opentelemetry.sdk.metrics.MeterProvider`
    ``init_tracer`` installed (``meter_provider_owned`` True), the application's
    when one was installed already (False), or None when metrics are off.
    """

    def __init__(
        self,
        provider: trace.TracerProvider,
        *,
        enabled: bool,
        owned: bool,
        config: TracingConfig,
        meter_provider: metrics.MeterProvider | None = None,
        meter_provider_owned: bool = False,
    ) -> None:
        self.provider = provider
        self.enabled = enabled
        self.owned = owned
        self.config = config
        self.meter_provider = meter_provider
        self.meter_provider_owned = meter_provider_owned
        self._closed = False
        self._close_lock = threading.Lock()

    def _owned_providers(self) -> list[tuple[str, _SdkProvider]]:
        """(what it exports, provider) for each SDK provider this handle must stop."""
        owned: list[tuple[str, _SdkProvider]] = []
        if self.owned and isinstance(self.provider, TracerProvider):
            owned.append(("spans", self.provider))
        if self.meter_provider_owned and self.meter_provider is not None:
            owned.append(("metrics", self.meter_provider))  # type: ignore[arg-type]
        return owned

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished span (and the metrics so far) now. Returns the SDK's
        answer, which says True even when a span export failed (SDK 1.45): check the
        collector, not this."""
        if self._closed:
            return True
        flushed = [p.force_flush(timeout_millis) for _, p in self._owned_providers()]  # each
        return all(flushed)

    def shutdown(self, timeout: float | None = 3.0) -> None:
        """Flush pending spans and metrics and stop the exporters, within ``timeout`` seconds.

        Safe to call more than once. The SDK's flushes and shutdowns (the
        tracer provider's and the meter provider's, side by side) run in daemon
        threads; if they have not finished after ``timeout`` seconds (the
        collector refuses, stays silent, answers slowly, or speaks TLS where
        plaintext was expected) one warning names the collector, the data not
        yet exported is dropped, and this returns: the threads are abandoned
        and cannot hold up the process's exit. ``None`` waits as long as the
        exporters want. :func:`init_tracer` registers this method with
        :mod:`atexit`, so an exit without an explicit call is bounded too.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.shutdown)
        providers = self._owned_providers()
        if timeout is None:
            for _, provider in providers:
                provider.shutdown()
            return
        deadline = time.monotonic() + timeout
        stoppers = [
            threading.Thread(target=p.shutdown, name="ffrtmp-tracing-shutdown", daemon=True)
            for _, p in providers
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(max(0.0, deadline - time.monotonic()))
        late = [what for (what, _), t in zip(providers, stoppers, strict=True) if t.is_alive()]
        if not late:
            return
        where = self.config.traces_endpoint if "spans" in late else self.config.metrics_endpoint
        _log.warning(
            "tracing shutdown: %s were not exported within %ss (is the collector at %s "
            "reachable?); giving up and dropping them",
            " and ".join(late),
            timeout,
            where or "the default endpoint",
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("enabled" if self.enabled else "disabled")
        meters = type(self.meter_provider).__name__ if self.meter_provider else None
        return (
            f"<TracingHandle {state} owned={self.owned} provider={type(self.provider).__name__}"
            f" meter_provider={meters} meter_provider_owned={self.meter_provider_owned}>"
        )


def active_config() -> TracingConfig | None:
    """The config of the first :func:`init_tracer` call in this process, if any."""
    handle = _active
    return handle.config if handle is not None else None


def _sampler(config: TracingConfig) -> Sampler | None:
    if config.sampler_from_env or config.sample_ratio is None:
        return None  # the SDK reads OTEL_TRACES_SAMPLER[_ARG] itself
    return ParentBased(TraceIdRatioBased(config.sample_ratio))


def _resource(config: TracingConfig) -> Resource:
    # Only keys we were given: anything left out keeps its OTEL_RESOURCE_ATTRIBUTES value.
    attributes: dict[str, Any] = dict(config.resource_attributes)
    if config.service_name:
        attributes[SERVICE_NAME] = config.service_name
    if config.service_version:
        attributes[SERVICE_VERSION] = config.service_version
    if config.environment:
        attributes[DEPLOYMENT_ENVIRONMENT_NAME] = config.environment
    attributes.setdefault("telemetry.distro.name", "ffrtmp-infra")
    attributes.setdefault("telemetry.distro.version", __version__)
    return Resource.create(attributes)


def _exporter(config: TracingConfig) -> SpanExporter:
    endpoint = config.traces_endpoint
    headers = dict(config.headers) if config.headers else None
    if config.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError as exc:
            raise MissingExtraError(
                "protocol='grpc'", "grpc", "opentelemetry-exporter-otlp-proto-grpc"
            ) from exc
        return GrpcExporter(endpoint=endpoint, headers=headers, timeout=config.export_timeout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=config.export_timeout)


def _metric_exporter(config: TracingConfig) -> MetricExporter:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

    if config.metrics_exporter == "console":
        return ConsoleMetricExporter()
    endpoint = config.metrics_endpoint
    headers = dict(config.headers) if config.headers else None
    if config.metrics_protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcMetricExporter,
            )
        except ImportError as exc:
            raise MissingExtraError(
                "metrics over protocol='grpc'", "grpc", "opentelemetry-exporter-otlp-proto-grpc"
            ) from exc
        return GrpcMetricExporter(endpoint=endpoint, headers=headers, timeout=config.export_timeout)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=endpoint, headers=headers, timeout=config.export_timeout)


def _export_loggers(exporter: SpanExporter | MetricExporter, runner: type) -> set[str]:
    """The OpenTelemetry loggers that report failed exports: one per module of the
    exporter's classes (the gRPC exporter logs from its base class's module), and
    the module of what runs it (the batch processor, the periodic reader)."""
    names = {cls.__module__ for cls in type(exporter).__mro__}
    names.add(runner.__module__)
    return {name for name in names if name.startswith("opentelemetry.")}


def build_meter_provider(
    config: TracingConfig | None = None,
    *,
    metric_reader: MetricReader | None = None,
    shutdown_on_exit: bool = True,
) -> MeterProvider:
    """The SDK meter provider :func:`init_tracer` would install, without installing it.

    Its reader exports every ``config.metric_export_interval`` seconds over
    OTLP (``config.metrics_protocol`` to ``config.metrics_endpoint``), or to the
    console when ``OTEL_METRICS_EXPORTER=console``; ``metric_reader`` replaces
    it (tests use an ``InMemoryMetricReader``). Ignores ``config.enabled`` and
    ``config.metrics``. The middleware takes it as ``meter_provider=``.
    """
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    config = config if config is not None else TracingConfig(metrics=True)
    if metric_reader is None:
        metric_reader = _periodic_reader(config, _metric_exporter(config))
    views = (
        []
        if HISTOGRAM_ADVISORY
        else [  # an API too old for bucket advice: the same buckets through a View
            View(
                instrument_name=DURATION_METRIC,
                aggregation=ExplicitBucketHistogramAggregation(list(DURATION_BUCKETS)),
            )
        ]
    )
    return MeterProvider(
        metric_readers=[metric_reader],
        resource=_resource(config),
        views=views,
        shutdown_on_exit=shutdown_on_exit,
    )


def _meter_provider(
    config: TracingConfig, metric_reader: MetricReader | None
) -> tuple[metrics.MeterProvider | None, bool]:
    """(the meter provider the middleware will use, whether we installed it)."""
    if config.metrics_exporter == "none" and metric_reader is None:
        return None, False
    installed = global_meter_provider()
    if installed is not None:
        _log.info(
            "a meter provider (%s) is already installed; init_tracer keeps it",
            type(installed).__name__,
        )
        return installed, False
    if metric_reader is None:
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        exporter = _metric_exporter(config)
        loggers = _export_loggers(exporter, PeriodicExportingMetricReader)
        limit_export_logs(loggers, config.export_log_interval)
        metric_reader = _periodic_reader(config, exporter)
    provider = build_meter_provider(config, metric_reader=metric_reader, shutdown_on_exit=False)
    metrics.set_meter_provider(provider)
    return provider, True


def _periodic_reader(config: TracingConfig, exporter: MetricExporter) -> MetricReader:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return PeriodicExportingMetricReader(
        exporter, export_interval_millis=(config.metric_export_interval or 60.0) * 1000
    )


def build_tracer_provider(
    config: TracingConfig | None = None,
    *,
    exporter: SpanExporter | None = None,
    span_processor: SpanProcessor | None = None,
    shutdown_on_exit: bool = True,
) -> TracerProvider:
    """The SDK provider :func:`init_tracer` would install, without installing it.

    For tests and for processes that need several providers; the middleware
    takes it as ``tracer_provider=``. Ignores ``config.enabled``. Its id
    generator lets the middleware decide ratio sampling before building
    anything (see ``SamplingIdGenerator``). ``shutdown_on_exit`` is the SDK's:
    an unbounded flush at exit (``init_tracer`` turns it off and registers the
    handle's bounded :meth:`TracingHandle.shutdown` instead).
    """
    config = config if config is not None else TracingConfig()
    provider = TracerProvider(
        resource=_resource(config),
        sampler=_sampler(config),
        id_generator=SamplingIdGenerator(),
        shutdown_on_exit=shutdown_on_exit,
    )
    if span_processor is None:
        if exporter is None:
            exporter = _exporter(config)
        span_processor = BatchSpanProcessor(exporter)
    provider.add_span_processor(span_processor)
    return provider


def init_tracer(
    config: TracingConfig | None = None,
    *,
    exporter: SpanExporter | None = None,
    span_processor: SpanProcessor | None = None,
    metric_reader: MetricReader | None = None,
) -> TracingHandle:
    """Install a tracer provider exporting spans over OTLP, once per process.

    ``config`` defaults to ``TracingConfig()`` (everything from ``OTEL_*``). The
    provider gets a resource with ``service.name``, ``service.version`` and
    ``deployment.environment.name``, a parent-based ratio sampler and a batch
    span processor around ``exporter`` (default: OTLP over ``config.protocol``).
    ``span_processor`` replaces the batch processor (tests use a simple one).

    * Disabled (``enabled=False`` or ``OTEL_SDK_DISABLED=true``): nothing is
      installed and the handle's ``enabled`` is False; the middleware and span
      helpers then cost next to nothing.
    * A provider is already installed (by the application or
      ``opentelemetry-instrument``): it is kept, a warning says so, and the
      handle wraps it without owning it.
    * Called again: returns the first handle (a different config is ignored, with a warning).

    Metrics (``config.metrics``, on unless ``OTEL_METRICS_EXPORTER=none``): a
    meter provider exporting every ``metric_export_interval`` seconds over OTLP
    to the same collector (see :attr:`TracingConfig.metrics_endpoint`) is
    installed as the global one, so the middleware's HTTP server metrics (and
    any instrument the application makes) are exported; ``metric_reader``
    replaces the exporting reader (tests use an ``InMemoryMetricReader``). A
    meter provider the application installed first is kept and never replaced
    (install yours *before* ``init_tracer``: the API allows one global). The
    handle's :meth:`~TracingHandle.shutdown` flushes both providers.
    """
    global _active
    config = config if config is not None else TracingConfig()
    with _lock:
        if _active is not None:
            if config != _active.config:
                _log.warning(
                    "init_tracer was already called; keeping the first configuration "
                    "(service_name=%r)",
                    _active.config.service_name,
                )
            return _active
        current = trace.get_tracer_provider()
        if not config.enabled:
            _active = TracingHandle(current, enabled=False, owned=False, config=config)
            return _active
        meter_provider, meters_owned = _meter_provider(config, metric_reader)
        if not isinstance(current, trace.ProxyTracerProvider):
            _log.warning(
                "a tracer provider (%s) is already installed; init_tracer keeps it "
                "and adds no tracing",
                type(current).__name__,
            )
            _active = TracingHandle(
                current,
                enabled=True,
                owned=False,
                config=config,
                meter_provider=meter_provider,
                meter_provider_owned=meters_owned,
            )
            if meters_owned:
                atexit.register(_active.shutdown)
            return _active
        if _env_flag_disabled():
            _log.warning(
                "enabled=True but OTEL_SDK_DISABLED=true: the SDK makes every tracer a no-op, "
                "so no spans will be recorded"
            )
        if span_processor is None and exporter is None:
            exporter = _exporter(config)
        provider = build_tracer_provider(
            config, exporter=exporter, span_processor=span_processor, shutdown_on_exit=False
        )
        if exporter is not None:
            limit_export_logs(
                _export_loggers(exporter, BatchSpanProcessor), config.export_log_interval
            )
        trace.set_tracer_provider(provider)
        _active = TracingHandle(
            provider,
            enabled=True,
            owned=True,
            config=config,
            meter_provider=meter_provider,
            meter_provider_owned=meters_owned,
        )
        atexit.register(_active.shutdown)
        return _active


def _reset_for_tests() -> None:
    """Forget the active handle (tests reset the OpenTelemetry globals alongside)."""
    global _active
    with _lock:
        _active = None
