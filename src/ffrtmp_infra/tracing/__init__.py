"""One-call OpenTelemetry tracing: setup, ASGI/WSGI middleware, propagation, span helpers.

```python
from ffrtmp_infra.tracing import TracingConfig, TracingMiddleware, init_tracer

handle = init_tracer(TracingConfig(service_name="ffrtmp-master", sample_ratio=0.1))
app.add_middleware(TracingMiddleware)
...
handle.shutdown()
```
"""

from ffrtmp_infra.tracing._asgi import TracingMiddleware
from ffrtmp_infra.tracing._config import TracingConfig
from ffrtmp_infra.tracing._errors import (
    ConfigurationError,
    MissingDependencyError,
    MissingExtraError,
)
from ffrtmp_infra.tracing._ffmpeg import arun_ffmpeg, ffmpeg_run, record_process_exit, run_ffmpeg
from ffrtmp_infra.tracing._logging import TraceContextLogFilter, install_log_correlation
from ffrtmp_infra.tracing._metrics import DURATION_BUCKETS
from ffrtmp_infra.tracing._propagation import (
    async_httpx_request_hook,
    context_from_env,
    extract_headers,
    httpx_request_hook,
    inject_headers,
    subprocess_env,
)
from ffrtmp_infra.tracing._redact import redact_argv, redact_text, redact_url
from ffrtmp_infra.tracing._server import DEFAULT_EXCLUDED_URLS, SamplingIdGenerator
from ffrtmp_infra.tracing._setup import (
    TracingHandle,
    build_meter_provider,
    build_tracer_provider,
    init_tracer,
)
from ffrtmp_infra.tracing._spans import (
    DomainSpan,
    db_operation,
    job_assign,
    job_complete,
    job_create,
    job_execute,
    record_error,
    worker_heartbeat,
    worker_register,
)
from ffrtmp_infra.tracing._wsgi import WSGITracingMiddleware

__all__ = [
    "DEFAULT_EXCLUDED_URLS",
    "DURATION_BUCKETS",
    "ConfigurationError",
    "DomainSpan",
    "MissingDependencyError",
    "MissingExtraError",
    "SamplingIdGenerator",
    "TraceContextLogFilter",
    "TracingConfig",
    "TracingHandle",
    "TracingMiddleware",
    "WSGITracingMiddleware",
    "arun_ffmpeg",
    "async_httpx_request_hook",
    "build_meter_provider",
    "build_tracer_provider",
    "context_from_env",
    "db_operation",
    "extract_headers",
    "ffmpeg_run",
    "httpx_request_hook",
    "init_tracer",
    "inject_headers",
    "install_log_correlation",
    "job_assign",
    "job_complete",
    "job_create",
    "job_execute",
    "record_error",
    "record_process_exit",
    "redact_argv",
    "redact_text",
    "redact_url",
    "run_ffmpeg",
    "subprocess_env",
    "worker_heartbeat",
    "worker_register",
]
