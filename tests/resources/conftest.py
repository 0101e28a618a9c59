"""Fixtures for the resource manager tests: the same tests run on every backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ffrtmp_infra.resources import MemoryBackend, RedisBackend, ResourceManager
from tests.ratelimit.conftest import FakeClock

BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]

MakeManager = Callable[..., ResourceManager]


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_manager(backend_name: str, request: pytest.FixtureRequest) -> Iterator[MakeManager]:
    """Builds managers on the parametrised backend; all share one store per test."""
    made: list[ResourceManager] = []

    def make(*, prefix: str | None = None, **kwargs: Any) -> ResourceManager:
        if backend_name == "memory":
            backend: Any = MemoryBackend(clock=FakeClock())
        else:
            # A fresh prefix per manager keeps Hypothesis examples apart; pass the same
            # prefix to model two masters sharing one ledger.
            url = request.getfixturevalue("redis_server").url
            backend = RedisBackend(url, prefix=prefix or f"t-{uuid.uuid4().hex[:12]}")
        manager = ResourceManager(backend, **kwargs)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


@pytest.fixture
def manager(make_manager: MakeManager) -> ResourceManager:
    return make_manager()


def advance(manager: ResourceManager, seconds: float) -> None:
    """Move the manager's ledger clock forward: the memory backend's fake clock, or the
    offset the Redis scripts add to server TIME."""
    backend: Any = manager.backend
    if isinstance(backend, MemoryBackend):
        backend._clock.advance(seconds)  # type: ignore[attr-defined]
    else:
        backend._clock_offset_ms += round(seconds * 1000)
