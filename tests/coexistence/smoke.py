"""Smoke checks run by ``nox -s coexist`` inside a fresh venv beside another stack.

Not collected by pytest (it runs in environments without the test dependencies):
``python smoke.py fastapi|wsgi|redis`` exits non-zero with a message when the
library does not work in that environment.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any


def _tracer() -> Any:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from ffrtmp_infra.tracing import TracingConfig, init_tracer

    exporter = InMemorySpanExporter()
    init_tracer(
        TracingConfig(service_name="coexist", sample_ratio=1.0),
        span_processor=SimpleSpanProcessor(exporter),
        metric_reader=InMemoryMetricReader(),  # metrics in memory too, not to localhost
    )
    return exporter


def check_fastapi() -> None:
    """Middleware on a FastAPI app: route-named spans and a 429 after the burst."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from ffrtmp_infra.ratelimit import Limiter, RateLimitMiddleware
    from ffrtmp_infra.tracing import TracingMiddleware

    exporter = _tracer()
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    app.add_middleware(RateLimitMiddleware, limiter=Limiter(1, 2))
    app.add_middleware(TracingMiddleware)
    with TestClient(app) as client:
        statuses = [client.get(f"/items/{n}").status_code for n in range(3)]
    assert statuses == [200, 200, 429], statuses
    names = {span.name for span in exporter.get_finished_spans()}
    assert "GET /items/{item_id}" in names, names


def check_wsgi() -> None:
    """The WSGI middlewares on a plain WSGI app: a span and a 429 after the burst."""
    from wsgiref.util import setup_testing_defaults

    from ffrtmp_infra.ratelimit import Limiter, WSGIRateLimitMiddleware
    from ffrtmp_infra.tracing import WSGITracingMiddleware

    exporter = _tracer()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = WSGITracingMiddleware(WSGIRateLimitMiddleware(app, limiter=Limiter(1, 2)))
    statuses: list[int] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses.append(int(status.split()[0]))

    for _ in range(3):
        environ: dict[str, Any] = {}
        setup_testing_defaults(environ)
        body = wrapped(environ, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()
    assert statuses == [200, 200, 429], statuses
    assert len(exporter.get_finished_spans()) == 3, exporter.get_finished_spans()


def check_redis() -> None:
    """Redis storage and the resource ledger with the installed redis-py."""
    from ffrtmp_infra.ratelimit import Limiter
    from ffrtmp_infra.resources import RedisBackend, ResourceManager

    binary = shutil.which("redis-server")
    assert binary, "redis-server is not on PATH"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    time.sleep(0.05)
            url = f"redis://127.0.0.1:{port}/0"
            limiter = Limiter(1, 2, storage=url)
            allowed = [limiter.hit("client").allowed for _ in range(3)]
            assert allowed == [True, True, False], allowed
            manager = ResourceManager(RedisBackend(url))
            manager.register_node("node-1", cpu=4, ram_gb=4)
            manager.reserve("job-1", "node-1", cpu=2)
            manager.release("job-1")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    checks = {"fastapi": check_fastapi, "wsgi": check_wsgi, "redis": check_redis}
    checks[sys.argv[1]]()
    print(f"coexistence smoke check {sys.argv[1]!r}: ok")
