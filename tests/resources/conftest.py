"""Fixtures for the resource manager tests: the same tests run on every backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ffrtmp_infra.resources import MemoryBackend, ResourceManager

BACKENDS = ["memory"]

MakeManager = Callable[..., ResourceManager]


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_manager(backend_name: str, request: pytest.FixtureRequest) -> Iterator[MakeManager]:
    """Builds managers on the parametrised backend; all share one store per test."""
    made: list[ResourceManager] = []

    def make(**kwargs: Any) -> ResourceManager:
        if backend_name == "memory":
            backend: Any = MemoryBackend()
        else:
            from ffrtmp_infra.resources import RedisBackend

            backend = RedisBackend(request.getfixturevalue("redis_url"))
        manager = ResourceManager(backend, **kwargs)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


@pytest.fixture
def manager(make_manager: MakeManager) -> ResourceManager:
    return make_manager()
