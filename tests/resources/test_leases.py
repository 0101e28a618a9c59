"""Reservation leases: an owner and a TTL at reserve time, renewal, expiry that gives
everything back; on every backend (the memory backend on a fake clock, Redis with an
offset added to its server TIME)."""

from __future__ import annotations

import asyncio

import pytest

from ffrtmp_infra.resources import InvalidAmountError, ResourceManager

from .conftest import MakeManager, advance
from .invariants import check_invariants


@pytest.fixture
def m(make_manager: MakeManager) -> ResourceManager:
    manager = make_manager()
    manager.register_node("n1", cpu=4, gpu=2, ram_gb=8, extended={"nvenc": 2})
    manager.register_node("n2", cpu=2, ram_gb=4)
    return manager


def _full(manager: ResourceManager, node_id: str) -> bool:
    node = manager.get_node(node_id)
    return node.available == node.allocatable and node.reservations == 0


def test_a_lease_not_renewed_expires_and_the_node_gets_everything_back(
    m: ResourceManager,
) -> None:
    res = m.reserve("job", "n1", cpu=2, gpu=1, ram_gb=4, extended={"nvenc": 1},
                    owner="master-a", ttl=30)  # fmt: skip
    assert (res.owner, res.ttl) == ("master-a", 30.0)
    advance(m, 29.5)
    assert m.get_reservation("job") == res
    assert m.get_node("n1").used.gpu == 1
    advance(m, 0.5)
    assert m.get_reservation("job") is None
    assert _full(m, "n1")
    assert m.counters()["expired"] == 1
    # the capacity is really free: all of it can be reserved again
    m.reserve("next", "n1", cpu=4, gpu=2, ram_gb=8, extended={"nvenc": 2})
    check_invariants(m.snapshot())


def test_a_reservation_without_ttl_never_expires(m: ResourceManager) -> None:
    res = m.reserve("job", "n1", cpu=1)
    assert (res.owner, res.ttl) == (None, None)
    advance(m, 10 * 365 * 86400)
    assert m.get_reservation("job") == res
    assert m.expire() == []


def test_renew_pushes_the_deadline_from_now(m: ResourceManager) -> None:
    m.reserve("job", "n1", cpu=1, ttl=10)
    advance(m, 8)
    assert m.renew("job") is not None
    advance(m, 8)  # 16 s after reserving, 8 s after the renewal
    assert m.get_reservation("job") is not None
    advance(m, 2)
    assert m.get_reservation("job") is None


def test_renew_with_a_ttl_changes_the_lease_length(m: ResourceManager) -> None:
    m.reserve("job", "n1", cpu=1, ttl=10)
    assert m.renew("job", ttl=60).ttl == 60.0  # type: ignore[union-attr]
    advance(m, 59)
    assert m.renew("job") is not None  # its ttl is 60 now
    advance(m, 59)
    assert m.get_reservation("job") is not None


def test_renew_of_an_expired_or_unknown_job_returns_none(m: ResourceManager) -> None:
    m.reserve("job", "n1", cpu=1, ttl=5)
    advance(m, 5)
    assert m.renew("job") is None
    assert m.renew("never-reserved", ttl=5) is None


def test_renew_gives_a_plain_reservation_a_lease_only_when_asked(m: ResourceManager) -> None:
    plain = m.reserve("job", "n1", cpu=1)
    assert m.renew("job") == plain  # no ttl: nothing to renew, left as is
    assert m.renew("job", ttl=5).ttl == 5.0  # type: ignore[union-attr]
    advance(m, 5)
    assert m.get_reservation("job") is None


def test_renew_owner_renews_every_lease_of_that_owner_and_no_other(m: ResourceManager) -> None:
    m.reserve("a1", "n1", cpu=1, owner="a", ttl=10)
    m.reserve_any("a2", cpu=1, owner="a", ttl=20)
    m.reserve("b1", "n1", cpu=1, owner="b", ttl=10)
    m.reserve("anon", "n2", cpu=1, ttl=10)
    advance(m, 9)
    assert m.renew_owner("a") == ["a1", "a2"]
    advance(m, 9)  # a1 renewed for its own 10 s, a2 for its 20 s; b1 and anon expired
    assert sorted(m.snapshot().reservations) == ["a1", "a2"]
    assert m.renew_owner("b") == []
    assert m.renew_owner("a", ttl=100) == ["a1", "a2"]
    advance(m, 99)
    assert sorted(m.snapshot().reservations) == ["a1", "a2"]
    advance(m, 1)
    assert m.snapshot().reservations == {}
    assert m.renew_owner("a") == []


