"""Collectors that misbehave, on real loopback sockets, for the bounded-shutdown tests.

* ``refused``: a port where nothing listens (the connection is refused at once);
* ``silent``: accepts connections and never answers;
* ``slow``: a real OTLP server (HTTP or gRPC) that answers after ``delay`` seconds;
* ``tls``: speaks TLS where the exporter expects plaintext (every handshake fails).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

from tests.support.otlp import OTLPReceiver, grpc_trace_collector
from tests.support.services import free_port

CASES = ("refused", "silent", "slow", "tls")
PROTOCOLS = ("http/protobuf", "grpc")


class _Acceptor:
    """Accepts connections on a thread and hands each to ``handle``; bounded by ``stop``."""

    def __init__(self, handle: Any) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = int(self.server.getsockname()[1])
        self.held: list[socket.socket] = []
        self._handle = handle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._handle(self, conn)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.server.close()


def _hold(acceptor: _Acceptor, conn: socket.socket) -> None:
    acceptor.held.append(conn)  # read nothing, answer nothing


def _tls_handler(context: ssl.SSLContext) -> Any:
    def handle(acceptor: _Acceptor, conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            with context.wrap_socket(conn, server_side=True):
                pass  # a plaintext client never completes the handshake
        except (OSError, ssl.SSLError):
            conn.close()

    return handle


def _tls_context() -> ssl.SSLContext:
    import trustme

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    return context


@contextlib.contextmanager
def _slow_http(delay: float) -> Iterator[int]:
    receiver = OTLPReceiver(delay=delay)
    receiver.start()
    try:
        yield receiver.port
    finally:
        receiver.stop()


@contextlib.contextmanager
def _slow_grpc(delay: float) -> Iterator[int]:
    release = threading.Event()  # set at exit, so no server thread outlives the test
    try:
        with grpc_trace_collector(lambda request: release.wait(delay)) as port:
            yield port
    finally:
        release.set()


@contextlib.contextmanager
def misbehaving_collector(case: str, protocol: str, *, delay: float = 8.0) -> Iterator[str]:
    """Start the ``case`` collector for ``protocol``; yields its ``127.0.0.1:port``."""
    if case == "refused":
        yield f"127.0.0.1:{free_port()}"
        return
    if case == "slow":
        slow = _slow_grpc if protocol == "grpc" else _slow_http
        with slow(delay) as port:
            yield f"127.0.0.1:{port}"
        return
    handle = _hold if case == "silent" else _tls_handler(_tls_context())
    acceptor = _Acceptor(handle)
    try:
        yield f"127.0.0.1:{acceptor.port}"
    finally:
        acceptor.stop()
