"""Tracing settings shared by the master and the worker."""

from __future__ import annotations

import os

from ffrtmp_infra.tracing import TracingConfig

__all__ = ["tracing_config"]

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tracing_config(
    service_name: str, *, otlp_endpoint: str | None, sample_ratio: float | None, version: str
) -> TracingConfig:
    """On with an endpoint (the flag, else ``OTEL_EXPORTER_OTLP_*``), off without one.

    Opt-in, so a process without a collector does not retry exports against
    localhost:4318 and log errors. With the flag tracing is on; with only the
    environment, ``OTEL_SDK_DISABLED`` still applies. ``OTEL_*`` fill the rest.
    Bad values raise ``ConfigurationError`` (a ``ValueError``) naming them.
    """
    if otlp_endpoint:
        enabled: bool | None = True
    else:
        enabled = None if any(os.environ.get(n) for n in _ENDPOINT_VARIABLES) else False
    return TracingConfig(
        service_name=service_name,
        service_version=version,
        otlp_endpoint=otlp_endpoint,
        enabled=enabled,
        sample_ratio=sample_ratio,
    )
