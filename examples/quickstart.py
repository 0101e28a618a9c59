"""``python -m examples.quickstart``: the whole system on one machine in well under a minute.

It starts a master and two workers on loopback (real processes, fresh random keys), an
RTMP receiver (ffmpeg's own ``-listen 1`` server), submits a handful of jobs that transcode
generated test clips (H.264 at two sizes, HEVC, AV1, an HLS ladder and one live RTMP push),
shows progress while they run, prints a summary table and where the outputs are, and stops
everything it started. It exits 1 if any job did not complete.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from examples.cli import APIClient, MasterError, format_table, human_size
from examples.common.ffmpeg import (
    FFmpegNotFoundError,
    find_ffmpeg,
    probe,
    rtmp_receiver_command,
)

REPO = Path(__file__).resolve().parents[1]

#: The jobs the quickstart submits: (label, spec without the live output URL).
JOBS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("480p H.264", {"scenario": "480p-h264", "input": {"type": "testsrc", "duration": 4}}),
    ("720p H.264", {"scenario": "720p-h264", "input": {"type": "testsrc", "duration": 4}}),
    ("720p HEVC", {"scenario": "720p-h265", "input": {"type": "testsrc", "duration": 2}}),
    ("720p AV1", {"scenario": "720p-av1", "input": {"type": "testsrc", "duration": 2}}),
    ("HLS ladder", {"scenario": "hls-ladder", "input": {"type": "testsrc", "duration": 4}}),
    (
        "live RTMP",
        {
            "scenario": "live-rtmp",
            "input": {"type": "testsrc", "duration": 4},
            "overrides": {"resolution": "640x360", "bitrate": "800k"},
        },
    ),
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """A process the quickstart started, with its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (workers drain and deregister), then SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class Cluster:
    """Starts and stops the master, the workers and the RTMP receiver."""

    def __init__(self, work: Path, ffmpeg: str) -> None:
        self.work = work
        self.ffmpeg = ffmpeg
        self.children: list[Child] = []
        self.api_key = secrets.token_urlsafe(24)
        self.worker_key = secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.rtmp_url = f"rtmp://127.0.0.1:{_free_port()}/live/{secrets.token_hex(8)}"
        self.received = work / "live" / "received.flv"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        env["FFMPEG_BINARY"] = self.ffmpeg
        # Keys go through the environment, not argv, so `ps` does not show them.
        env["FFRTMP_API_KEY"] = self.api_key
        env["FFRTMP_WORKER_KEY"] = self.worker_key
        if not env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            env["OTEL_SDK_DISABLED"] = "true"  # no collector configured: no export attempts
        return env

    def _spawn(self, name: str, argv: Sequence[str]) -> Child:
        log = self.work / "logs" / f"{name}.log"
        with log.open("wb") as handle:
            proc = subprocess.Popen(  # noqa: S603 (argv list, no shell)
                list(argv),
                cwd=REPO,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def start(self, workers: int, *, rtmp: bool = True, worker_args: Sequence[str] = ()) -> None:
        """Start the master, wait for it, then the RTMP receiver (if wanted) and the workers.

        ``worker_args`` are extra ``python -m examples.worker`` flags (the benchmark uses it).
        """
        (self.work / "logs").mkdir(parents=True)
        port = self.url.rsplit(":", 1)[1]
        master = self._spawn(
            "master",
            [
                sys.executable,
                "-m",
                "examples.master",
                "--port",
                port,
                "--db",
                str(self.work / "master.db"),
                "--log-level",
                "warning",
                "--heartbeat-interval",
                "1",
                "--heartbeat-timeout",
                "5",
                # the live job pushes to the local receiver; nothing else may be a live target
                "--rtmp-allow",
                self.rtmp_url.split("/")[2],
            ],
        )
        self._wait_healthy(master)
        if rtmp:
            self._start_receiver()
        for n in range(1, workers + 1):
            self._spawn(
                f"node-{n}",
                [
                    sys.executable,
                    "-m",
                    "examples.worker",
                    "--master",
                    self.url,
                    "--output-dir",
                    str(self.work / f"node-{n}"),
                    "--node-id",
                    f"node-{n}",
                    "--claim-wait",
                    "3",  # short long-polls: a stopping worker waits for its last one
                    "--log-level",
                    "WARNING",
                    *worker_args,
                ],
            )

    def _start_receiver(self) -> None:
        self.received.parent.mkdir()
        self._spawn(
            "rtmp-receiver",
            rtmp_receiver_command(self.ffmpeg, self.rtmp_url, self.received, timeout_s=120),
        )
        self._wait_listening(int(self.rtmp_url.split(":")[2].split("/")[0]))

    def _wait_healthy(self, master: Child, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if master.proc.poll() is not None:
                raise RuntimeError(f"the master exited early; see {master.log}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the master did not become healthy in {timeout:.0f}s")

    @staticmethod
    def _wait_listening(port: int, timeout: float = 30.0) -> None:
        """Wait for the RTMP receiver to listen, without connecting (it accepts only one)."""
        tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
        if not tables[0].exists():  # not Linux: the workers' start-up gives it ample time
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for table in tables:
                with contextlib.suppress(OSError):
                    for line in table.read_text().splitlines()[1:]:
                        local, state = line.split()[1], line.split()[3]
                        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                            return
            time.sleep(0.05)
        raise RuntimeError(f"the RTMP receiver did not listen on port {port}")

    def wait_for_nodes(self, count: int, client: APIClient, timeout: float = 60.0) -> None:
        """Wait until ``count`` workers are registered and online."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            online = [n for n in client.nodes() if n["status"] == "online"]
            if len(online) >= count:
                return
            for child in self.children:
                if child.name.startswith("node-") and child.proc.poll() is not None:
                    raise RuntimeError(f"{child.name} exited early; see {child.log}")
            time.sleep(0.1)
        raise RuntimeError(f"{count} workers did not register in {timeout:.0f}s")

    def stop(self, *, hand_back: bool = False) -> None:
        """Stop the workers together (they drain and deregister), then everything else.

        ``hand_back``: signal the workers twice, so running jobs are handed back at once
        instead of being allowed to finish (used when giving up or interrupted).
        """
        workers = [c for c in self.children if c.name.startswith("node-")]
        for child in workers:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        if hand_back:
            time.sleep(0.2)  # let the first signal register as "drain" before the second
            for child in workers:
                if child.proc.poll() is None:
                    child.proc.send_signal(signal.SIGTERM)
        for child in workers + [c for c in self.children if c not in workers]:
            child.stop()


def _status_line(elapsed: float, jobs: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    parts = []
    for job_id, job in jobs.items():
        status = job["status"]
        percent = (job.get("progress") or {}).get("percent")
        if status == "running" and percent is not None:
            parts.append(f"{labels[job_id]} {percent:.0f}%")
        elif status not in ("queued", "assigned"):
            parts.append(f"{labels[job_id]} {status}")
    waiting = sum(1 for j in jobs.values() if j["status"] in ("queued", "assigned"))
    if waiting:
        parts.append(f"{waiting} waiting")
    return f"[{elapsed:5.1f}s] " + " | ".join(parts)


def _watch(client: APIClient, ids: dict[str, str], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll the jobs, printing a status line when something changes, until all end."""
    started = time.monotonic()
    last_line = ""
    jobs: dict[str, dict[str, Any]] = {}
    while True:
        jobs = {job_id: client.job(job_id) for job_id in ids}
        line = _status_line(time.monotonic() - started, jobs, ids)
        if line.split("] ", 1)[1] != last_line.split("] ", 1)[-1]:
            print(line, flush=True)
            last_line = line
        if all(j["status"] in ("completed", "failed", "canceled") for j in jobs.values()):
            return jobs
        if time.monotonic() - started > timeout:
            print(f"giving up after {timeout:.0f}s", flush=True)
            return jobs
        time.sleep(0.25)


def _summary(jobs: dict[str, dict[str, Any]], labels: dict[str, str], received: Any) -> str:
    rows = []
    for job_id, job in jobs.items():
        result = job.get("result") or {}
        size = sum(o["size"] for o in result.get("outputs") or [])
        if job["scenario"] == "live-rtmp" and received is not None:
            size = received
        duration = result.get("media_duration_s")
        speed = result.get("speed")
        rows.append(
            [
                job_id[:8],
                labels[job_id],
                job.get("node_id") or "-",
                job["scenario"],
                job["status"],
                f"{duration:.2f} s" if duration is not None else "-",
                f"{speed:.1f}x" if speed else "-",
                human_size(size) if size else "-",
            ]
        )
    headers = ("job", "what", "node", "scenario", "status", "duration", "speed", "output size")
    return format_table(headers, rows)


def _workdir(requested: Path | None) -> Path:
    """The output directory: ``--out`` (must be empty) or a new temporary directory."""
    if requested is None:
        return Path(tempfile.mkdtemp(prefix="ffrtmp-quickstart-"))
    if requested.exists() and any(requested.iterdir()):
        raise SystemExit(f"--out {requested} must be empty or absent")
    requested.mkdir(parents=True, exist_ok=True)
    return requested.resolve()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns 0 when every job completed."""
    parser = argparse.ArgumentParser(prog="python -m examples.quickstart", description=__doc__)
    parser.add_argument("--out", type=Path, help="where outputs and logs go (default: a temp dir)")
    parser.add_argument("--workers", type=int, default=2, help="workers to start (default 2)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    try:
        ffmpeg = find_ffmpeg()
    except FFmpegNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    began = time.monotonic()
    work = _workdir(args.out)
    cluster = Cluster(work, ffmpeg)
    labels: dict[str, str] = {}
    jobs: dict[str, dict[str, Any]] = {}
    try:
        print(f"starting a master and {args.workers} workers on loopback ({cluster.url})")
        cluster.start(args.workers)
        with APIClient(cluster.url, api_key=cluster.api_key) as client:
            cluster.wait_for_nodes(args.workers, client)
            print(f"cluster up in {time.monotonic() - began:.1f} s")
            for label, spec in JOBS:
                if spec["scenario"] == "live-rtmp":
                    spec = {**spec, "output": {"url": cluster.rtmp_url}}
                job = client.submit(spec)
                labels[job["id"]] = label
            print(f"submitted {len(labels)} jobs; progress:")
            jobs = _watch(client, labels, args.timeout)
    except (RuntimeError, MasterError, httpx.HTTPError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted: stopping everything", file=sys.stderr)
    finally:
        unfinished = not jobs or any(
            j["status"] not in ("completed", "failed", "canceled") for j in jobs.values()
        )
        cluster.stop(hand_back=unfinished)
    received_size = None
    if cluster.received.is_file() and cluster.received.stat().st_size > 0:
        received_size = cluster.received.stat().st_size
        with contextlib.suppress(ValueError):
            seconds = probe(ffmpeg, str(cluster.received)).duration_s or 0.0
            print(f"the RTMP receiver got {seconds:.2f} s of live video")
    if jobs:
        print()
        print(_summary(jobs, labels, received_size))
    print()
    print(f"outputs: {work}/node-*/<job>/   live: {cluster.received}   logs: {work}/logs/")
    ok = bool(jobs) and all(j["status"] == "completed" for j in jobs.values())
    print(
        f"{'all jobs completed' if ok else 'SOME JOBS DID NOT COMPLETE'} "
        f"in {time.monotonic() - began:.1f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
