"""A real OpenTelemetry collector (rotel, from the package index) on free loopback ports.

rotel receives OTLP over gRPC and HTTP, as any collector would, and forwards what it
received over OTLP/HTTP (gzip) to an :class:`OTLPReceiver`, which decodes it: the tests
read what the collector received from there.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.otlp import OTLPReceiver
from tests.support.services import free_port

BINARY_ENV = "ROTEL_AGENT"


def find_rotel() -> str | None:
    """``$ROTEL_AGENT``, the agent inside the ``rotel`` wheel, or ``rotel-agent`` on PATH."""
    configured = os.environ.get(BINARY_ENV)
    if configured:
        return configured
    try:
        agent = importlib.resources.files("rotel") / "rotel-agent"
    except ModuleNotFoundError:
        return shutil.which("rotel-agent")
    return str(agent) if agent.is_file() else shutil.which("rotel-agent")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class RotelCollector:
    """One rotel process: OTLP receivers on free ports, exporting into ``downstream``."""

    def __init__(self, binary: str, downstream: OTLPReceiver) -> None:
        self.binary = binary
        self.downstream = downstream
        self.grpc_port = free_port()
        self.http_port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="ffrtmp-rotel-")
        self.log_path = Path(self._dir.name) / "rotel.log"
        self._process: subprocess.Popen[bytes] | None = None

    def endpoint(self, protocol: str) -> str:
        """The base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT`` with ``protocol``."""
        port = self.grpc_port if protocol == "grpc" else self.http_port
        return f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 20.0) -> None:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    self.binary, "start",
                    "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc_port}",
                    "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
                    "--exporter", "otlp",
                    "--otlp-exporter-endpoint", self.downstream.endpoint,
                    "--otlp-exporter-protocol", "http",
                    "--otlp-exporter-compression", "gzip",
                    "--batch-timeout", "50ms",
                    "--pid-file", str(Path(self._dir.name) / "rotel.pid"),
                    "--log-file", str(Path(self._dir.name) / "rotel-daemon.log"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not (_listening(self.grpc_port) and _listening(self.http_port)):
            if self._process.poll() is not None:
                raise RuntimeError(f"rotel exited with {self._process.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rotel did not listen within {timeout}s: {self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._dir.cleanup()
