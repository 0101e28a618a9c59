"""The worker's tracing: one place that wires ``ffrtmp_infra.tracing`` in.

Spans: ``job.execute`` (child of the master's ``job.assign`` through the assignment's
``trace`` carrier) around each job, ``ffmpeg.run`` around the subprocess, and the httpx
hook that propagates the current context on every request to the master (so the master's
``job.complete`` joins the same trace).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

try:
    from ffrtmp_infra.tracing import (
        TracingConfig,
        extract_headers,
        ffmpeg_run,
        httpx_request_hook,
        init_tracer,
        job_execute,
        record_error,
        record_process_exit,
        subprocess_env,
    )

    TRACING_AVAILABLE = True
except ImportError:  # TEMPORARY until the tracing library is merged into main (issue 4)
    TRACING_AVAILABLE = False

    def extract_headers(headers: Mapping[str, str]) -> Any:  # type: ignore[misc]
        return None

    @contextmanager
    def job_execute(job_id: str, *, context: Any = None, **attrs: Any) -> Iterator[Any]:  # type: ignore[misc]
        yield None

    @contextmanager
    def ffmpeg_run(argv: Sequence[str], **attrs: Any) -> Iterator[Any]:  # type: ignore[misc]
        yield None

    def httpx_request_hook(request: Any) -> None:  # type: ignore[misc]
        return None

    def record_error(span: Any, exc: BaseException) -> None:  # type: ignore[misc]
        return None

    def record_process_exit(span: Any, returncode: int, *, pid: int | None = None) -> None:  # type: ignore[misc]
        return None

    def subprocess_env(env: Mapping[str, str] | None = None) -> dict[str, str]:  # type: ignore[misc]
        return dict(os.environ if env is None else env)


__all__ = [
    "TRACING_AVAILABLE",
    "extract_headers",
    "ffmpeg_run",
    "httpx_request_hook",
    "job_execute",
    "record_error",
    "record_process_exit",
    "start_tracing",
    "subprocess_env",
]


def start_tracing(*, otlp_endpoint: str | None, sample_ratio: float | None, version: str) -> Any:
    """Initialise tracing when an endpoint is configured (flag or ``OTEL_EXPORTER_OTLP_*``).

    ``OTEL_*`` variables fill the other settings. Returns the library's handle
    (``.shutdown()`` flushes spans), or ``None`` when tracing stays off.
    """
    if not TRACING_AVAILABLE:
        return None
    configured = otlp_endpoint or any(
        os.environ.get(name)
        for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    if not configured:
        return None  # opt-in: no endpoint, no exporter (the span helpers are then no-ops)
    config = TracingConfig(
        service_name="ffrtmp-worker",
        service_version=version,
        otlp_endpoint=otlp_endpoint,
        sample_ratio=sample_ratio,
    )
    return init_tracer(config)
