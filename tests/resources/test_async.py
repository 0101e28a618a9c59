"""The async methods on a whole scenario, and on Redis only through the asyncio client.

tests/test_twins.py compares each async method with its sync twin on the same inputs.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
import warnings

import pytest

from ffrtmp_infra.resources import (
    InsufficientResourcesError,
    NoNodeAvailableError,
    RedisBackend,
    ResourceError,
    ResourceManager,
    UnknownNodeError,
)
from ffrtmp_infra.resources._compat import async_close
from tests.support.redis_server import RedisServer

from .conftest import MakeManager
from .invariants import check_invariants


async def _exercise(manager: ResourceManager) -> None:
    result = await manager.aregister_node("n1", cpu=4, gpu=1, ram_gb=8, labels={"zone": "a"})
    assert result.node.allocatable.cpu_milli == 4000
    await manager.aregister_node("n2", cpu=2, ram_gb=4)
    res = await manager.areserve("a", "n1", cpu=2, gpu=1)
    assert res.gpu_devices == (0,)
    assert await manager.areserve("a", "n1", cpu=2, gpu=1) == res
    with pytest.raises(InsufficientResourcesError):
        await manager.areserve("b", "n2", cpu=3)
    any_res = await manager.areserve_any("c", cpu=1, selector={"zone": "a"})
    assert any_res.node_id == "n1"
    assert await manager.aget_available_nodes(cpu=2) == ["n2"]
    await manager.adrain("n2")
    with pytest.raises(NoNodeAvailableError):
        await manager.areserve_any("d", cpu=2)
    assert not (await manager.aundrain("n2")).draining
    assert (await manager.aget_node("n1")).reservations == 2
    assert await manager.aget_reservation("c") == any_res
    assert await manager.arelease("a") == res
    assert await manager.arelease("a") is None
    evicted = await manager.aunregister_node("n1")
    assert [r.job_id for r in evicted] == ["c"]
    with pytest.raises(UnknownNodeError):
        await manager.aget_node("n1")
    check_invariants(await manager.asnapshot())


def test_async_methods_run_a_whole_scenario(make_manager: MakeManager) -> None:
    manager = make_manager()

    async def main() -> None:
        await _exercise(manager)
        await manager.aclose()  # closes the asyncio client on the loop that opened it

    asyncio.run(main())


@pytest.mark.redis
def test_async_twins_on_an_asyncio_client_never_touch_a_sync_client(
    redis_server: RedisServer,
) -> None:
    import redis.asyncio as aioredis

    async def main() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        manager = ResourceManager(RedisBackend(client, prefix=f"aio-{uuid.uuid4().hex}"))
        await _exercise(manager)
        # Only the async path exists on this backend: a sync call says so.
        with pytest.raises(ResourceError, match="asyncio client"):
            manager.get_node("n2")
        # Many concurrent reservations interleave on one loop without over-committing.
        await manager.aregister_node("big", cpu=10)
        results = await asyncio.gather(
            *(manager.areserve_any(f"j{i}", cpu=1) for i in range(15)), return_exceptions=True
        )
        assert sum(not isinstance(r, BaseException) for r in results) == 12  # n2: 2, big: 10
        assert sum(isinstance(r, NoNodeAvailableError) for r in results) == 3
        check_invariants(await manager.asnapshot())
        await manager.aclose()
        await async_close(client)  # aclose(), or close() before redis-py 5.0.1

    asyncio.run(main())


@pytest.mark.redis
def test_a_url_backend_works_across_event_loops(redis_server: RedisServer) -> None:
    # asyncio.run() twice (or one loop per test) must not reuse the first loop's sockets.
    manager = ResourceManager(RedisBackend(redis_server.url, prefix=f"loops-{uuid.uuid4().hex}"))

    async def first() -> str:
        await manager.aregister_node("n", cpu=2)
        return (await manager.areserve_any("j", cpu=1)).node_id

    async def second() -> object:
        released = await manager.arelease("j")
        await manager.aclose()
        return released

    assert asyncio.run(first()) == "n"
    assert asyncio.run(second()) is not None
    # The first loop's client was left open on purpose (that loop is gone); collect it
    # here rather than let its ResourceWarning land in some later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
