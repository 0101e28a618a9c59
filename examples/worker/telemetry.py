"""The worker's tracing: one place that wires ``ffrtmp_infra.tracing`` in.

Spans: ``job.execute`` (child of the master's ``job.assign`` through the assignment's
``trace`` carrier) around each job, ``ffmpeg.run`` around the subprocess, and the httpx
hook that propagates the current context on every request to the master (so the master's
``job.complete`` joins the same trace). Without a configured endpoint no exporter is set
up and the span helpers cost next to nothing.
"""

from __future__ import annotations

import os

from ffrtmp_infra.tracing import (
    TracingConfig,
    TracingHandle,
    extract_headers,
    httpx_request_hook,
    init_tracer,
    job_execute,
    record_error,
)

__all__ = [
    "extract_headers",
    "httpx_request_hook",
    "job_execute",
    "record_error",
    "start_tracing",
]

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def start_tracing(
    *, otlp_endpoint: str | None, sample_ratio: float | None, version: str
) -> TracingHandle | None:
    """Initialise tracing when an endpoint is configured (flag or ``OTEL_EXPORTER_OTLP_*``).

    ``OTEL_*`` variables fill the other settings. Returns the library's handle
    (``.shutdown()`` flushes spans), or ``None`` when tracing stays off.
    """
    if not otlp_endpoint and not any(os.environ.get(name) for name in _ENDPOINT_VARIABLES):
        return None  # opt-in: no endpoint, no exporter retrying against localhost:4318
    config = TracingConfig(
        service_name="ffrtmp-worker",
        service_version=version,
        otlp_endpoint=otlp_endpoint,
        sample_ratio=sample_ratio,
    )
    return init_tracer(config)
