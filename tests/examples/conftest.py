"""Fixtures for the reference examples: a fake master, worker processes, RTMP receivers."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.cli import APIClient
from examples.common.ffmpeg import rtmp_receiver_command
from examples.master.store import SCHEMA_VERSION, Store, open_store
from examples.worker.client import tls_context

from tests.examples.fake_master import FakeMaster
from tests.examples.helpers import Process, port_listening, start_python, wait_until
from tests.support.ffmpeg import FFmpeg
from tests.support.servers import serve_asgi
from tests.support.services import free_port


@pytest.fixture
def fake_master() -> Iterator[tuple[FakeMaster, str]]:
    """A fake master (worker protocol only) under real uvicorn; yields it and its URL."""
    master = FakeMaster()
    with serve_asgi(master.app) as url:
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
        local_inputs: bool = True,
    ) -> Process:
        """``local_inputs``: allow http inputs from 127.0.0.1 (where test clips are served)."""
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
            "1",
            "--progress-interval",
            "0.25",
            "--log-level",
            "DEBUG",
            *(("--allow-input-host", "127.0.0.1") if local_inputs else ()),
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
    for process in started:  # all at once: each drains and deregisters in parallel
        process.signal(signal.SIGTERM)
    for process in started:
        process.stop()


class RTMPReceiver:
    """ffmpeg's own RTMP server (``-listen 1``) receiving one stream into a file."""

    def __init__(self, ffmpeg: FFmpeg, out: Path) -> None:
        port = free_port()
        self.url = f"rtmp://127.0.0.1:{port}/live/stream-key"
        self.path = out
        self.proc = subprocess.Popen(
            rtmp_receiver_command(ffmpeg.path, self.url, out),
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


# --- the real master, as a subprocess ------------------------------------------------------


class MasterProcess:
    """``python -m examples.master`` on a fixed loopback port, restartable on the same DB."""

    def __init__(
        self,
        tmp_path: Path,
        extra: Sequence[str] = (),
        env: dict[str, str] | None = None,
        db: str | None = None,
    ) -> None:
        self.port = free_port()
        self.db = db or str(tmp_path / "master.db")
        self.api_key = "submitter-" + secrets.token_hex(12)
        self.worker_key = "worker-" + secrets.token_hex(12)
        self.extra = list(extra)
        # no collector in most tests: keep the exporter from retrying against localhost:4318
        tracing = "--otlp-endpoint" in self.extra
        self.extra_env = {**({} if tracing else {"OTEL_SDK_DISABLED": "true"}), **(env or {})}
        self.log_path = tmp_path / "master.log"
        self.scheme = "https" if "--tls-cert" in self.extra else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.process: Process | None = None
        self.client_options: dict[str, Any] = {}

    @property
    def env(self) -> dict[str, str]:
        return {"FFRTMP_API_KEY": self.api_key, "FFRTMP_WORKER_KEY": self.worker_key}

    def start(self) -> MasterProcess:
        args = [
            "--port",
            str(self.port),
            "--db",
            self.db,
            "--log-level",
            "info",
            "--heartbeat-interval",
            "0.5",
            "--heartbeat-timeout",
            "3",
            "--retry-backoff",
            "0.2",
            "--retry-backoff-max",
            "1",
            *self.extra,
        ]
        self.process = start_python(
            "examples.master", args, self.log_path, env={**self.env, **self.extra_env}
        )
        wait_until(self._healthy, timeout=60, what="the master's /health")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if not self.process.alive():
            raise AssertionError(f"the master exited: {self.process.log()[-3000:]}")
        verify: Any = True
        if self.scheme == "https":
            verify = tls_context(
                self.client_options.get("ca_cert"),
                self.client_options.get("client_cert"),
                self.client_options.get("client_key"),
            )
        try:
            return httpx.get(f"{self.url}/health", timeout=2, verify=verify).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: the harshest restart (no graceful shutdown)."""
        assert self.process is not None
        self.process.signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def client(self) -> APIClient:
        return APIClient(self.url, api_key=self.api_key, **self.client_options)


MasterFactory = Callable[..., MasterProcess]


@pytest.fixture
def start_master(tmp_path: Path) -> Iterator[MasterFactory]:
    """Start real masters (``start_master("--flag", ...)``); all are stopped at teardown."""
    masters: list[MasterProcess] = []

    def start(
        *extra: str,
        client_options: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        db: str | None = None,
    ) -> MasterProcess:
        """``db``: the ``--db`` (default: a SQLite file in the test's directory)."""
        master = MasterProcess(tmp_path, extra, env, db)
        master.client_options = client_options or {}
        masters.append(master)
        return master.start()

    yield start
    for master in masters:
        master.stop()


class SlowClipServer:
    """Serves one MPEG-TS clip over HTTP at a fixed byte rate (a slow network source).

    A transcode reading it lasts as long as the download, whatever the CPU: this makes a
    job "mid-transcode" for seconds without burning the shared cores.
    """

    def __init__(self, data: bytes, bytes_per_second: int) -> None:
        self.data = data
        self.rate = bytes_per_second

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"video/mp2t")],
                }
            )
            chunk = max(1, self.rate // 10)
            for start in range(0, len(self.data), chunk):
                await send(
                    {
                        "type": "http.response.body",
                        "body": self.data[start : start + chunk],
                        "more_body": True,
                    }
                )
                # pace the stream; stop as soon as the reader goes away (ffmpeg killed)
                with contextlib.suppress(TimeoutError):
                    message = await asyncio.wait_for(receive(), timeout=0.1)
                    if message["type"] == "http.disconnect":
                        return
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        self.app = app


@pytest.fixture
def slow_clip(ffmpeg: FFmpeg, tmp_path: Path) -> Iterator[Callable[[float, float], str]]:
    """``slow_clip(seconds, serve_seconds)``: URL of a clip served over ``serve_seconds``."""
    stack = contextlib.ExitStack()

    def make(seconds: float, serve_seconds: float) -> str:
        path = tmp_path / f"slow-{seconds}.ts"
        ffmpeg.run(
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=320x240:rate=25:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-f",
            "mpegts",
            str(path),
        )
        data = path.read_bytes()
        server = SlowClipServer(data, max(1, int(len(data) / serve_seconds)))
        base = stack.enter_context(serve_asgi(server.app))
        return f"{base}/clip.ts"

    yield make
    stack.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The master's ``--db``, once per store: a SQLite file, then an empty PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "master.db")
    return str(request.getfixturevalue("postgres_url"))


StoreOpener = Callable[[str], Store]


@pytest.fixture
def open_db() -> Iterator[StoreOpener]:
    """``open_db(db)``: the store ``db`` names; every one opened is closed at teardown."""
    opened: list[Store] = []

    def opener(db: str) -> Store:
        store = open_store(db)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


def mark_schema_newer(db: str) -> int:
    """Record a migration from the future in ``db``; returns its version."""
    store = open_store(db)
    try:
        with store.batch():
            store._run(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                (SCHEMA_VERSION + 1, "from the future", 0.0),
            )
    finally:
        store.close()
    return SCHEMA_VERSION + 1
