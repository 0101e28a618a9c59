"""``ffmpeg.run`` spans around ffmpeg (or any) subprocesses, with secrets redacted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import AsyncIterable, Callable, Collection, Iterable, Sequence
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from ffrtmp_infra.tracing._attributes import (
    ERROR_TYPE,
    PROCESS_COMMAND_ARGS,
    PROCESS_EXECUTABLE_NAME,
    PROCESS_EXIT_CODE,
    PROCESS_PID,
)
from ffrtmp_infra.tracing._propagation import subprocess_env
from ffrtmp_infra.tracing._redact import redact_argv
from ffrtmp_infra.tracing._spans import AttributeValue, DomainSpan, _namespaced

__all__ = ["arun_ffmpeg", "ffmpeg_run", "record_process_exit", "run_ffmpeg"]

#: Called with each ``-progress`` block of key/value pairs (``frame``, ``fps``,
#: ``out_time_us``, ``speed``, ... and ``progress``: ``continue``, or ``end`` last).
ProgressCallback = Callable[[dict[str, str]], None]


def _argv(argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(argv, str | bytes) or not argv:
        raise ValueError(
            "argv must be a non-empty list of arguments (a shell string is never accepted), "
            f"got {argv!r}"
        )
    return [os.fspath(a) for a in argv]


def ffmpeg_run(
    argv: Sequence[str | os.PathLike[str]], *, secrets: Collection[str] = (), **attrs: Any
) -> DomainSpan:
    """Span ``ffmpeg.run`` for a subprocess you start yourself (no process is run).

    The span helper, named after the span like ``job_create``; to *run* ffmpeg
    inside such a span use :func:`run_ffmpeg` / :func:`arun_ffmpeg`.

    Sets ``process.executable.name`` and ``process.command_args`` (redacted:
    URL credentials, RTMP stream keys, secret option values, and the arguments
    listed in ``secrets`` reduced to ``scheme://host/REDACTED``). ``job_id=``
    becomes ``job.id``; other keywords become ``ffmpeg.<key>``. Inside the
    block call :func:`record_process_exit` with the return code.
    """
    args = _argv(argv)
    attributes: dict[str, AttributeValue] = {
        PROCESS_EXECUTABLE_NAME: os.path.basename(args[0]),
    }
    job_id = attrs.pop("job_id", None)
    if job_id is not None:
        attributes["job.id"] = str(job_id)
    attributes.update(_namespaced("ffmpeg", attrs))
    span = DomainSpan("ffmpeg.run", attributes)
    # Sequences are not Attributes' plain types for mypy; the SDK accepts them.
    span.attributes[PROCESS_COMMAND_ARGS] = redact_argv(args, secrets)  # type: ignore[assignment]
    return span


def record_process_exit(span: Span, returncode: int, *, pid: int | None = None) -> None:
    """Set ``process.exit.code`` (and ``process.pid``); non-zero is an error."""
    span.set_attribute(PROCESS_EXIT_CODE, returncode)
    if pid is not None:
        span.set_attribute(PROCESS_PID, pid)
    if returncode == 0:
        return
    if returncode < 0:
        try:
            reason = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            reason = f"killed by signal {-returncode}"
    else:
        reason = f"exited with code {returncode}"
    span.set_attribute(ERROR_TYPE, str(returncode))
    span.set_status(Status(StatusCode.ERROR, f"process {reason}"))


def _prepare(
    argv: Sequence[str | os.PathLike[str]],
    input: bytes | None,
    capture_output: bool,
    popen_kwargs: dict[str, Any],
    on_progress: ProgressCallback | None = None,
    on_stderr: Callable[[str], None] | None = None,
) -> tuple[list[str], Any]:
    """Validate ``argv`` and fill the pipe keywords in place; returns (args, the caller's env).

    With ``on_progress`` the command gets ``-progress pipe:1`` (unless it already has it)
    and stdout becomes the progress pipe; with ``on_stderr`` stderr is streamed.
    """
    args = _argv(argv)
    if popen_kwargs.get("shell"):
        raise ValueError("run_ffmpeg never runs a shell: pass argv as a list, without shell=True")
    streamed = {"stdout": on_progress is not None, "stderr": on_stderr is not None}
    if any(streamed.values()):
        if capture_output or input is not None:
            raise ValueError(
                "on_progress/on_stderr stream ffmpeg's pipes to callbacks: they cannot be "
                "combined with capture_output or input"
            )
        for name, wanted in streamed.items():
            if popen_kwargs.get(name) is not None and (
                wanted or popen_kwargs[name] == subprocess.PIPE
            ):
                raise ValueError(
                    f"{name}= cannot be set while on_progress/on_stderr stream the pipes "
                    "(a pipe nobody reads would fill and stall ffmpeg)"
                )
    if on_progress is not None:
        if "-progress" in args:
            index = args.index("-progress")
            target = args[index + 1] if index + 1 < len(args) else None
            if target not in ("pipe:1", "pipe:", "-"):
                raise ValueError(
                    f"on_progress reads ffmpeg's -progress output from stdout, but argv sends it "
                    f"to {target!r}: use -progress pipe:1 or leave -progress out"
                )
        else:
            args = [args[0], "-progress", "pipe:1", *args[1:]]
        popen_kwargs["stdout"] = subprocess.PIPE
    if on_stderr is not None:
        popen_kwargs["stderr"] = subprocess.PIPE
    if capture_output:
        popen_kwargs.setdefault("stdout", subprocess.PIPE)
        popen_kwargs.setdefault("stderr", subprocess.PIPE)
    if input is not None:
        popen_kwargs.setdefault("stdin", subprocess.PIPE)
    return args, popen_kwargs.pop("env", None)


def _line(raw: str | bytes) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _progress_feeder(on_progress: ProgressCallback) -> Callable[[str], None]:
    """A line consumer that calls ``on_progress`` with each complete ``-progress`` block."""
    fields: dict[str, str] = {}

    def feed(line: str) -> None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return
        fields[key] = value
        if key == "progress":
            block = dict(fields)
            fields.clear()
            on_progress(block)

    return feed


def _consumers(
    process: Any, on_progress: ProgressCallback | None, on_stderr: Callable[[str], None] | None
) -> list[tuple[Any, Callable[[str], None]]]:
    """(pipe, line consumer) for every streamed pipe of ``process``."""
    pairs: list[tuple[Any, Callable[[str], None]]] = []
    if on_progress is not None:
        pairs.append((process.stdout, _progress_feeder(on_progress)))
    if on_stderr is not None:
        pairs.append((process.stderr, on_stderr))
    return pairs


def _pump(
    stream: Iterable[str | bytes],
    consume: Callable[[str], None],
    kill: Callable[[], None],
    errors: list[BaseException],
) -> None:
    """Feed each line to ``consume``; if it raises, kill the process and drain to EOF."""
    failed = False
    for raw in stream:
        if failed:
            continue
        try:
            consume(_line(raw))
        except BaseException as exc:  # handed to the caller once the process is gone
            errors.append(exc)
            failed = True
            kill()


async def _apump(
    stream: AsyncIterable[bytes],
    consume: Callable[[str], None],
    kill: Callable[[], None],
    errors: list[BaseException],
) -> None:
    failed = False
    async for raw in stream:
        if failed:
            continue
        try:
            consume(_line(raw))
        except BaseException as exc:
            errors.append(exc)
            failed = True
            kill()


def _kill(process: Any) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            process.kill()


def _completed(
    span: Span, args: list[str], returncode: int, stdout: Any, stderr: Any, check: bool
) -> subprocess.CompletedProcess[Any]:
    record_process_exit(span, returncode)
    completed = subprocess.CompletedProcess(args, returncode, stdout, stderr)
    if check:
        completed.check_returncode()
    return completed


def run_ffmpeg(
    argv: Sequence[str | os.PathLike[str]],
    *,
    job_id: str | None = None,
    check: bool = False,
    input: bytes | None = None,
    capture_output: bool = False,
    timeout: float | None = None,
    secrets: Collection[str] = (),
    on_start: Callable[[subprocess.Popen[Any]], None] | None = None,
    on_progress: ProgressCallback | None = None,
    on_stderr: Callable[[str], None] | None = None,
    **popen_kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """Run ``argv`` (never through a shell) inside an ``ffmpeg.run`` span.

    Like ``subprocess.run``: ``capture_output``, ``text``, ``cwd`` and other
    ``Popen`` keywords pass through; ``env`` (default ``os.environ``) gets the
    current trace as ``TRACEPARENT``/``TRACESTATE``/``BAGGAGE``. The span gets
    the pid, exit code and error status; a timeout kills the process and is
    recorded. ``check=True`` raises ``CalledProcessError`` on a non-zero exit.
    ``secrets`` are arguments recorded as ``scheme://host/REDACTED``.

    Streaming: ``on_progress`` is called with each ``-progress`` block (argv gets
    ``-progress pipe:1`` unless it has it; stdout carries it), ``on_stderr`` with each
    line ffmpeg logs, both from reader threads while ffmpeg runs, so its pipes never
    fill; ``on_start`` gets the ``Popen`` as soon as it exists (to kill it from
    elsewhere). A callback that raises kills ffmpeg, and the exception is raised here.
    """
    args, base_env = _prepare(argv, input, capture_output, popen_kwargs, on_progress, on_stderr)
    with ffmpeg_run(args, job_id=job_id, secrets=secrets) as span:
        env = subprocess_env(base_env)  # inside the span: the child's parent is ffmpeg.run
        # argv is a list handed to exec, never a shell: nothing is interpreted.
        with subprocess.Popen(args, env=env, **popen_kwargs) as process:  # noqa: S603
            span.set_attribute(PROCESS_PID, process.pid)
            errors: list[BaseException] = []
            readers = [
                threading.Thread(
                    target=_pump, args=(pipe, consume, lambda: _kill(process), errors), daemon=True
                )
                for pipe, consume in _consumers(process, on_progress, on_stderr)
            ]
            for reader in readers:
                reader.start()
            try:
                if on_start is not None:
                    on_start(process)
                if readers:
                    stdout = stderr = None  # streamed to the callbacks
                    process.wait(timeout)
                else:
                    stdout, stderr = process.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                if readers:
                    process.wait()  # the readers drain the pipes
                else:
                    process.communicate()
                record_process_exit(span, process.returncode)
                raise
            except BaseException:
                process.kill()
                raise
            finally:
                for reader in readers:
                    reader.join()
            if errors:
                record_process_exit(span, process.returncode)
                raise errors[0]
        return _completed(span, args, process.returncode, stdout, stderr, check)


async def arun_ffmpeg(
    argv: Sequence[str | os.PathLike[str]],
    *,
    job_id: str | None = None,
    check: bool = False,
    input: bytes | None = None,
    capture_output: bool = False,
    secrets: Collection[str] = (),
    on_start: Callable[[asyncio.subprocess.Process], None] | None = None,
    on_progress: ProgressCallback | None = None,
    on_stderr: Callable[[str], None] | None = None,
    **exec_kwargs: Any,
) -> subprocess.CompletedProcess[bytes]:
    """:func:`run_ffmpeg` for asyncio (``asyncio.create_subprocess_exec``; bytes output).

    Same validation, span, streaming callbacks (called on the event loop) and result;
    only the waiting differs. For a deadline use ``async with asyncio.timeout(s):``
    around the call: cancelling the awaiting task kills the process, and the span
    records the (negative) exit code as an error.
    """
    args, base_env = _prepare(argv, input, capture_output, exec_kwargs, on_progress, on_stderr)
    async with ffmpeg_run(args, job_id=job_id, secrets=secrets) as span:
        env = subprocess_env(base_env)
        process = await asyncio.create_subprocess_exec(*args, env=env, **exec_kwargs)
        span.set_attribute(PROCESS_PID, process.pid)
        errors: list[BaseException] = []
        readers = [
            asyncio.ensure_future(_apump(pipe, consume, lambda: _kill(process), errors))
            for pipe, consume in _consumers(process, on_progress, on_stderr)
        ]
        try:
            if on_start is not None:
                on_start(process)
            if readers:
                stdout = stderr = None  # streamed to the callbacks
                await asyncio.gather(*readers)
                await process.wait()
            else:
                stdout, stderr = await process.communicate(input)
        except BaseException:  # cancelled, or on_start raised: the process must not outlive us
            _kill(process)
            for reader in readers:
                reader.cancel()
            record_process_exit(span, await asyncio.shield(process.wait()))
            raise
        returncode = process.returncode if process.returncode is not None else await process.wait()
        if errors:
            record_process_exit(span, returncode)
            raise errors[0]
        return _completed(span, args, returncode, stdout, stderr, check)
