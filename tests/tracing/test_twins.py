"""Every sync/async pair of ffrtmp_infra.tracing on the same good and bad inputs.

The async twin must return what the sync one returns, raise what it raises,
and leave the same span behind.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ffrtmp_infra.tracing import (
    arun_ffmpeg,
    async_httpx_request_hook,
    httpx_request_hook,
    job_create,
    run_ffmpeg,
)

PY = sys.executable


@pytest.fixture(autouse=True)
def installed(provider: TracerProvider) -> None:
    trace.set_tracer_provider(provider)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or ("raised", (type, message)), comparable across twins."""
    try:
        return "ok", call()
    except Exception as exc:
        return "raised", (type(exc), str(exc))


def span_shape(exporter: InMemorySpanExporter) -> list[tuple[str, dict[str, Any], str]]:
    spans = exporter.get_finished_spans()
    exporter.clear()
    ignored = {"process.pid"}  # differs per run by nature
    return [
        (
            s.name,
            {k: v for k, v in (s.attributes or {}).items() if k not in ignored},
            s.status.status_code.name,
        )
        for s in spans
    ]


RUN_CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("prints", [PY, "-c", "print('hi')"], {"capture_output": True, "job_id": "j-1"}),
    ("exits-3", [PY, "-c", "raise SystemExit(3)"], {}),
    ("exits-3-checked", [PY, "-c", "raise SystemExit(3)"], {"check": True}),
    (
        "stdin",
        [PY, "-c", "import sys; print(sys.stdin.read()[::-1])"],
        {"input": b"abc", "capture_output": True},
    ),
    ("a-shell-string", "ffmpeg -i in.mp4 out.mp4", {}),
    ("empty-argv", [], {}),
    ("shell-true", [PY, "-c", "pass"], {"shell": True}),
    ("missing-binary", ["/nonexistent/ffmpeg", "-version"], {}),
]


def result_of(value: Any) -> Any:
    if isinstance(value, subprocess.CompletedProcess):
        return (value.args, value.returncode, value.stdout, value.stderr)
    return value


@pytest.mark.parametrize(
    ("argv", "kwargs"), [c[1:] for c in RUN_CASES], ids=[c[0] for c in RUN_CASES]
)
def test_run_ffmpeg_and_arun_ffmpeg_agree(
    exporter: InMemorySpanExporter, argv: Any, kwargs: dict[str, Any]
) -> None:
    sync_kind, sync_value = outcome(lambda: run_ffmpeg(argv, **kwargs))
    sync_spans = span_shape(exporter)
    async_kind, async_value = outcome(lambda: asyncio.run(arun_ffmpeg(argv, **kwargs)))
    async_spans = span_shape(exporter)

    assert (async_kind, result_of(async_value)) == (sync_kind, result_of(sync_value))
    assert async_spans == sync_spans


def test_the_httpx_hooks_add_the_same_headers(provider: TracerProvider) -> None:
    with job_create("j-1"):
        sync_request = httpx.Request("GET", "http://127.0.0.1/")
        async_request = httpx.Request("GET", "http://127.0.0.1/")
        httpx_request_hook(sync_request)
        asyncio.run(async_httpx_request_hook(async_request))
    assert "traceparent" in sync_request.headers
    assert dict(async_request.headers) == dict(sync_request.headers)


def test_a_domain_span_as_sync_and_async_context_manager_and_decorator(
    exporter: InMemorySpanExporter,
) -> None:
    span = job_create("j-1", codec="h264")

    @span
    def sync_work() -> int:
        raise ValueError("bad input 1")

    @span
    async def async_work() -> int:
        raise ValueError("bad input 1")

    assert outcome(sync_work) == outcome(lambda: asyncio.run(async_work()))
    decorated = span_shape(exporter)

    async def use_async_with() -> None:
        async with span:
            raise ValueError("bad input 1")

    def use_with() -> None:
        with span:
            raise ValueError("bad input 1")

    assert outcome(use_with) == outcome(lambda: asyncio.run(use_async_with()))
    managed = span_shape(exporter)
    assert decorated[0] == decorated[1] == managed[0] == managed[1]
    assert decorated[0][2] == "ERROR"
