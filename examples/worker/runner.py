"""Running one assignment: ffmpeg as a subprocess, progress reports, the result.

A :class:`JobRunner` owns one attempt of one job. It builds the ffmpeg command from the
validated spec, starts ffmpeg (never through a shell), reads ``-progress pipe:1`` and sends
at most one progress report per ``progress_interval_s`` from a separate thread (a slow
master never stalls ffmpeg's pipe). When the master answers 409 (superseded or canceled)
ffmpeg is killed and the attempt is dropped without a result. :meth:`hand_back` kills
ffmpeg and reports ``handed_back`` so the master requeues the job without counting a
failure (used on SIGTERM).
"""

from __future__ import annotations

import collections
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from examples.common.ffmpeg import (
    FFmpegCommand,
    MediaInfo,
    Progress,
    ProgressParser,
    build_command,
    collect_outputs,
    input_source,
    output_duration,
    parse_duration,
    probe,
)
from examples.common.netpolicy import DestinationPolicy
from examples.common.scenarios import SCENARIOS, UnknownScenarioError, get_scenario
from examples.common.spec import SpecError
from examples.worker.backoff import Backoff
from examples.worker.client import (
    MasterClient,
    MasterError,
    MasterUnavailableError,
    SupersededError,
)
from ffrtmp_infra.tracing import extract_headers, job_execute, record_error, redact_text, run_ffmpeg

__all__ = ["JobRunner"]

log = logging.getLogger("examples.worker.runner")

LOG_TAIL_LINES = 40
LOG_TAIL_CHARS = 4000
HAND_BACK_RETRY_S = 10.0


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec function asking Linux to SIGKILL ffmpeg if the worker dies (kill -9).

    Without it an orphaned ffmpeg would keep transcoding a job the master has already
    given to another node. The ctypes lookup happens here, before fork.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


_PREEXEC = _die_with_parent()


class _InputError(Exception):
    """The job's input exists but ffmpeg cannot read it."""


#: What a failed network input is reported as: a category, never ffmpeg's own words, which
#: would tell a submitter which ports are open and what answers there (the worker's log
#: keeps the details).
_NETWORK_FAILURES = (
    ("Connection refused", "connection refused"),
    ("timed out", "timed out"),
    ("Server returned", "HTTP error status"),
    ("redirect", "redirect refused"),
    ("Invalid data found", "not a supported media stream"),
    ("Failed to resolve", "host not found"),
)


def network_failure(log_tail: str) -> str:
    """The category of a network input failure read from ffmpeg's log."""
    for needle, category in _NETWORK_FAILURES:
        if needle.lower() in log_tail.lower():
            return category
    return "input could not be read"


