"""The resources compatibility shim, forced onto its fallback, against a real redis-server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ffrtmp_infra.resources import RedisBackend, ResourceManager, _compat
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis


# A newer redis-py's close() is a deprecated alias of aclose(): either closes.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_asyncio_client_without_aclose_is_closed_with_close(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    monkeypatch.setattr(_compat, "_warned", set())
    monkeypatch.setattr(_compat, "_aclose", lambda client: None)  # as redis-py < 5.0.1
    manager = ResourceManager(RedisBackend(redis_server.url, prefix=f"c-{uuid.uuid4().hex}"))

    async def main() -> str:
        await manager.aregister_node("n", cpu=2)
        reserved = (await manager.areserve("j", "n", cpu=1)).node_id
        with pytest.warns(RuntimeWarning, match=r"aclose\(\) is missing"):
            await manager.aclose()
        return reserved

    assert asyncio.run(main()) == "n"
    # A later loop makes its own client and sees the same ledger.
    assert asyncio.run(manager.aget_reservation("j")) is not None
    manager.close()
