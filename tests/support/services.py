"""Finding service binaries and deciding whether a missing one skips or fails."""

from __future__ import annotations

import os
import socket

import pytest

REQUIRE_ENV = "FFRTMP_REQUIRE_SERVICES"


def services_required() -> bool:
    """True when FFRTMP_REQUIRE_SERVICES=1: a missing service fails instead of skipping."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip the test with ``reason``, or fail it when services are required (CI)."""
    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so this is a failure, not a skip)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
