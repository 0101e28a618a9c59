"""Slow and idle connections cannot take the master down (issue 14, finding 1).

Loopback only, bounded loops; the only timing asserted is the contract's: /health answers
within 2 s (an httpx timeout, not a measured wall time).
"""

from __future__ import annotations

import contextlib
import resource
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from examples.master.connguard import ConnectionGuard

from tests.examples.conftest import MasterFactory

HALF_OPEN_HEAD = b"POST /jobs HTTP/1.1\r\nHost: x\r\n"


@contextlib.contextmanager
def half_open(port: int, count: int, source: str = "127.0.0.2") -> Iterator[list[socket.socket]]:
    """``count`` connections from ``source`` that send part of a request head, then nothing."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.bind((source, 0))
            try:
                sock.connect(("127.0.0.1", port))
                sock.sendall(HALF_OPEN_HEAD)
            except OSError:
                pass  # refused or reset by the guard: that is the point
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def descriptor_limit(soft: int) -> Iterator[None]:
    """Children started inside get a soft ``RLIMIT_NOFILE`` of ``soft`` (a common default)."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, old[1]), old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


def _health(url: str) -> int:
    with httpx.Client(timeout=2, transport=httpx.HTTPTransport(local_address="127.0.0.1")) as c:
        return c.get(f"{url}/health").status_code


@pytest.mark.slow
def test_1500_half_open_connections_do_not_stop_health(start_master: MasterFactory) -> None:
    with descriptor_limit(1024):  # where the probe ran out: 1,005 sockets held
        master = start_master()
    with half_open(master.port, 1500):
        assert _health(master.url) == 200
        time.sleep(20)  # the contract: still answering 20 s later (heads have timed out)
        assert _health(master.url) == 200
    assert "refusing connections over the cap" in master.process.log()  # type: ignore[union-attr]


def test_an_incomplete_request_head_is_closed_after_the_header_timeout(
    start_master: MasterFactory,
) -> None:
    master = start_master("--header-timeout", "0.5")
    with half_open(master.port, 1, source="127.0.0.1") as [sock]:
        sock.settimeout(30)
        try:
            closed = sock.recv(1) == b""
        except ConnectionResetError:
            closed = True
    assert closed


def test_a_peer_over_its_connection_cap_is_refused_but_others_are_served(
    start_master: MasterFactory,
) -> None:
    master = start_master("--max-connections-per-client", "5", "--header-timeout", "60")
    with half_open(master.port, 8) as sockets:
        closed: set[socket.socket] = set()
        deadline = time.monotonic() + 5  # refusals are immediate; admitted ones stay open
        while time.monotonic() < deadline:
            waiting = [s for s in sockets if s not in closed]
            readable, _, _ = select.select(waiting, [], [], 0.2)
            closed.update(readable)  # readable with nothing sent back = closed or reset
        assert len(closed) == 3
        assert _health(master.url) == 200


def test_guard_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="max_per_client"):
        ConnectionGuard(max_per_client=0)
    with pytest.raises(ValueError, match="header_timeout"):
        ConnectionGuard(header_timeout=0)
    guard = ConnectionGuard(max_connections=2, max_per_client=1, trusted_proxies=["10.0.0.0/8"])
    assert guard.admit("10.1.1.1")
    assert guard.admit("10.1.1.1")  # a trusted proxy is held only to the global cap
    assert not guard.admit("192.0.2.1")
    guard.release("10.1.1.1")
    assert guard.admit("192.0.2.1")
    assert not guard.admit("10.1.1.1")
