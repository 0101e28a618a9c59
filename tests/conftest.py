"""Fixtures that start real services: redis-server, PostgreSQL, ffmpeg, OTLP receivers
and a collector.

Where a service is missing its tests skip with the reason, unless
FFRTMP_REQUIRE_SERVICES=1 (as in CI), where they fail instead.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.support.ffmpeg import FFmpeg, find_ffmpeg
from tests.support.otlp import OTLPReceiver
from tests.support.postgres import PostgresServer
from tests.support.redis_server import RedisServer, find_redis_server
from tests.support.rotel import RotelCollector, find_rotel
from tests.support.services import unavailable


def _redis_binary() -> str:
    binary = find_redis_server()
    if binary is None:
        unavailable("redis-server is not on PATH (apt-get install redis-server)")
    assert binary is not None
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("redis-py is not installed (pip install 'ffrtmp-infra[redis]')")
    return binary


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole session (use ``redis_url`` for a clean database)."""
    server = RedisServer(_redis_binary())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, after FLUSHALL (and a restart if a test killed it)."""
    redis_server.start()
    client = redis_server.client()
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, free to be killed and restarted."""
    server = RedisServer(_redis_binary())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ffmpeg() -> FFmpeg:
    path = find_ffmpeg()
    if path is None:
        unavailable("no ffmpeg: set FFMPEG_BINARY, put ffmpeg on PATH or install imageio-ffmpeg")
    assert path is not None
    return FFmpeg(path)


@pytest.fixture
def otlp_receiver() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A database of this session's own on 127.0.0.1:5432, else on a private server."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install --group examples)")
    server = PostgresServer()
    try:
        server.start()
    except (OSError, KeyError, subprocess.CalledProcessError) as exc:
        unavailable(f"PostgreSQL could not be started: {exc} (apt-get install postgresql)")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The session database's URL, emptied for this test."""
    postgres_server.reset()
    return postgres_server.url


@pytest.fixture
def rotel(otlp_receiver: OTLPReceiver) -> Iterator[RotelCollector]:
    """A real OTLP collector (rotel) on free loopback ports, forwarding to ``otlp_receiver``."""
    binary = find_rotel()
    if binary is None:
        unavailable("no rotel collector: pip install rotel (test group), or set ROTEL_AGENT")
    assert binary is not None
    collector = RotelCollector(binary, otlp_receiver)
    collector.start()
    yield collector
    collector.stop()
