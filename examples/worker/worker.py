"""The worker loop: register, heartbeat, long-poll claims, run jobs, drain on SIGTERM.

Threads:

* the **heartbeat** thread posts ``/nodes/{id}/heartbeat`` every interval the master asked
  for, whatever ffmpeg is doing; it re-registers on 404, stops the worker on 410 and kills
  the jobs the answer lists under ``cancel``;
* the **claim** thread long-polls ``/nodes/{id}/claim`` and starts a :class:`JobRunner`
  thread per assignment (the master only assigns what fits the node's capacity;
  ``max_jobs`` is an extra local cap);
* the main thread waits for a stop request (SIGTERM/SIGINT or :meth:`Worker.stop`), then
  stops claiming, lets batch jobs finish for ``grace_s`` seconds (live jobs never finish, so
  they are handed back at once), hands back what is left and deregisters.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import ffrtmp_infra
from examples.common.ffmpeg import find_ffmpeg
from examples.common.telemetry import tracing_config
from examples.worker.backoff import Backoff
from examples.worker.capacity import Capacity, default_labels, detect_capacity
from examples.worker.client import (
    MasterClient,
    MasterError,
    MasterUnavailableError,
    NodeRemovedError,
    NodeUnknownError,
    tls_context,
)
from examples.worker.config import WorkerConfig
from examples.worker.runner import JobRunner
from ffrtmp_infra.tracing import httpx_request_hook, init_tracer

__all__ = ["Worker"]

log = logging.getLogger("examples.worker")

VERSION = ffrtmp_infra.__version__


class Worker:
    """A reference transcoding worker. ``Worker(config).run()`` blocks until stopped."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        capacity: Capacity | None = None,
        client: MasterClient | None = None,
    ) -> None:
        self.config = config
        self.node_id: str = config.node_id or ""
        self.ffmpeg = config.ffmpeg or find_ffmpeg()
        self.capacity = capacity or detect_capacity(
            self.ffmpeg,
            cpu=config.cpu,
            ram_gb=config.ram_gb,
            gpu=config.gpu,
            nvenc_sessions=config.nvenc_sessions,
        )
        verify: Any = True
        if config.master.startswith("https://"):
            verify = tls_context(config.ca_cert, config.client_cert, config.client_key)
        self.client = client or MasterClient(
            config.masters,
            api_key=config.api_key,
            verify=verify,
            timeout=config.request_timeout_s,
            request_hooks=[httpx_request_hook],
        )
        self.heartbeat_interval = 5.0
        #: local cap on concurrent ffmpeg processes: --max-jobs, else one per CPU offered
        #: (the master's placement is the first line; this one holds even if it misjudges)
        self.max_jobs = config.max_jobs or max(1, math.ceil(self.capacity.cpu))
        self.runners: dict[tuple[str, int], JobRunner] = {}  # by (job id, attempt)
        self.completed: list[JobRunner] = []
        self.exit_code = 0
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._hand_back_now = threading.Event()
        self._removed = threading.Event()
        self._registered = threading.Event()

    # -- public control ----------------------------------------------------------------------

    def stop(self, *, hand_back_now: bool = False) -> None:
        """Ask the worker to stop taking jobs, finish or hand back, and deregister."""
        if hand_back_now:
            self._hand_back_now.set()
        self._stopping.set()
        with self._slot_freed:
            self._slot_freed.notify_all()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: drain gracefully; a second signal hands everything back at once."""

        def handler(signum: int, frame: FrameType | None) -> None:
            already = self._stopping.is_set()
            log.info(
                "received %s: %s", signal.Signals(signum).name, "hand back" if already else "drain"
            )
            self.stop(hand_back_now=already)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self) -> int:
        """Register, work until stopped, drain, deregister. Returns the exit code."""
        self.config.output_dir.mkdir(parents=True, exist_ok=True)
        tracing = init_tracer(
            tracing_config(
                "ffrtmp-worker",
                otlp_endpoint=self.config.otlp_endpoint,
                sample_ratio=self.config.sample_ratio,
                version=VERSION,
            )
        )
        try:
            if not self._register_until_stopped():
                return self.exit_code
            heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
            claimer = threading.Thread(target=self._claim_loop, name="claim", daemon=True)
            heartbeat.start()
            claimer.start()
            self._stopping.wait()
            self._drain()
            if not self._removed.is_set():
                self._deregister()
            # A claim in flight returns when the master removes the node, or after its
            # long-poll wait; whatever it delivers meanwhile is handed back below.
            claimer.join(timeout=self.config.claim_wait_s + self.config.request_timeout_s)
            self._hand_back_all()  # anything a last claim delivered while stopping
            return self.exit_code
        finally:
            self.client.close()
            tracing.shutdown()

    # -- registration and heartbeats --------------------------------------------------------

    def register_payload(self) -> dict[str, Any]:
        """The ``POST /nodes/register`` body."""
        return {
            "node_id": self.node_id,
            "capacity": self.capacity.to_register(),
            "labels": {**default_labels(), **dict(self.config.labels)},
            "encoders": list(self.capacity.encoders),
            "version": VERSION,
        }

    @property
    def token_path(self) -> Path:
        """Where this node keeps its credential, so a restart keeps its identity."""
        return Path(self.config.output_dir) / f".node-token-{self.node_id}"

    def _load_token(self) -> None:
        try:
            self.client.set_node_token(self.token_path.read_text().strip() or None)
        except OSError:
            self.client.set_node_token(None)

    def _save_token(self, token: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.token_path, flags, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token)

    def _register(self) -> None:
        self._load_token()
        answer = self.client.register(self.register_payload())
        interval = answer.get("heartbeat_interval", 5.0)
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            interval = 5.0
        if not 0.05 <= interval <= 600:
            log.warning("ignoring the master's heartbeat_interval %r; using 5 s", interval)
            interval = 5.0
        self.heartbeat_interval = float(interval)
        token = answer.get("node_token")
        if isinstance(token, str) and token:
            self._save_token(token)
            self.client.set_node_token(token)
        self._registered.set()
        log.info(
            "registered as %s (cpu=%s ram_gb=%s gpu=%s), heartbeat every %.1fs",
            self.node_id,
            self.capacity.cpu,
            self.capacity.ram_gb,
            self.capacity.gpu,
            self.heartbeat_interval,
        )

    def _register_until_stopped(self) -> bool:
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                self._register()
                return True
            except (MasterError, MasterUnavailableError) as exc:
                if isinstance(exc, MasterError) and exc.status in (401, 403, 422):
                    log.error("registration refused: %s", exc)
                    self.exit_code = 2
                    return False
                pause = backoff.next(exc)
                unreachable = isinstance(exc, MasterUnavailableError)
                what = "master unreachable" if unreachable else "registration failed"
                log.warning("%s (%s); retrying in %.1fs", what, exc, pause)
                self._stopping.wait(pause)
        return False

    def _heartbeat_loop(self) -> None:
        while not self._removed.is_set():
            try:
                with self._lock:
                    running = [r.running for r in self.runners.values()]
                answer = self.client.heartbeat(self.node_id, running)
                canceled = set(answer.get("cancel") or ())
                with self._lock:
                    doomed = [r for r in self.runners.values() if r.job_id in canceled]
                for runner in doomed:
                    runner.stop("canceled")
            except NodeUnknownError:
                log.warning("master does not know this node; registering again")
                try:
                    self._register()
                except (MasterError, MasterUnavailableError) as exc:
                    log.warning("re-registration failed: %s", exc)
            except NodeRemovedError:
                self._on_removed()
                return
            except MasterError as exc:
                if exc.status in (401, 403):
                    self._on_refused(exc)
                    return
                log.warning("heartbeat failed: %s", exc)
            except MasterUnavailableError as exc:
                log.warning("heartbeat failed: %s", exc)
            except Exception:  # a bug or an answer nobody foresaw must not end the heartbeats
                log.exception("heartbeat loop error; continuing")
            # Heartbeats continue while draining: the master must not think we died.
            if self._removed.wait(self.heartbeat_interval):
                return

    def _on_refused(self, exc: MasterError) -> None:
        """The master refused our key or node token: stop (exit code 2), whenever it happens.

        Retrying would only keep failing and count toward the lockout of this host's address.
        """
        log.error("the master refused this worker's credentials (%s); stopping", exc)
        self.exit_code = 2
        self._removed.set()
        self.stop(hand_back_now=True)

    def _on_removed(self) -> None:
        log.warning("this node was removed by an operator; stopping")
        self._removed.set()
        for runner in list(self.runners.values()):
            runner.stop("superseded")
        self.stop(hand_back_now=True)

    # -- claiming ----------------------------------------------------------------------------

    def _has_free_slot(self) -> bool:
        return len(self.runners) < self.max_jobs

    def _claim_loop(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            with self._slot_freed:
                while not self._has_free_slot() and not self._stopping.is_set():
                    self._slot_freed.wait()
            if self._stopping.is_set():
                return
            try:
                assignment = self.client.claim(self.node_id, self.config.claim_wait_s)
                backoff.reset()
            except NodeUnknownError:
                try:
                    self._register()
                except (MasterError, MasterUnavailableError) as exc:
                    log.warning("re-registration failed: %s", exc)
                    self._stopping.wait(backoff.next(exc))
                continue
            except NodeRemovedError:
                self._on_removed()
                return
            except (MasterError, MasterUnavailableError) as exc:
                if isinstance(exc, MasterError) and exc.status in (401, 403):
                    self._on_refused(exc)
                    return
                pause = backoff.next(exc)
                log.warning("claim failed (%s); retrying in %.1fs", exc, pause)
                self._stopping.wait(pause)
                continue
            except Exception as exc:  # a bug or an answer nobody foresaw must not end the claims
                pause = backoff.next(exc)
                log.exception("claim loop error; retrying in %.1fs", pause)
                self._stopping.wait(pause)
                continue
            if assignment is not None:
                try:
                    self._start(assignment)
                except (KeyError, TypeError, ValueError) as exc:
                    # A malformed assignment must not kill the claim loop.
                    log.error(
                        "ignoring a malformed assignment (%r): %s", exc, str(assignment)[:300]
                    )

    def _start(self, assignment: dict[str, Any]) -> None:
        runner = JobRunner(
            assignment,
            client=self.client,
            node_id=self.node_id,
            ffmpeg=self.ffmpeg,
            output_dir=Path(self.config.output_dir),
            media_root=self.config.media_root,
            destinations=self.config.destinations,
            progress_interval_s=self.config.progress_interval_s,
            result_retry_s=self.config.result_retry_s,
            on_done=self._runner_done,
        )
        log.info(
            "job %s attempt %d: claimed (%s)",
            runner.job_id,
            runner.attempt,
            runner.spec.get("scenario"),
        )
        with self._lock:
            older = [r for r in self.runners.values() if r.job_id == runner.job_id]
            self.runners[(runner.job_id, runner.attempt)] = runner
        for old in older:
            # A new attempt of a job we still run means ours was superseded (say the master
            # restarted before our first report). Stop it before the new one reuses its
            # output directory.
            old.stop("superseded")
            old.join(timeout=30)
        if self._stopping.is_set():
            runner.hand_back()  # claimed while stopping: give it straight back
        runner.start()

    def _runner_done(self, runner: JobRunner) -> None:
        with self._slot_freed:
            if self.runners.get((runner.job_id, runner.attempt)) is runner:
                del self.runners[(runner.job_id, runner.attempt)]
            self.completed.append(runner)
            self._slot_freed.notify_all()

    # -- stopping ----------------------------------------------------------------------------

    def _drain(self) -> None:
        """Let batch jobs finish within the grace period; hand back the rest."""
        with self._lock:
            runners = list(self.runners.values())
        for runner in runners:
            if runner.live:
                runner.hand_back()
        deadline = time.monotonic() + self.config.grace_s
        with self._slot_freed:
            while self.runners and not self._hand_back_now.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._slot_freed.wait(min(remaining, 0.5))
        self._hand_back_all()

    def _hand_back_all(self) -> None:
        with self._lock:
            runners = list(self.runners.values())
        for runner in runners:
            runner.hand_back()
        for runner in runners:
            runner.join(timeout=self.config.result_retry_s + 30)

    def _deregister(self) -> None:
        try:
            answer = self.client.deregister(self.node_id)
            log.info("deregistered %s (requeued: %s)", self.node_id, answer.get("evicted") or [])
        except (MasterError, MasterUnavailableError) as exc:
            log.warning("deregistration failed: %s", exc)
        self._removed.set()
