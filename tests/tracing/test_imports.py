"""What ``ffrtmp_infra.tracing`` needs at import: not Starlette, not the semconv package."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Serves one WSGI request and one raw-ASGI request, runs a subprocess span,
# and prints what was exported and which blocked modules got imported anyway.
USE_TRACING = """
import asyncio, json, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from ffrtmp_infra.tracing import TracingMiddleware, WSGITracingMiddleware, run_ffmpeg

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))

def wsgi_app(environ, start_response):
    environ["ffrtmp.route"] = "/jobs/{job_id}"
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"ok"]

wsgi = WSGITracingMiddleware(wsgi_app, tracer_provider=provider, excluded_urls=())
list(wsgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/jobs/1", "wsgi.url_scheme": "http",
           "HTTP_HOST": "example.com"}, lambda status, headers, exc_info=None: None))

async def asgi_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})

async def call_asgi():
    async def receive():
        return {"type": "http.request", "body": b""}
    async def send(message):
        pass
    scope = {"type": "http", "method": "POST", "path": "/jobs", "headers": [],
             "query_string": b""}
    await TracingMiddleware(asgi_app, tracer_provider=provider, excluded_urls=())(
        scope, receive, send)

asyncio.run(call_asgi())
# The tracer provider is global for run_ffmpeg's span.
from opentelemetry import trace
trace.set_tracer_provider(provider)
run_ffmpeg([sys.executable, "-c", "pass"], job_id="j-1")
print(json.dumps({
    "spans": [
        {"name": s.name, "attributes": {k: v for k, v in s.attributes.items()
                                        if isinstance(v, (str, int))}}
        for s in exporter.get_finished_spans()
    ],
    "loaded": sorted(m for m, module in sys.modules.items() if module is not None
                     and m.startswith(BLOCKED)),
}))
"""


def run_blocking(*blocked: str) -> dict[str, object]:
    """Run USE_TRACING in a fresh interpreter where importing ``blocked`` fails."""
    # The SDK is imported first: it uses the semconv modules itself, and keeps
    # its references; only later imports of the blocked names fail.
    guard = (
        "import opentelemetry.sdk.resources, opentelemetry.sdk.trace.export\n"
        "import opentelemetry.sdk.trace.export.in_memory_span_exporter\n"
        f"BLOCKED = {blocked!r}\n"
        "for name in [*sys.modules, *BLOCKED]:\n"
        "    if name.startswith(BLOCKED):\n"
        "        sys.modules[name] = None\n"
    )
    code = "import sys\n" + guard + textwrap.dedent(USE_TRACING)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "blocked",
    # The modules this package used to import (older releases lack some).
    [("starlette",), ("opentelemetry.semconv.attributes", "opentelemetry.semconv._incubating")],
    ids=["without-starlette", "without-semconv"],
)
def test_tracing_imports_and_works_without(blocked: tuple[str, ...]) -> None:
    report = run_blocking(*blocked)
    assert report["loaded"] == []
    spans = {s["name"]: s["attributes"] for s in report["spans"]}  # type: ignore[attr-defined]
    assert set(spans) == {"GET /jobs/{job_id}", "POST", "ffmpeg.run"}
    assert spans["GET /jobs/{job_id}"]["http.route"] == "/jobs/{job_id}"
    assert spans["GET /jobs/{job_id}"]["server.address"] == "example.com"
    assert spans["POST"]["http.response.status_code"] == 204
    assert spans["ffmpeg.run"]["process.exit.code"] == 0
    assert spans["ffmpeg.run"]["job.id"] == "j-1"
