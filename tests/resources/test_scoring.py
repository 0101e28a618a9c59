"""Placement policies: the documented order, stable ties, and the index agreeing with a scan."""

from __future__ import annotations

import random

import pytest

from ffrtmp_infra.resources import InvalidAmountError, Node, ResourceManager, Resources
from ffrtmp_infra.resources._scoring import builtin_score

from .conftest import MakeManager


def _loaded(make_manager: MakeManager, scorer: str) -> ResourceManager:
    manager = make_manager(scorer=scorer)
    manager.register_node("empty", cpu=8, ram_gb=16)
    manager.register_node("half", cpu=8, ram_gb=16)
    manager.register_node("cpu-heavy", cpu=8, ram_gb=16)
    manager.reserve("h", "half", cpu=4, ram_gb=8)
    manager.reserve("c", "cpu-heavy", cpu=6, ram_gb=2)
    return manager


def test_binpack_prefers_the_most_allocated_node(make_manager: MakeManager) -> None:
    manager = _loaded(make_manager, "binpack")
    assert manager.get_available_nodes(cpu=1, ram_gb=1) == ["half", "cpu-heavy", "empty"]
    assert manager.reserve_any("j", cpu=1, ram_gb=1).node_id == "half"


def test_spread_prefers_the_least_allocated_node(make_manager: MakeManager) -> None:
    manager = _loaded(make_manager, "spread")
    assert manager.get_available_nodes(cpu=1, ram_gb=1) == ["empty", "cpu-heavy", "half"]
    assert manager.reserve_any("j", cpu=1, ram_gb=1).node_id == "empty"


def test_balanced_prefers_equal_cpu_and_ram_fractions(make_manager: MakeManager) -> None:
    manager = _loaded(make_manager, "balanced")
    # After +10 GiB: cpu-heavy (6/8, 12/16) is even; empty (0/8, 10/16); half can't hold it.
    assert manager.get_available_nodes(ram_gb=10) == ["cpu-heavy", "empty"]
    assert manager.reserve_any("j", ram_gb=10).node_id == "cpu-heavy"


def test_ties_go_to_the_node_registered_first(make_manager: MakeManager) -> None:
    for scorer in ("binpack", "spread", "balanced"):
        manager = make_manager(scorer=scorer)
        for name in ("z", "m", "a"):
            manager.register_node(f"{scorer}-{name}", cpu=4, ram_gb=4)
        expected = [f"{scorer}-{n}" for n in ("z", "m", "a")]
        assert manager.get_available_nodes(cpu=1) == expected
        assert (
            manager.reserve_any(f"{scorer}-job", cpu=1, exclude=[expected[0]]).node_id
            == (expected[1])
        )
        manager.close()


def test_spread_spreads_and_binpack_packs(make_manager: MakeManager) -> None:
    spread = make_manager(scorer="spread")
    for i in range(3):
        spread.register_node(f"s{i}", cpu=4)
    assert [spread.reserve_any(f"j{i}", cpu=1).node_id for i in range(3)] == ["s0", "s1", "s2"]
    binpack = make_manager(scorer="binpack")
    for i in range(3):
        binpack.register_node(f"b{i}", cpu=4)
    assert [binpack.reserve_any(f"k{i}", cpu=1).node_id for i in range(5)] == (["b0"] * 4 + ["b1"])


def test_custom_scorer(make_manager: MakeManager) -> None:
    class PreferLabel:
        name = "prefer-fast"

        def score(self, node: Node, request: Resources) -> float:
            return 1.0 if node.labels.get("speed") == "fast" else 0.0

    manager = make_manager(scorer=PreferLabel())
    manager.register_node("slow", cpu=4, labels={"speed": "slow"})
    manager.register_node("fast", cpu=4, labels={"speed": "fast"})
    assert manager.reserve_any("j", cpu=1).node_id == "fast"
    assert manager.get_available_nodes(cpu=1) == ["fast", "slow"]


def test_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(InvalidAmountError, match="scorer must be one of"):
        ResourceManager(scorer="best")
    with pytest.raises(InvalidAmountError, match="RedisBackend"):
        ResourceManager("redis://localhost:6379/0")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmountError, match="system_reserve"):
        ResourceManager(system_reserve={"cpu": -1})
    with pytest.raises(InvalidAmountError, match="system_reserve"):
        ResourceManager(system_reserve="1 core")  # type: ignore[arg-type]


def _brute_force(manager: ResourceManager, kind: str, rc: int, rr: int, rg: int) -> str | None:
    best: tuple[float, int, str] | None = None
    for seq, node in enumerate(manager.snapshot().nodes.values()):
        a, u = node.allocatable, node.used
        if node.draining or rc > a.cpu_milli - u.cpu_milli or rr > a.ram_mib - u.ram_mib:
            continue
        if rg > a.gpu - u.gpu:
            continue
        score = builtin_score(kind, a.cpu_milli, a.ram_mib, u.cpu_milli, u.ram_mib, rc, rr)
        if best is None or (score, -seq) > (best[0], -best[1]):
            best = (score, seq, node.node_id)
    return None if best is None else best[2]


@pytest.mark.parametrize(
    ("kind", "fine"),
    [("binpack", False), ("spread", False), ("balanced", False), ("balanced", True),
     ("binpack", True)],
)  # fmt: skip
@pytest.mark.parametrize("backend_name", ["memory"], indirect=True)
def test_index_agrees_with_a_linear_scan(make_manager: MakeManager, kind: str, fine: bool) -> None:
    # fine=True: millicore-sized requests leave almost one node per bucket, which sends
    # balanced down its node-by-node path.
    rnd = random.Random(f"{kind}{fine}")
    manager = make_manager(scorer=kind)
    shapes = [(8, 16, 0), (16, 32, 2), (4, 8, 0), (2, 4, 1)]
    for i in range(300):
        c, r, g = shapes[i % len(shapes)]
        manager.register_node(f"n{i:03}", cpu=c, ram_gb=r, gpu=g)
    live: list[str] = []
    for step in range(1500):
        rc = rnd.randint(1, 3000) if fine else rnd.choice([500, 1000, 2000, 3000])
        rr, rg = rnd.randint(0, 6) * (rnd.randint(1, 512) if fine else 512), rnd.randint(0, 1)
        if live and rnd.random() < 0.4:
            manager.release(live.pop(rnd.randrange(len(live))))
            continue
        if rnd.random() < 0.02:
            node = f"n{rnd.randrange(300):03}"
            manager.drain(node) if rnd.random() < 0.5 else manager.undrain(node)
        if rnd.random() < 0.02:  # re-registration moves a node to another shape
            c, r, g = rnd.choice(shapes)
            manager.register_node(f"n{rnd.randrange(300):03}", cpu=c, ram_gb=r, gpu=g)
        expected = _brute_force(manager, kind, rc, rr, rg)
        job = f"j{step}"
        try:
            got = manager.reserve_any(job, cpu=f"{rc}m", ram_gb=f"{rr}Mi", gpu=rg).node_id
        except Exception:
            got = None
        assert got == expected, step
        if got is not None:
            live.append(job)
