"""Redis-only behaviour: one round trip per operation, a ledger shared by processes."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ffrtmp_infra.resources import (
    BackendUnavailableError,
    InvalidAmountError,
    MemoryBackend,
    RedisBackend,
    ResourceError,
    ResourceManager,
)
from tests.ratelimit.conftest import FakeClock
from tests.support.redis_server import RedisServer

from .conftest import advance
from .invariants import check_invariants

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_manager(redis_server: RedisServer) -> Iterator[ResourceManager]:
    manager = ResourceManager(RedisBackend(redis_server.url, prefix=f"rt-{uuid.uuid4().hex}"))
    yield manager
    manager.close()


def _commands_from_clients(server: RedisServer, action: Callable[[], object]) -> list[str]:
    """The commands clients sent while ``action`` ran (MONITOR, minus script internals)."""
    seen: list[dict[str, Any]] = []
    client = server.client()
    ready = threading.Event()
    marker = f"end-{uuid.uuid4().hex}"

    def watch() -> None:
        with client.monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if marker in command["command"]:
                    return
                seen.append(command)

    thread = threading.Thread(target=watch)
    thread.start()
    ready.wait(5)
    # MONITOR's reply arrives before listen() starts; a probe makes the start visible.
    probe = server.client()
    probe.echo("start-probe")
    action()
    probe.echo(marker)
    thread.join(10)
    probe.close()
    client.close()
    start = next(i for i, c in enumerate(seen) if "start-probe" in c["command"])
    return [
        c["command"].split()[0].upper() for c in seen[start + 1 :] if c.get("client_type") != "lua"
    ]


def test_each_operation_is_one_round_trip(
    redis_manager: ResourceManager, redis_server: RedisServer
) -> None:
    m = redis_manager
    m.register_node("warm", cpu=1)  # loads the scripts (EVALSHA, then SCRIPT LOAD once)
    m.reserve("w", "warm", cpu=1)
    m.release("w")
    m.reserve_any("w", cpu=1)
    m.release("w")
    m.drain("warm")
    m.get_available_nodes(cpu=1)
    m.snapshot()
    m.expire()
    m.unregister_node("warm")
    m.register_node("n1", cpu=8, gpu=1, ram_gb=16)
    m.register_node("n2", cpu=8, ram_gb=16)
    ops: list[tuple[str, Callable[[], object]]] = [
        ("reserve", lambda: m.reserve("a", "n1", cpu=2, gpu=1)),
        ("reserve_any", lambda: m.reserve_any("b", cpu=1, ram_gb=2)),
        ("release", lambda: m.release("a")),
        ("drain", lambda: m.drain("n2")),
        ("unregister", lambda: m.unregister_node("n2")),
        ("register", lambda: m.register_node("n3", cpu=4)),
        ("snapshot", m.snapshot),
        ("reserve with a lease", lambda: m.reserve("c", "n1", cpu=1, owner="me", ttl=30)),
        ("renew_owner", lambda: m.renew_owner("me")),
        ("renew", lambda: m.renew("c")),
        ("expire", m.expire),
    ]
    for name, op in ops:
        assert _commands_from_clients(redis_server, op) == ["EVALSHA"], name


def test_two_managers_share_one_ledger(redis_server: RedisServer) -> None:
    prefix = f"shared-{uuid.uuid4().hex}"
    first = ResourceManager(RedisBackend(redis_server.url, prefix=prefix))
    second = ResourceManager(RedisBackend(redis_server.url, prefix=prefix))
    first.register_node("n", cpu=2)
    second.reserve("a", "n", cpu=1)
    assert first.get_reservation("a") is not None
    assert first.reserve_any("b", cpu=1).node_id == "n"
    assert second.get_available_nodes(cpu=1) == []
    assert second.release("b") is not None
    assert first.get_node("n").used.cpu_milli == 1000
    first.close()
    second.close()


RACER = textwrap.dedent(
    """
    import sys, time
    from ffrtmp_infra.resources import RedisBackend, ResourceManager, ResourceError
    url, prefix, name, start = sys.argv[1:5]
    m = ResourceManager(RedisBackend(url, prefix=prefix))
    while time.time() < float(start):
        time.sleep(0.001)
    won = 0
    for i in range(200):
        try:
            if i % 2:
                m.reserve_any(f"{name}-{i}", cpu=1, ram_gb=1)
            else:
                m.reserve(f"{name}-{i}", f"n{i % 4}", cpu=1, ram_gb=1)
            won += 1
        except ResourceError:
            pass
    print(won)
    """
)


def test_two_processes_racing_never_overcommit(redis_server: RedisServer) -> None:
    import time

    prefix = f"race-{uuid.uuid4().hex}"
    manager = ResourceManager(RedisBackend(redis_server.url, prefix=prefix))
    for i in range(4):
        manager.register_node(f"n{i}", cpu=25, ram_gb=64)  # 100 one-core slots in all
    start = str(time.time() + 1.5)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, redis_server.url, prefix, name, start],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    wins = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    snapshot = manager.snapshot()
    check_invariants(snapshot)
    assert sum(wins) == len(snapshot.reservations) == 100  # every slot taken exactly once
    assert all(n.used.cpu_milli == 25_000 for n in snapshot.nodes.values())
    manager.close()


def test_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(InvalidAmountError, match="redis://"):
        RedisBackend("localhost:6379")
    with pytest.raises(InvalidAmountError, match="'http'") as info:
        RedisBackend("http://user:s3cret@host:6379/0")
    assert "s3cret" not in str(info.value)
    with pytest.raises(InvalidAmountError, match="prefix"):
        RedisBackend("redis://127.0.0.1:1/0", prefix="a{b}")
    with pytest.raises(InvalidAmountError, match="client"):
        RedisBackend(42)


def test_a_dead_redis_is_a_clear_error_and_recovery_needs_no_restart(
    private_redis: RedisServer,
) -> None:
    manager = ResourceManager(RedisBackend(private_redis.url, prefix="dead"))
    manager.register_node("n", cpu=2)
    private_redis.kill()
    with pytest.raises(BackendUnavailableError, match="Redis is unavailable"):
        manager.reserve("j", "n", cpu=1)
    private_redis.start()  # an empty server again (no persistence)
    manager.register_node("n", cpu=2)
    assert manager.reserve("j", "n", cpu=1).node_id == "n"
    manager.close()


SHAPES = [(8, 16, 0, 0), (16, 32, 2, 4), (4, 8, 0, 0), (3, 5, 1, 2)]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("scorer", ["binpack", "spread", "balanced"])
def test_redis_scripts_behave_exactly_like_the_memory_backend(
    redis_server: RedisServer, scorer: str, seed: int
) -> None:
    """Random workloads (reserve, reserve_any with selectors/exclusions/extended
    resources and leases, release, renew, time passing, drain, shrinking
    re-registration) give identical results."""
    import random

    rnd = random.Random(f"{scorer}{seed}")
    memory = ResourceManager(MemoryBackend(clock=FakeClock()), scorer=scorer)
    redis_ = ResourceManager(
        RedisBackend(redis_server.url, prefix=f"eq-{uuid.uuid4().hex}"), scorer=scorer
    )

    def both(method: str, *args: Any, **kwargs: Any) -> object:
        outcomes = []
        for m in (memory, redis_):
            try:
                outcomes.append(getattr(m, method)(*args, **kwargs))
            except ResourceError as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")
        assert outcomes[0] == outcomes[1]
        return outcomes[0]

    def register(node: str, shape: tuple[int, int, int, int], pool: str) -> None:
        c, r, g, nv = shape
        both("register_node", node, cpu=c, ram_gb=r, gpu=g, extended={"nv": nv},
             labels={"pool": pool})  # fmt: skip

    for i in range(40):
        register(f"n{i:02}", SHAPES[i % 4], "ab"[i % 2])
    live: list[str] = []
    for step in range(300):
        roll, node = rnd.random(), f"n{rnd.randrange(40):02}"
        if live and roll < 0.3:
            both("release", live.pop(rnd.randrange(len(live))))
            continue
        if roll < 0.35:
            # Whole 100 s: Redis' clock (server TIME plus the offset) runs a few ms
            # ahead of the fake one, never across a deadline.
            lease_roll = rnd.random()
            if lease_roll < 0.3:
                # (leases due at the same model time expire in real-time order on Redis)
                expired = []
                for m in (memory, redis_):
                    advance(m, 100)
                    expired.append(sorted(m.expire()))
                assert expired[0] == expired[1]
            elif lease_roll < 0.6:
                both("renew_owner", rnd.choice("ab"), ttl=rnd.choice([None, 100]))
            else:
                both("renew", f"j{rnd.randrange(step + 1)}", ttl=rnd.choice([None, 200]))
            continue
        if roll < 0.4:
            both("drain" if rnd.random() < 0.5 else "undrain", node)
            continue
        if roll < 0.43:
            register(node, rnd.choice(SHAPES), rnd.choice("ab"))
            continue
        request: dict[str, Any] = {
            "cpu": rnd.choice(["250m", 1, 1.5, 3, 0]),
            "ram_gb": rnd.choice([0, "512Mi", 1, 3]),
            "gpu": rnd.choice([0, 0, 1]),
            "extended": {"nv": rnd.choice([0, 0, 1, 2])},
        }
        if rnd.random() < 0.5:
            request.update(ttl=rnd.choice([100, 200, 300]), owner=rnd.choice(["a", "b", None]))
        job = f"j{step}"
        if rnd.random() < 0.3:
            outcome = both("reserve", job, node, **request)
        else:
            selector = {"pool": "a"} if rnd.random() < 0.2 else None
            exclude = [f"n{rnd.randrange(40):02}" for _ in range(rnd.randrange(3))]
            outcome = both("reserve_any", job, selector=selector, exclude=exclude, **request)
        if not isinstance(outcome, str):
            live.append(job)
        both("get_available_nodes", cpu=1, extended={"nv": 1})
    assert memory.snapshot() == redis_.snapshot()
    assert memory.counters() == redis_.counters()
    assert memory.counters()["expired"] > 0
    redis_.close()


@pytest.mark.parametrize("scorer", ["binpack", "spread", "balanced"])
@pytest.mark.parametrize("fine", [False, True])
def test_the_redis_index_places_exactly_like_the_memory_index(
    redis_server: RedisServer, scorer: str, fine: bool
) -> None:
    """reserve_any on the Redis ledger's index picks the memory backend's node, step by
    step: many load levels per shape (fine=True leaves about one node per bucket), ties,
    exclusions of the winner (the bucket's next-best path) and extended resources."""
    import random

    rnd = random.Random(f"idx{scorer}{fine}")
    memory = ResourceManager(scorer=scorer)
    redis_ = ResourceManager(
        RedisBackend(redis_server.url, prefix=f"ix-{uuid.uuid4().hex}"), scorer=scorer
    )
    shapes = [(8, 16, 0, 0), (16, 32, 2, 2), (4, 8, 0, 0), (16, 32, 2, 2)]
    for i in range(120):
        c, r, g, nv = shapes[i % 4]
        for m in (memory, redis_):
            m.register_node(f"n{i:03}", cpu=c, ram_gb=r, gpu=g, extended={"nv": nv},
                            labels={"pool": "ab"[i % 3 % 2]})  # fmt: skip
    live: list[str] = []
    for step in range(900):
        if live and rnd.random() < 0.4:
            job = live.pop(rnd.randrange(len(live)))
            assert memory.release(job) == redis_.release(job)
            continue
        if rnd.random() < 0.02:
            node = f"n{rnd.randrange(120):03}"
            for m in (memory, redis_):
                m.drain(node) if step % 2 else m.undrain(node)
        rc = f"{rnd.randint(1, 3000)}m" if fine else rnd.choice([0, 1, 2, 3])
        rr = f"{rnd.randint(0, 3000)}Mi" if fine else rnd.choice([0, 1, 2, 4])
        request: dict[str, Any] = {"cpu": rc, "ram_gb": rr, "gpu": rnd.choice([0, 0, 1])}
        if rnd.random() < 0.2:
            request["extended"] = {"nv": 1}
        if rnd.random() < 0.2:
            request["selector"] = {"pool": "a"}
        exclude: list[str] = []
        if rnd.random() < 0.3:  # exclude what would win, so the next-best path runs
            with contextlib.suppress(IndexError, ResourceError):
                exclude = [memory.get_available_nodes(**request)[0]]
        job = f"j{step}"
        outcomes = []
        for m in (memory, redis_):
            try:
                outcomes.append(m.reserve_any(job, exclude=exclude, **request).node_id)
            except ResourceError as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes[0] == outcomes[1], (step, request, exclude)
        if outcomes[0] != "NoNodeAvailableError":
            live.append(job)
    assert memory.snapshot() == redis_.snapshot()
    redis_.close()


LEASE_HOLDER = textwrap.dedent(
    """
    import sys, time
    from ffrtmp_infra.resources import RedisBackend, ResourceManager
    url, prefix = sys.argv[1:3]
    m = ResourceManager(RedisBackend(url, prefix=prefix))
    m.reserve("job-1", "n", cpu=2, gpu=1, ram_gb=4, owner="master-a", ttl=3)
    print("reserved", flush=True)
    time.sleep(600)  # "about to commit the assignment": killed here
    """
)


def test_a_master_killed_between_reserve_and_commit_leaks_nothing(
    redis_server: RedisServer,
) -> None:
    import signal
    import time

    prefix = f"kill-{uuid.uuid4().hex}"
    survivor = ResourceManager(RedisBackend(redis_server.url, prefix=prefix))
    survivor.register_node("n", cpu=2, gpu=1, ram_gb=4)
    holder = subprocess.Popen(
        [sys.executable, "-c", LEASE_HOLDER, redis_server.url, prefix],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "reserved"
        assert survivor.get_available_nodes(cpu=1) == []
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(10) == -signal.SIGKILL
        # Nobody renews the lease: within its ttl (3 s) the node is whole again.
        give_up = time.monotonic() + 30
        while survivor.get_reservation("job-1") is not None and time.monotonic() < give_up:
            time.sleep(0.1)
        node = survivor.get_node("n")
        assert node.available == node.allocatable
        assert survivor.counters()["expired"] == 1
        survivor.reserve("job-2", "n", cpu=2, gpu=1, ram_gb=4)
    finally:
        holder.kill()
        holder.wait(10)
        survivor.close()
