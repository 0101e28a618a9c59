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


STREAMING_CHILD = (
    "import sys\n"
    "print('frame=1', 'progress=continue', 'frame=2', 'progress=end', sep='\\n', flush=True)\n"
    "print('Duration: 00:00:02.00', 'done', sep='\\n', file=sys.stderr)\n"
    "raise SystemExit(int(sys.argv[1]))\n"
)


@pytest.mark.parametrize("exit_code", [0, 4])
def test_streaming_callbacks_agree(exporter: InMemorySpanExporter, exit_code: int) -> None:
    # -progress pipe:1 is in argv already (python would refuse it as its own option).
    argv = [PY, "-c", STREAMING_CHILD, str(exit_code), "-progress", "pipe:1"]

    def run(runner: Callable[..., Any]) -> tuple[Any, list[Any], list[str], int]:
        blocks: list[dict[str, str]] = []
        lines: list[str] = []
        starts: list[Any] = []
        kind, value = outcome(
            lambda: runner(
                argv, on_progress=blocks.append, on_stderr=lines.append, on_start=starts.append
            )
        )
        return (kind, result_of(value)), blocks, lines, len(starts)

    sync = run(run_ffmpeg)
    sync_spans = span_shape(exporter)
    asynchronous = run(lambda *a, **k: asyncio.run(arun_ffmpeg(*a, **k)))
    assert asynchronous == sync
    assert span_shape(exporter) == sync_spans
    assert sync[1] == [{"frame": "1", "progress": "continue"}, {"frame": "2", "progress": "end"}]
    assert sync[2] == ["Duration: 00:00:02.00\n", "done\n"]
    assert sync[3] == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"on_progress": print, "capture_output": True}, {"on_stderr": print, "input": b"x"}],
)
def test_streaming_refusals_agree(kwargs: dict[str, Any]) -> None:
    sync = outcome(lambda: run_ffmpeg([PY], **kwargs))
    asynchronous = outcome(lambda: asyncio.run(arun_ffmpeg([PY], **kwargs)))
    assert asynchronous == sync
    assert sync[0] == "raised"


def test_a_raising_callback_kills_the_process_in_both_twins(exporter: InMemorySpanExporter) -> None:
    argv = [
        PY,
        "-c",
        "import time\nwhile True: print('progress=continue', flush=True); time.sleep(0.05)",
        "-progress",
        "-",
    ]

    def refuse(block: dict[str, str]) -> None:
        raise LookupError("stop")

    sync = outcome(lambda: run_ffmpeg(argv, on_progress=refuse))
    sync_spans = span_shape(exporter)
    asynchronous = outcome(lambda: asyncio.run(arun_ffmpeg(argv, on_progress=refuse)))
    assert asynchronous == sync == ("raised", (LookupError, "stop"))
    assert span_shape(exporter) == sync_spans
    assert sync_spans[0][1]["process.exit.code"] == -9
