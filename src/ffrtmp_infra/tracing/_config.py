"""``TracingConfig``: every setting of :func:`init_tracer`, with ``OTEL_*`` fallbacks."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ffrtmp_infra.tracing._errors import ConfigurationError

__all__ = ["PROTOCOLS", "TracingConfig"]

_log = logging.getLogger("ffrtmp_infra.tracing")

PROTOCOLS = ("http/protobuf", "grpc")
#: OTEL_METRICS_EXPORTER values init_tracer understands.
METRICS_EXPORTERS = ("otlp", "console", "none")

# OTEL_TRACES_SAMPLER values whose meaning is a plain ratio; anything else
# (jaeger_remote, xray, an entry point) is left to the SDK to build from the env.
_RATIO_SAMPLERS = {
    "always_on": 1.0,
    "parentbased_always_on": 1.0,
    "always_off": 0.0,
    "parentbased_always_off": 0.0,
}
_ARG_SAMPLERS = {"traceidratio", "parentbased_traceidratio"}


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _env_flag_disabled() -> bool:
    raw = _env("OTEL_SDK_DISABLED")
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        # The specification says an invalid boolean is treated as false, with a warning.
        _log.warning("OTEL_SDK_DISABLED=%r is not 'true' or 'false'; treating it as false", raw)
    return raw.lower() == "true"


def _check_ratio(value: object, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{source} must be a number in [0, 1], got {value!r}")
    ratio = float(value)
    if math.isnan(ratio) or not 0.0 <= ratio <= 1.0:
        raise ConfigurationError(f"{source} must be in [0, 1], got {value!r}")
    return ratio


def _ratio_from_env() -> tuple[float | None, bool]:
    """(ratio, understood) from OTEL_TRACES_SAMPLER[_ARG]; understood=False: SDK decides."""
    sampler = _env("OTEL_TRACES_SAMPLER")
    if sampler is None:
        return None, True
    name = sampler.lower()
    if name in _RATIO_SAMPLERS:
        return _RATIO_SAMPLERS[name], True
    if name in _ARG_SAMPLERS:
        arg = _env("OTEL_TRACES_SAMPLER_ARG")
        if arg is None:
            return 1.0, True
        try:
            number = float(arg)
        except ValueError:
            raise ConfigurationError(
                f"OTEL_TRACES_SAMPLER_ARG must be a number in [0, 1], got {arg!r}"
            ) from None
        return _check_ratio(number, "OTEL_TRACES_SAMPLER_ARG"), True
    return None, False


def _interval_from_env() -> float:
    """OTEL_METRIC_EXPORT_INTERVAL (milliseconds) in seconds; 60 when unset."""
    raw = _env("OTEL_METRIC_EXPORT_INTERVAL")
    if raw is None:
        return 60.0
    try:
        interval = float(raw) / 1000.0
    except ValueError:
        interval = math.nan
    if not 0 < interval < float("inf"):
        raise ConfigurationError(
            f"OTEL_METRIC_EXPORT_INTERVAL must be a number of milliseconds > 0, got {raw!r}"
        )
    return interval


def _check_text(value: object, name: str) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigurationError(f"{name} must be a non-empty string or None, got {value!r}")


def _check_endpoint(value: str, source: str) -> None:
    if any(c.isspace() for c in value):
        raise ConfigurationError(f"{source} must not contain whitespace, got {value!r}")
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"{source} must be host:port or an http(s):// URL with a host, got {value!r}"
            )
        try:
            parts.port  # noqa: B018  (validates the port)
        except ValueError:
            raise ConfigurationError(f"{source} has an invalid port: {value!r}") from None
        return
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(
            f"{source} must be host:port (port 1-65535) or an http(s):// URL, got {value!r}"
        )


@dataclass(frozen=True)
class TracingConfig:
    """Settings for :func:`~ffrtmp_infra.tracing.init_tracer`.

    Every field left as ``None`` falls back to its standard OpenTelemetry
    environment variable when the config is built (the effective value is what
    the attribute then holds), so ``TracingConfig()`` alone is "configure from
    the environment". Invalid values raise :class:`ConfigurationError` here,
    naming the value and the rule it broke.

    * ``service_name``: ``OTEL_SERVICE_NAME`` (else the SDK's ``unknown_service``).
    * ``service_version``, ``environment``: ``service.version`` and
      ``deployment.environment.name`` in ``OTEL_RESOURCE_ATTRIBUTES``.
    * ``otlp_endpoint``: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` then
      ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``host:port`` or a URL (see :attr:`traces_endpoint`).
    * ``protocol``: ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` then
      ``OTEL_EXPORTER_OTLP_PROTOCOL``; ``"http/protobuf"`` (default) or ``"grpc"``.
    * ``enabled``: ``OTEL_SDK_DISABLED`` (``true`` disables).
    * ``sample_ratio``: ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``; default 1.0.
      Sampling is always parent-based: a request continuing a sampled trace is sampled.
    * ``excluded_urls``: ``OTEL_PYTHON_EXCLUDED_URLS`` (comma-separated regexes);
      ``None`` there too means the default health/metrics paths.
    * ``export_timeout``: seconds per export, ``OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT``.
    * ``headers``: extra exporter headers (``OTEL_EXPORTER_OTLP[_TRACES]_HEADERS`` also apply).
    * ``resource_attributes``: more resource attributes (code wins over the env).
    * ``export_log_interval``: seconds; the exporter's error and warning lines (collector
      down, silent or late) are logged at most once per interval per logger and level,
      the next one saying how many were suppressed. ``0`` logs every line.
    * ``metrics``: whether :func:`init_tracer` also installs a meter provider (the HTTP
      server metrics go there); ``OTEL_METRICS_EXPORTER`` (``otlp``, the default, or
      ``console``; ``none`` turns metrics off). ``True`` with the variable unset or
      ``none`` means ``otlp``. The result is in :attr:`metrics_exporter`.
    * ``metric_export_interval``: seconds between metric exports,
      ``OTEL_METRIC_EXPORT_INTERVAL`` (milliseconds, as the specification says); 60.
    * Metrics go over ``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL``, else the ``protocol``
      argument, else ``OTEL_EXPORTER_OTLP_PROTOCOL``; to :attr:`metrics_endpoint`.
    """

    service_name: str | None = None
    service_version: str | None = None
    environment: str | None = None
    otlp_endpoint: str | None = None
    protocol: str | None = None
    enabled: bool | None = None
    sample_ratio: float | None = None
    excluded_urls: str | Sequence[str] | None = None
    export_timeout: float | None = None
    headers: Mapping[str, str] | None = None
    resource_attributes: Mapping[str, str | bool | int | float] = field(default_factory=dict)
    export_log_interval: float = 60.0
    metrics: bool | None = None
    metric_export_interval: float | None = None
    #: "otlp", "console" or "none" (no meter provider), from ``metrics`` and the env.
    metrics_exporter: str = field(default="none", init=False)
    metrics_protocol: str = field(default="http/protobuf", init=False)
    #: False when ``OTEL_TRACES_SAMPLER`` names a sampler we do not map to a
    #: ratio (e.g. ``jaeger_remote``): the SDK then builds it from the env.
    sampler_from_env: bool = field(default=False, init=False)
    # Where otlp_endpoint came from: "argument", or the env var that set it (the OTLP
    # specification treats the general and the per-signal variables differently).
    _endpoint_source: str = field(default="argument", init=False, repr=False)
    _protocol_source: str = field(default="argument", init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("service_name", "service_version", "environment"):
            _check_text(getattr(self, name), name)
        set_ = object.__setattr__
        if self.service_name is None:
            set_(self, "service_name", _env("OTEL_SERVICE_NAME"))

        if self.otlp_endpoint is not None:
            if not isinstance(self.otlp_endpoint, str):
                raise ConfigurationError(
                    f"otlp_endpoint must be a string, got {self.otlp_endpoint!r}"
                )
            _check_endpoint(self.otlp_endpoint, "otlp_endpoint")
        else:
            for var in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
                value = _env(var)
                if value is not None:
                    _check_endpoint(value, var)
                    set_(self, "otlp_endpoint", value)
                    set_(self, "_endpoint_source", var)
                    break

        protocol, source = self.protocol, "protocol"
        if protocol is None:
            for var in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
                protocol, source = _env(var), var
                if protocol is not None:
                    break
        protocol = protocol or "http/protobuf"
        if protocol not in PROTOCOLS:
            raise ConfigurationError(
                f"{source} must be one of {', '.join(PROTOCOLS)}, got {protocol!r}"
            )
        set_(self, "protocol", protocol)
        set_(self, "_protocol_source", source)
        self._resolve_metrics()

        if self.enabled is None:
            set_(self, "enabled", not _env_flag_disabled())
        elif not isinstance(self.enabled, bool):
            raise ConfigurationError(f"enabled must be True, False or None, got {self.enabled!r}")

        if self.sample_ratio is not None:
            set_(self, "sample_ratio", _check_ratio(self.sample_ratio, "sample_ratio"))
        else:
            ratio, understood = _ratio_from_env()
            set_(self, "sample_ratio", 1.0 if understood and ratio is None else ratio)
            set_(self, "sampler_from_env", not understood)

        if self.excluded_urls is None:
            set_(self, "excluded_urls", _env("OTEL_PYTHON_EXCLUDED_URLS"))
        elif not isinstance(self.excluded_urls, str | Sequence):
            raise ConfigurationError(
                f"excluded_urls must be a comma-separated string or a sequence of regexes, "
                f"got {self.excluded_urls!r}"
            )

        if self.export_timeout is not None and (
            isinstance(self.export_timeout, bool)
            or not isinstance(self.export_timeout, int | float)
            or not self.export_timeout > 0
        ):
            raise ConfigurationError(
                f"export_timeout must be a number of seconds > 0, got {self.export_timeout!r}"
            )
        interval = self.export_log_interval
        if (
            isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or not 0 <= interval < float("inf")
        ):
            raise ConfigurationError(
                f"export_log_interval must be a finite number of seconds >= 0, got {interval!r}"
            )

    def _resolve_metrics(self) -> None:
        set_ = object.__setattr__
        chosen = _env("OTEL_METRICS_EXPORTER")
        exporter = "otlp"
        if chosen is not None:
            names = [n.strip().lower() for n in chosen.split(",") if n.strip()]
            unknown = [n for n in names if n not in METRICS_EXPORTERS]
            if unknown or len(names) != 1:
                raise ConfigurationError(
                    f"OTEL_METRICS_EXPORTER must be one of {', '.join(METRICS_EXPORTERS)} "
                    f"(a Prometheus reader goes on a MeterProvider you install before "
                    f"init_tracer), got {chosen!r}"
                )
            exporter = names[0]
        if self.metrics is None:
            set_(self, "metrics", exporter != "none")
        elif not isinstance(self.metrics, bool):
            raise ConfigurationError(f"metrics must be True, False or None, got {self.metrics!r}")
        if not self.metrics:
            exporter = "none"
        elif exporter == "none":
            exporter = "otlp"  # metrics=True in code wins over the variable
        set_(self, "metrics_exporter", exporter)

        interval = self.metric_export_interval
        if interval is not None and (
            isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or not 0 < interval < float("inf")
        ):
            raise ConfigurationError(
                f"metric_export_interval must be a number of seconds > 0, got {interval!r}"
            )
        if exporter == "none":
            return  # the metrics variables are not read: they configure nothing
        if interval is None:
            interval = _interval_from_env()
        set_(self, "metric_export_interval", float(interval))

        protocol = _env("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        if protocol is not None and protocol not in PROTOCOLS:
            raise ConfigurationError(
                f"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL must be one of {', '.join(PROTOCOLS)}, "
                f"got {protocol!r}"
            )
        if protocol is None:
            protocol = self.protocol
            if self._protocol_source == "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL":
                general = _env("OTEL_EXPORTER_OTLP_PROTOCOL")  # the traces' own is not ours
                protocol = general if general in PROTOCOLS else "http/protobuf"
        set_(self, "metrics_protocol", protocol)
        for var in ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            value = _env(var)
            if value is not None:
                _check_endpoint(value, var)

    @property
    def metrics_endpoint(self) -> str | None:
        """The URL the OTLP metric exporter is given, or ``None`` for its own default.

        ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` is used as written, as the OTLP
        exporter specification says. Otherwise the traces' endpoint is followed
        to the same collector: a base from ``OTEL_EXPORTER_OTLP_ENDPOINT`` or a
        ``host:port``/path-less ``otlp_endpoint`` gets ``/v1/metrics``, an
        ``otlp_endpoint`` ending in ``/v1/traces`` has that replaced by
        ``/v1/metrics``, any other path gets ``/v1/metrics`` appended. The
        traces-only ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is not followed. For
        gRPC the path is irrelevant and ``host:port`` becomes ``http://host:port``.
        """
        endpoint = _env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        if endpoint is not None:
            return endpoint if "://" in endpoint else f"http://{endpoint}"
        if self._endpoint_source == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":
            endpoint = _env("OTEL_EXPORTER_OTLP_ENDPOINT")
        else:
            endpoint = self.otlp_endpoint
        if endpoint is None:
            return None
        if "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        if self.metrics_protocol == "grpc":
            return endpoint
        base = endpoint.rstrip("/")
        if base.endswith("/v1/traces"):
            base = base.removesuffix("/v1/traces")
        return base + "/v1/metrics"

    @property
    def traces_endpoint(self) -> str | None:
        """The URL the exporter is given, or ``None`` for the exporter's own default.

        For OTLP/HTTP, as the OTLP exporter specification says, a base from
        ``OTEL_EXPORTER_OTLP_ENDPOINT`` gets ``/v1/traces`` appended and
        ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as written (path included or
        not). The ``otlp_endpoint`` argument is a convenience: ``host:port`` becomes
        ``http://host:port/v1/traces``, a URL without a path gets ``/v1/traces`` and
        any other URL is used as written. For gRPC the path is irrelevant and
        ``host:port`` becomes ``http://host:port`` (plaintext; give ``https://`` for TLS).
        """
        endpoint = self.otlp_endpoint
        if endpoint is None:
            return None
        if "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        if self.protocol == "grpc":
            return endpoint
        if self._endpoint_source == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":
            return endpoint
        if self._endpoint_source == "OTEL_EXPORTER_OTLP_ENDPOINT" or urlsplit(endpoint).path in (
            "",
            "/",
        ):
            return endpoint.rstrip("/") + "/v1/traces"
        return endpoint
