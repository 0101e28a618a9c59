"""Fixtures for the reference examples: a fake master, worker processes, RTMP receivers."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.examples.fake_master import FakeMaster, serve
from tests.examples.helpers import Process, port_listening, start_python, wait_until
from tests.support.ffmpeg import FFmpeg
from tests.support.services import free_port


@pytest.fixture
def fake_master() -> Iterator[tuple[FakeMaster, str]]:
    """A fake master (worker protocol only) under real uvicorn; yields it and its URL."""
    master = FakeMaster()
    with serve(master.app) as url:
        yield master, url


WorkerFactory = Callable[..., Process]


@pytest.fixture
def start_worker(tmp_path: Path, ffmpeg: FFmpeg) -> Iterator[WorkerFactory]:
    """Start ``python -m examples.worker`` processes; all are stopped at teardown."""
    started: list[Process] = []

    def start(
        master_url: str,
        *extra: str,
        name: str = "w1",
        cpu: float = 2,
        env: dict[str, str] | None = None,
    ) -> Process:
        out = tmp_path / name / "out"
        out.mkdir(parents=True, exist_ok=True)
        args = [
            "--master",
            master_url,
            "--output-dir",
            str(out),
            "--node-id",
            name,
            "--cpu",
            str(cpu),
            "--ram-gb",
            "4",
            "--claim-wait",
            "2",
            "--progress-interval",
            "0.25",
            "--log-level",
            "DEBUG",
            *extra,
        ]
        process = start_python(
            "examples.worker",
            args,
            tmp_path / f"{name}.log",
            env={"FFMPEG_BINARY": ffmpeg.path, **(env or {})},
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


_RECEIVER_OPTS = [
    "-hide_banner",
    "-nostdin",
    "-loglevel",
    "error",
    "-listen",
    "1",
    "-timeout",
    "60",
]


class RTMPReceiver:
    """ffmpeg's own RTMP server (``-listen 1``) receiving one stream into a file."""

    def __init__(self, ffmpeg: FFmpeg, out: Path) -> None:
        port = free_port()
        self.url = f"rtmp://127.0.0.1:{port}/live/stream-key"
        self.path = out
        self.proc = subprocess.Popen(
            [ffmpeg.path, *_RECEIVER_OPTS, "-i", self.url, "-c", "copy", "-y", str(out)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_until(lambda: port_listening(port), timeout=30, what=f"RTMP receiver on {port}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def rtmp_receiver(ffmpeg: FFmpeg, tmp_path: Path) -> Iterator[Callable[[], RTMPReceiver]]:
    """Factory for RTMP receivers on free loopback ports; all are killed at teardown."""
    receivers: list[RTMPReceiver] = []

    def make() -> RTMPReceiver:
        receiver = RTMPReceiver(ffmpeg, tmp_path / f"received-{len(receivers)}.flv")
        receivers.append(receiver)
        return receiver

    yield make
    for receiver in receivers:
        receiver.stop()