class JobRunner:
    """Executes one assignment from the master and reports its outcome.

    ``on_done`` is called (with the runner) when the runner is finished, whatever the
    outcome, so the worker can free the slot.
    """

    def __init__(
        self,
        assignment: dict[str, Any],
        *,
        client: MasterClient,
        node_id: str,
        ffmpeg: str,
        output_dir: Path,
        media_root: Path | None = None,
        destinations: DestinationPolicy | None = None,
        progress_interval_s: float = 0.5,
        result_retry_s: float = 300.0,
        on_done: Callable[[JobRunner], None] | None = None,
    ) -> None:
        self.job_id = str(assignment["job_id"])
        self.attempt = int(assignment["attempt"])
        self.spec: dict[str, Any] = dict(assignment.get("spec") or {})
        self.trace: dict[str, str] = dict(assignment.get("trace") or {})
        self.client = client
        self.node_id = node_id
        self.ffmpeg = ffmpeg
        self.output_dir = output_dir
        self.media_root = media_root
        self.destinations = destinations or DestinationPolicy()
        self.progress_interval_s = progress_interval_s
        self.result_retry_s = result_retry_s
        self.on_done = on_done
        scenario = SCENARIOS.get(str(self.spec.get("scenario")))
        self.live = scenario is not None and scenario.kind == "live"
        self.status: str | None = None  # final status reported, or "superseded"/"canceled"
        self.ffmpeg_started_at: float | None = None
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._stop_reason: str | None = None  # "superseded" | "canceled" | "handed_back"
        self._latest: Progress | None = None
        self._sent: Progress | None = None
        self._progress_wakeup = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-{self.job_id[:8]}")

    # -- control from other threads -----------------------------------------------------

    def start(self) -> None:
        """Run the job in its own thread."""
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the runner to finish; True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> dict[str, Any]:
        """This attempt as the heartbeat's ``running`` list wants it."""
        return {"job_id": self.job_id, "attempt": self.attempt}

    def stop(self, reason: str) -> None:
        """Kill ffmpeg. ``superseded``/``canceled`` drop the job; ``handed_back`` reports it."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
            process = self._process
        if process is not None and process.poll() is None:
            log.info("job %s attempt %d: stopping ffmpeg (%s)", self.job_id, self.attempt, reason)
            process.kill()

    def _reason(self) -> str | None:
        with self._lock:
            return self._stop_reason

    def hand_back(self) -> None:
        """Stop now and give the job back to the master (SIGTERM path)."""
        self.stop("handed_back")

    # -- the job thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            context = extract_headers(self.trace) if self.trace else None
            with job_execute(
                self.job_id,
                context=context,
                attempt=self.attempt,
                node_id=self.node_id,
                scenario=str(self.spec.get("scenario")),
            ) as span:
                try:
                    report = self._execute()
                except Exception as exc:  # a bug must still produce a failed result
                    log.exception("job %s: unexpected error", self.job_id)
                    record_error(span, exc)
                    report = self._report("failed", error=f"worker error: {exc!r}")
                if report is not None:
                    self._send_result(report)
        finally:
            self._finished.set()
            self._progress_wakeup.set()
            if self.on_done is not None:
                self.on_done(self)

    def _report(self, status: str, **fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "node_id": self.node_id,
            "attempt": self.attempt,
            "status": status,
            "exit_code": None,
            "outputs": [],
            "media_duration_s": None,
            "wall_time_s": 0.0,
            "speed": None,
            "error": None,
            "log_tail": None,
            "retryable": True,
        }
        base.update(fields)
        for name in ("error", "log_tail"):
            if base[name] is not None:
                base[name] = self._public(str(base[name]))
        return base

    def _public(self, text: str) -> str:
        """``text`` as a submitter may see it: no secrets in URLs, no worker paths.

        Stream keys and URL credentials are redacted (ffmpeg prints its output URL), and
        the worker's media and output directories are cut from paths.
        """
        for root in (self.media_root, self.output_dir):
            if root is not None:
                for spelling in {str(root), str(root.resolve())}:
                    text = text.replace(spelling.rstrip("/") + "/", "")
        return redact_text(text)

    def _prepare(self) -> FFmpegCommand:
        """Check the spec, probe a file input, build the command, clear the output dir.

        Raises :class:`SpecError`/:class:`UnknownScenarioError` for a bad spec and
        :class:`_InputError` for an input ffmpeg cannot read.
        """
        scenario = get_scenario(str(self.spec.get("scenario")))
        spec_input = self.spec.get("input")
        info: MediaInfo | None = None
        address = None
        if isinstance(spec_input, dict):
            source = input_source(spec_input, self.media_root)
            if source is not None and spec_input.get("type") == "url":
                # Checked again here, right before ffmpeg connects: the master's check is
                # minutes old and DNS answers change. Plain http is pinned to this address.
                address = next(iter(self.destinations.check_input(source)), None)
            # Files are probed (cheap, local). A URL is read once, by the transcode itself,
            # unless the HLS ladder must know up front whether there is an audio stream.
            needs_probe = spec_input.get("type") == "file" or scenario.kind == "hls"
            if source is not None and needs_probe:
                try:
                    info = probe(self.ffmpeg, source, address=address)
                except ValueError as exc:
                    raise _InputError(str(exc)) from exc
        command = build_command(
            scenario,
            self.spec,
            ffmpeg=self.ffmpeg,
            job_id=self.job_id,
            output_dir=self.output_dir,
            media_root=self.media_root,
            input_info=info,
            input_address=address,
        )
        if command.job_dir is not None:
            # Never delete a directory that is there already: it holds an earlier attempt's
            # files or, were a job id ever reused, another job's outputs. Move it aside.
            if command.job_dir.exists() or command.job_dir.is_symlink():
                aside = command.job_dir.with_name(f"{self.job_id}.previous-{time.time_ns()}")
                command.job_dir.rename(aside)
                log.warning(
                    "job %s: kept the existing output directory as %s", self.job_id, aside.name
                )
            command.job_dir.mkdir(parents=True)
        return command

    def _execute(self) -> dict[str, Any] | None:
        # None of these can succeed on a retry: the master fails the job at once.
        try:
            command = self._prepare()
        except (SpecError, UnknownScenarioError) as exc:
            return self._report("failed", error=f"invalid job spec: {exc}", retryable=False)
        except _InputError as exc:
            return self._report("failed", error=str(exc), retryable=False)
        early_reason = self._reason()
        if early_reason is not None:
            return self._report("handed_back") if early_reason == "handed_back" else None
        tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        parser = ProgressParser(command.expected_duration_s)
        reporter = threading.Thread(
            target=self._progress_loop, name=f"progress-{self.job_id[:8]}", daemon=True
        )

        def on_start(process: subprocess.Popen[bytes]) -> None:
            self.ffmpeg_started_at = time.time()
            with self._lock:
                self._process = process
                stop_now = self._stop_reason is not None
            if stop_now:
                process.kill()
            log.info(
                "job %s attempt %d: ffmpeg started (pid %d)", self.job_id, self.attempt, process.pid
            )
            reporter.start()

        def on_progress(fields: dict[str, str]) -> None:
            self._latest = parser.snapshot(fields)
            self._progress_wakeup.set()

        def on_stderr(line: str) -> None:
            tail.append(line)
            # A URL input's duration is known only from ffmpeg's log: percent done needs it.
            if parser.duration_s is None and "Duration:" in line:
                parser.duration_s = parse_duration(line)

        started = time.monotonic()
        try:
            returncode = run_ffmpeg(
                command.argv,
                job_id=self.job_id,
                secrets=command.secret_args,
                on_start=on_start,
                on_progress=on_progress,
                on_stderr=on_stderr,
                stdin=subprocess.DEVNULL,
                preexec_fn=_PREEXEC,  # prepared before fork, see _die_with_parent
            ).returncode
        except OSError as exc:
            return self._report("failed", error=f"cannot start ffmpeg: {exc}")
        wall = time.monotonic() - started
        self._finished.set()
        self._progress_wakeup.set()
        reporter.join(timeout=self.progress_interval_s + 15)
        reason = self._reason()
        log_tail = "".join(tail)[-LOG_TAIL_CHARS:] or None
        if reason in ("superseded", "canceled"):
            self.status = reason
            log.info("job %s attempt %d: dropped (%s)", self.job_id, self.attempt, reason)
            return None
        if reason == "handed_back":
            return self._report("handed_back", wall_time_s=round(wall, 3), log_tail=log_tail)
        return self._final_report(command, returncode, wall, parser, log_tail)

    def _final_report(
        self,
        command: FFmpegCommand,
        returncode: int,
        wall: float,
        parser: ProgressParser,
        log_tail: str | None,
    ) -> dict[str, Any]:
        outputs: list[dict[str, Any]] = []
        if command.job_dir is not None and command.job_dir.is_dir():
            outputs = collect_outputs(command.job_dir, self.output_dir)
        if command.live:
            media = parser.last.out_time_s if parser.last else None
        else:
            media = output_duration(self.ffmpeg, command)
        speed = round(media / wall, 3) if media and wall > 0 else None
        fields: dict[str, Any] = {
            "exit_code": returncode,
            "outputs": outputs,
            "media_duration_s": round(media, 3) if media is not None else None,
            "wall_time_s": round(wall, 3),
            "speed": speed,
        }
        if returncode == 0 and (outputs or command.live):
            return self._report("completed", **fields)
        error = f"ffmpeg exited with {returncode}"
        if returncode == 0:
            error = "ffmpeg exited with 0 but wrote no output"
        elif returncode < 0:
            error = f"ffmpeg was killed by signal {-returncode}"
        spec_input = self.spec.get("input")
        if isinstance(spec_input, dict) and spec_input.get("type") == "url" and returncode > 0:
            log.warning(
                "job %s: network input failed; ffmpeg said: %s",
                self.job_id,
                redact_text(log_tail or ""),
            )
            error = f"{error}: {network_failure(log_tail or '')}"
            log_tail = None
        return self._report("failed", error=error, log_tail=log_tail, **fields)

    # -- progress reporting ---------------------------------------------------------------

    def _progress_loop(self) -> None:
        """Send the latest snapshot, at most once per interval, until ffmpeg ends."""
        while True:
            self._progress_wakeup.wait()
            self._progress_wakeup.clear()
            latest = self._latest
            if latest is not None and latest is not self._sent:
                self._sent = latest
                self._send_progress(latest)
            if self._finished.is_set():
                return
            # Throttle: sleep the interval unless ffmpeg finishes meanwhile.
            self._finished.wait(self.progress_interval_s)

    def _send_progress(self, snapshot: Progress) -> None:
        report = {
            "node_id": self.node_id,
            "attempt": self.attempt,
            "percent": round(snapshot.percent, 2) if snapshot.percent is not None else None,
            "fps": snapshot.fps,
            "speed": snapshot.speed,
            "out_time_s": round(snapshot.out_time_s, 3),
            "frame": snapshot.frame,
        }
        try:
            self.client.progress(self.job_id, report)
        except SupersededError as exc:
            self.stop("canceled" if exc.canceled else "superseded")
        except (MasterUnavailableError, MasterError) as exc:
            # Progress is advisory: keep transcoding, the next report may get through.
            log.warning("job %s: progress report failed: %s", self.job_id, exc)

    # -- result ----------------------------------------------------------------------------

    def _send_result(self, report: dict[str, Any]) -> None:
        """Deliver the result, retrying while the master is unreachable (say restarting)."""
        patience = self.result_retry_s
        if report["status"] == "handed_back":
            # If the master cannot hear a hand-back it will requeue the job anyway once this
            # node stops heartbeating: no reason to hold up the shutdown for long.
            patience = min(patience, HAND_BACK_RETRY_S)
        deadline = time.monotonic() + patience
        backoff = Backoff(first=0.2)
        while True:
            try:
                self.client.result(self.job_id, report)
                self.status = report["status"]
                log.info(
                    "job %s attempt %d: %s", self.job_id, self.attempt, report["status"].upper()
                )
                return
            except SupersededError as exc:
                self.status = "canceled" if exc.canceled else "superseded"
                log.info("job %s attempt %d: result refused (%s)", self.job_id, self.attempt, exc)
                return
            except (MasterUnavailableError, MasterError) as exc:
                if isinstance(exc, MasterError) and exc.status < 500 and exc.status != 429:
                    self.status = "rejected"
                    log.error("job %s: master rejected the result: %s", self.job_id, exc)
                    return
                pause = backoff.next(exc)
                if time.monotonic() + pause > deadline:
                    self.status = "undelivered"
                    log.error("job %s: giving up on the result: %s", self.job_id, exc)
                    return
                log.warning("job %s: result not delivered yet (%s); retrying", self.job_id, exc)
                time.sleep(pause)