def test_expire_returns_what_expired_leases_held(m: ResourceManager) -> None:
    held = m.reserve("job", "n1", cpu=2, gpu=1, owner="a", ttl=1)
    m.reserve("other", "n2", cpu=1, ttl=100)
    advance(m, 1)
    assert m.expire() == [held]
    assert m.expire() == []
    assert m.counters()["expired"] == 1
    assert m.counters()["reserved"] == 2


def test_release_ends_the_lease(m: ResourceManager) -> None:
    held = m.reserve("job", "n1", cpu=1, owner="a", ttl=5)
    assert m.release("job") == held
    assert m.renew_owner("a") == []
    advance(m, 10)
    assert m.expire() == []
    assert m.counters()["expired"] == 0
    assert m.counters()["released"] == 1


def test_release_after_expiry_returns_none(m: ResourceManager) -> None:
    m.reserve("job", "n1", cpu=1, ttl=5)
    advance(m, 5)
    assert m.release("job") is None
    assert m.counters()["released"] == 0


def test_reserving_again_with_a_ttl_renews_and_takes_over_the_lease(m: ResourceManager) -> None:
    m.reserve("job", "n1", cpu=1, owner="dead-master", ttl=10)
    advance(m, 9)
    res = m.reserve("job", "n1", cpu=1, owner="new-master", ttl=10)
    assert (res.owner, res.ttl) == ("new-master", 10.0)
    assert m.renew_owner("dead-master") == []
    advance(m, 9)
    assert m.renew_owner("new-master") == ["job"]
    # the same request without a lease returns the reservation as it is
    assert m.reserve("job", "n1", cpu=1) == res
    assert m.reserve_any("job", cpu=1) == res


def test_unregister_evicts_leased_reservations_and_ends_their_leases(m: ResourceManager) -> None:
    m.reserve("job", "n1", cpu=1, owner="a", ttl=5)
    assert [r.job_id for r in m.unregister_node("n1")] == ["job"]
    assert m.renew_owner("a") == []
    advance(m, 10)
    assert m.expire() == []
    assert m.counters()["evicted"] == 1


def test_an_expired_lease_frees_gpus_and_extended_resources_for_reserve_any(
    m: ResourceManager,
) -> None:
    m.reserve("job", "n1", cpu=4, gpu=2, extended={"nvenc": 2}, ttl=3)
    assert m.get_available_nodes(cpu=1, gpu=1) == []
    advance(m, 3)
    res = m.reserve_any("gpu-job", cpu=1, gpu=2, extended={"nvenc": 2})
    assert (res.node_id, res.gpu_devices) == ("n1", (0, 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ttl": 0}, "ttl must be a number of seconds > 0"),
        ({"ttl": -1}, "ttl must be a number of seconds > 0"),
        ({"ttl": float("nan")}, "got nan"),
        ({"ttl": float("inf")}, "got inf"),
        ({"ttl": True}, "got True"),
        ({"ttl": "30"}, "got '30'"),
        ({"ttl": 31 * 86400}, "<= 2,592,000"),
        ({"owner": "a"}, "owner='a' needs a ttl"),
        ({"owner": "", "ttl": 5}, "owner must be a non-empty printable string"),
        ({"owner": 7, "ttl": 5}, "owner must be"),
    ],
)
def test_bad_leases_are_refused_naming_the_value(
    m: ResourceManager, kwargs: dict[str, object], message: str
) -> None:
    for call in (
        lambda: m.reserve("job", "n1", cpu=1, **kwargs),  # type: ignore[arg-type]
        lambda: m.reserve_any("job", cpu=1, **kwargs),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidAmountError, match=message):
            call()
    assert m.snapshot().reservations == {}
    if "ttl" in kwargs and "owner" not in kwargs:
        with pytest.raises(InvalidAmountError, match=message):
            m.renew("job", ttl=kwargs["ttl"])  # type: ignore[arg-type]
        with pytest.raises(InvalidAmountError, match=message):
            m.renew_owner("a", ttl=kwargs["ttl"])  # type: ignore[arg-type]


def test_async_leases_expire_the_same_way(make_manager: MakeManager) -> None:
    manager = make_manager()

    async def run() -> None:
        await manager.aregister_node("n", cpu=2)
        await manager.areserve("a", "n", cpu=1, owner="o", ttl=10)
        await manager.areserve_any("b", cpu=1, owner="o", ttl=10)
        advance(manager, 9)
        assert await manager.arenew_owner("o") == ["a", "b"]
        assert (await manager.arenew("a", ttl=20)) is not None
        advance(manager, 10)
        assert [r.job_id for r in await manager.aexpire()] == ["b"]
        assert await manager.aget_reservation("a") is not None
        await manager.aclose()

    asyncio.run(run())
