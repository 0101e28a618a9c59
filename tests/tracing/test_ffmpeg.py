"""ffmpeg.run spans around real ffmpeg processes; redaction of secrets in command lines."""

from __future__ import annotations

import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from ffrtmp_infra.tracing import (
    ffmpeg_run,
    record_process_exit,
    redact_argv,
    redact_url,
    run_ffmpeg,
)
from tests.support.ffmpeg import FFmpeg


@pytest.fixture(autouse=True)
def installed(provider: TracerProvider) -> None:
    trace.set_tracer_provider(provider)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtmp://live.example/app/abcd-1234", "rtmp://live.example/app/REDACTED"),
        (
            "rtmps://u:p@live.example:443/live2/key/extra",
            "rtmps://REDACTED@live.example:443/live2/REDACTED",
        ),
        ("rtmp://live.example/app", "rtmp://live.example/app"),
        (
            "https://user:pw@cdn.example/v.m3u8?sig=abc&x=1",
            "https://REDACTED@cdn.example/v.m3u8?sig=REDACTED&x=1",
        ),
        ("srt://10.0.0.1:9000?passphrase=hunter2", "srt://10.0.0.1:9000?passphrase=REDACTED"),
        ("/data/in.mp4", "/data/in.mp4"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_argv_covers_urls_and_secret_options() -> None:
    argv = [
        "ffmpeg", "-headers", "Authorization: Bearer t0ken", "-i", "in.mp4",
        "-c", "copy", "-f", "flv", "rtmp://a.rtmp.youtube.com/live2/xxxx-yyyy",
    ]  # fmt: skip
    assert redact_argv(argv) == [
        "ffmpeg", "-headers", "REDACTED", "-i", "in.mp4",
        "-c", "copy", "-f", "flv", "rtmp://a.rtmp.youtube.com/live2/REDACTED",
    ]  # fmt: skip


def test_run_ffmpeg_success(ffmpeg: FFmpeg, exporter: InMemorySpanExporter) -> None:
    argv = [ffmpeg.path, "-hide_banner", "-nostdin", "-f", "lavfi", "-i",
            "testsrc2=size=64x48:rate=10:duration=0.2", "-f", "null", "-"]  # fmt: skip
    result = run_ffmpeg(argv, job_id="j-1", capture_output=True)
    assert result.returncode == 0
    [span] = exporter.get_finished_spans()
    assert span.name == "ffmpeg.run"
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    assert attributes["job.id"] == "j-1"
    assert attributes["process.exit.code"] == 0
    assert isinstance(attributes["process.pid"], int)
    assert attributes["process.executable.name"].startswith("ffmpeg")
    assert list(attributes["process.command_args"]) == argv


def test_run_ffmpeg_failure_is_an_error_and_hides_the_stream_key(
    ffmpeg: FFmpeg, exporter: InMemorySpanExporter
) -> None:
    # Nothing listens on port 1: ffmpeg fails fast, as with a dead ingest server.
    url = "rtmp://streamer:pw@127.0.0.1:1/live/sk-SECRET-KEY"
    argv = [ffmpeg.path, "-hide_banner", "-nostdin", "-f", "lavfi", "-i",
            "testsrc2=duration=0.1", "-f", "flv", url]  # fmt: skip
    with pytest.raises(subprocess.CalledProcessError):
        run_ffmpeg(argv, capture_output=True, check=True, timeout=30)
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert attributes["process.exit.code"] != 0
    assert attributes["process.command_args"][-1] == "rtmp://REDACTED@127.0.0.1:1/live/REDACTED"
    everything = repr(attributes) + repr([e.attributes for e in span.events])
    everything += span.status.description or ""
    assert "sk-SECRET-KEY" not in everything
    assert "pw@" not in everything
    assert [e.name for e in span.events] == ["exception"]  # the CalledProcessError


def test_run_ffmpeg_passes_the_trace_to_the_child(exporter: InMemorySpanExporter) -> None:
    code = "import os; print(os.environ['TRACEPARENT'])"
    result = run_ffmpeg([sys.executable, "-c", code], capture_output=True, text=True)
    [span] = exporter.get_finished_spans()
    trace_id = format(span.context.trace_id, "032x")
    span_id = format(span.context.span_id, "016x")
    assert result.stdout.strip().split("-")[1:3] == [trace_id, span_id]


def test_run_ffmpeg_timeout_kills_and_records(exporter: InMemorySpanExporter) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run_ffmpeg([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.3)
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["process.exit.code"] < 0  # killed
    assert span.attributes["error.type"] == "subprocess.TimeoutExpired"


def test_shell_strings_are_refused() -> None:
    with pytest.raises(ValueError, match="never accepted"):
        run_ffmpeg("ffmpeg -i x y")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="never runs a shell"):
        run_ffmpeg(["ffmpeg"], shell=True)


def test_ffmpeg_run_around_your_own_process(exporter: InMemorySpanExporter) -> None:
    argv = [sys.executable, "-c", "raise SystemExit(3)"]
    with ffmpeg_run(argv, preset="veryfast") as span:
        process = subprocess.run(argv, check=False)
        record_process_exit(span, process.returncode)
    [finished] = exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "process exited with code 3"
    assert finished.attributes is not None
    assert finished.attributes["ffmpeg.preset"] == "veryfast"


def test_arun_ffmpeg_success_and_propagation(
    ffmpeg: FFmpeg, exporter: InMemorySpanExporter
) -> None:
    import asyncio

    from ffrtmp_infra.tracing import arun_ffmpeg

    argv = [ffmpeg.path, "-hide_banner", "-nostdin", "-f", "lavfi", "-i",
            "testsrc2=size=64x48:rate=10:duration=0.2", "-f", "null", "-"]  # fmt: skip
    code = "import os; print(os.environ['TRACEPARENT'])"

    async def both() -> tuple[int, bytes]:
        done = await arun_ffmpeg(argv, job_id="j-a", capture_output=True)
        child = await arun_ffmpeg([sys.executable, "-c", code], capture_output=True)
        return done.returncode, child.stdout

    returncode, stdout = asyncio.run(both())
    assert returncode == 0
    first, second = exporter.get_finished_spans()
    assert first.attributes is not None
    assert first.attributes["process.exit.code"] == 0
    assert first.attributes["job.id"] == "j-a"
    assert stdout.decode().strip().split("-")[2] == format(second.context.span_id, "016x")


def test_arun_ffmpeg_timeout_and_check(exporter: InMemorySpanExporter) -> None:
    import asyncio

    from ffrtmp_infra.tracing import arun_ffmpeg

    async def with_deadline() -> None:
        async with asyncio.timeout(0.3):
            await arun_ffmpeg([sys.executable, "-c", "import time; time.sleep(30)"])

    with pytest.raises(TimeoutError):
        asyncio.run(with_deadline())
    with pytest.raises(subprocess.CalledProcessError):
        asyncio.run(arun_ffmpeg([sys.executable, "-c", "raise SystemExit(2)"], check=True))
    timed_out, failed = exporter.get_finished_spans()
    assert timed_out.status.status_code is StatusCode.ERROR
    assert timed_out.attributes is not None
    assert timed_out.attributes["process.exit.code"] < 0
    assert failed.attributes is not None
    assert failed.attributes["process.exit.code"] == 2
    assert failed.attributes["error.type"] == "subprocess.CalledProcessError"


def _testsrc(ffmpeg: FFmpeg, seconds: float, *out: str, realtime: bool = False) -> list[str]:
    """A tiny generated clip; ``realtime`` reads it at its own pace (``-re``), so a long one
    really runs that long (a fast machine transcodes 600 s of 64x48 in well under a second)."""
    pace = ["-re"] if realtime else []
    return [ffmpeg.path, "-hide_banner", "-nostdin", *pace, "-f", "lavfi", "-i",
            f"testsrc2=size=64x48:rate=25:duration={seconds}", *out]  # fmt: skip


def test_progress_and_log_lines_stream_to_callbacks(
    ffmpeg: FFmpeg, exporter: InMemorySpanExporter
) -> None:
    blocks: list[dict[str, str]] = []
    lines: list[str] = []
    started: list[subprocess.Popen[bytes]] = []
    argv = _testsrc(ffmpeg, 2, "-f", "null", "-")
    result = run_ffmpeg(
        argv, on_start=started.append, on_progress=blocks.append, on_stderr=lines.append
    )
    assert result.returncode == 0
    assert (result.stdout, result.stderr) == (None, None)  # streamed, not captured
    assert result.args == [argv[0], "-progress", "pipe:1", *argv[1:]]
    [span] = exporter.get_finished_spans()
    assert [process.pid for process in started] == [dict(span.attributes or {})["process.pid"]]
    assert blocks
    assert blocks[-1]["progress"] == "end"
    assert all(block["progress"] == "continue" for block in blocks[:-1])
    assert int(blocks[-1]["frame"]) == 50
    assert int(blocks[-1]["out_time_us"]) > 1_900_000
    assert any(line.startswith("Output #0") for line in lines)  # ffmpeg's log, line by line


def test_on_start_can_stop_ffmpeg_from_another_thread(
    ffmpeg: FFmpeg, exporter: InMemorySpanExporter
) -> None:
    import threading

    def stop_soon(process: subprocess.Popen[bytes]) -> None:
        threading.Timer(0.5, process.kill).start()

    argv = _testsrc(
        ffmpeg, 600, "-f", "null", "-", realtime=True
    )  # ten minutes of video: never finishes
    result = run_ffmpeg(argv, on_start=stop_soon, on_progress=lambda block: None)
    assert result.returncode == -9
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "process killed by SIGKILL"


def test_a_raising_callback_kills_ffmpeg_and_raises(
    ffmpeg: FFmpeg, exporter: InMemorySpanExporter
) -> None:
    def refuse(block: dict[str, str]) -> None:
        raise LookupError("the master canceled the job")

    with pytest.raises(LookupError, match="canceled"):
        run_ffmpeg(_testsrc(ffmpeg, 600, "-f", "null", "-", realtime=True), on_progress=refuse)
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["process.exit.code"] == -9


def test_streaming_timeout_kills_and_records(
    ffmpeg: FFmpeg, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run_ffmpeg(
            _testsrc(ffmpeg, 600, "-f", "null", "-", realtime=True),
            on_stderr=lambda line: None,
            timeout=0.5,
        )
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["process.exit.code"] == -9
    assert span.attributes["error.type"] == "subprocess.TimeoutExpired"


@pytest.mark.parametrize(
    ("argv", "kwargs", "message"),
    [
        (["ffmpeg"], {"on_progress": print, "capture_output": True}, "cannot be combined"),
        (["ffmpeg"], {"on_stderr": print, "input": b"x"}, "cannot be combined"),
        (["ffmpeg"], {"on_stderr": print, "stderr": subprocess.DEVNULL}, "stderr= cannot be set"),
        (["ffmpeg"], {"on_stderr": print, "stdout": subprocess.PIPE}, "stdout= cannot be set"),
        (["ffmpeg", "-progress", "p.txt"], {"on_progress": print}, "sends it to 'p.txt'"),
        (["ffmpeg", "-progress"], {"on_progress": print}, "sends it to None"),
    ],
)
def test_streaming_misuse_is_refused_before_anything_runs(
    argv: list[str], kwargs: dict[str, object], message: str, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(ValueError, match=message):
        run_ffmpeg(argv, **kwargs)  # type: ignore[arg-type]
    assert exporter.get_finished_spans() == ()


def test_secret_arguments_keep_only_scheme_and_host(
    ffmpeg: FFmpeg, exporter: InMemorySpanExporter
) -> None:
    push = "srt://127.0.0.1:1/live/sk-SECRET-KEY?mode=caller"
    argv = [ffmpeg.path, "-hide_banner", "-version", push]
    run_ffmpeg(argv, secrets={push}, capture_output=True)
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["process.command_args"][-1] == "srt://127.0.0.1/REDACTED"
    assert redact_argv(["x", "not a url"], secrets={"not a url"}) == ["x", "REDACTED"]
