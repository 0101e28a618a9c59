"""``ffmpeg.run`` spans around ffmpeg (or any) subprocesses, with secrets redacted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Sequence
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


def _argv(argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(argv, str | bytes) or not argv:
        raise ValueError(
            "argv must be a non-empty list of arguments (a shell string is never accepted), "
            f"got {argv!r}"
        )
    return [os.fspath(a) for a in argv]


def ffmpeg_run(argv: Sequence[str | os.PathLike[str]], **attrs: Any) -> DomainSpan:
    """Span ``ffmpeg.run`` for a subprocess you start yourself (no process is run).

    The span helper, named after the span like ``job_create``; to *run* ffmpeg
    inside such a span use :func:`run_ffmpeg` / :func:`arun_ffmpeg`.

    Sets ``process.executable.name`` and ``process.command_args`` (redacted:
    URL credentials, RTMP stream keys, secret option values). ``job_id=``
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
    span.attributes[PROCESS_COMMAND_ARGS] = redact_argv(args)  # type: ignore[assignment]
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
) -> tuple[list[str], Any]:
    """Validate ``argv`` and fill the pipe keywords in place; returns (args, the caller's env)."""
    args = _argv(argv)
    if popen_kwargs.get("shell"):
        raise ValueError("run_ffmpeg never runs a shell: pass argv as a list, without shell=True")
    if capture_output:
        popen_kwargs.setdefault("stdout", subprocess.PIPE)
        popen_kwargs.setdefault("stderr", subprocess.PIPE)
    if input is not None:
        popen_kwargs.setdefault("stdin", subprocess.PIPE)
    return args, popen_kwargs.pop("env", None)


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
    **popen_kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """Run ``argv`` (never through a shell) inside an ``ffmpeg.run`` span.

    Like ``subprocess.run``: ``capture_output``, ``text``, ``cwd`` and other
    ``Popen`` keywords pass through; ``env`` (default ``os.environ``) gets the
    current trace as ``TRACEPARENT``/``TRACESTATE``/``BAGGAGE``. The span gets
    the pid, exit code and error status; a timeout kills the process and is
    recorded. ``check=True`` raises ``CalledProcessError`` on a non-zero exit.
    """
    args, base_env = _prepare(argv, input, capture_output, popen_kwargs)
    with ffmpeg_run(args, job_id=job_id) as span:
        env = subprocess_env(base_env)  # inside the span: the child's parent is ffmpeg.run
        # argv is a list handed to exec, never a shell: nothing is interpreted.
        with subprocess.Popen(args, env=env, **popen_kwargs) as process:  # noqa: S603
            span.set_attribute(PROCESS_PID, process.pid)
            try:
                stdout, stderr = process.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                record_process_exit(span, process.returncode)
                raise
            except BaseException:
                process.kill()
                raise
        return _completed(span, args, process.returncode, stdout, stderr, check)


async def arun_ffmpeg(
    argv: Sequence[str | os.PathLike[str]],
    *,
    job_id: str | None = None,
    check: bool = False,
    input: bytes | None = None,
    capture_output: bool = False,
    **exec_kwargs: Any,
) -> subprocess.CompletedProcess[bytes]:
    """:func:`run_ffmpeg` for asyncio (``asyncio.create_subprocess_exec``; bytes output).

    Same validation, span and result; only the waiting differs. For a deadline
    use ``async with asyncio.timeout(s):`` around the call: cancelling the
    awaiting task kills the process, and the span records the (negative) exit
    code as an error.
    """
    args, base_env = _prepare(argv, input, capture_output, exec_kwargs)
    async with ffmpeg_run(args, job_id=job_id) as span:
        env = subprocess_env(base_env)
        process = await asyncio.create_subprocess_exec(*args, env=env, **exec_kwargs)
        span.set_attribute(PROCESS_PID, process.pid)
        try:
            stdout, stderr = await process.communicate(input)
        except asyncio.CancelledError:
            process.kill()
            record_process_exit(span, await asyncio.shield(process.wait()))
            raise
        returncode = process.returncode if process.returncode is not None else await process.wait()
        return _completed(span, args, returncode, stdout, stderr, check)
