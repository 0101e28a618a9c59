"""The manager's behaviour, on every backend: the ported upstream tests and the fixes."""

from __future__ import annotations

import asyncio
import re

import pytest

from ffrtmp_infra.resources import (
    DuplicateJobError,
    InsufficientResourcesError,
    InvalidAmountError,
    NodeDrainingError,
    NoNodeAvailableError,
    ResourceError,
    ResourceManager,
    Resources,
    UnknownNodeError,
)

from .conftest import MakeManager

# -- ported from upstream shared/pkg/resources/manager_test.go ------------------------


def test_go_reserve_and_release_restores_every_resource(manager: ResourceManager) -> None:
    manager.register_node("node1", cpu=8, gpu=1, ram_gb=16)
    assert manager.get_node("node1").available.cpu == 8
    manager.reserve("job1", "node1", cpu=4, gpu=1, ram_gb=8)
    assert manager.get_node("node1").available == Resources(4000, 8192, 0, {})
    with pytest.raises(InsufficientResourcesError):
        manager.reserve("job2", "node1", cpu=5, gpu=0, ram_gb=4)
    manager.release("job1")
    # Upstream returned only the CPU here; GPU and RAM leaked.
    assert manager.get_node("node1").available == Resources(8000, 16384, 1, {})


def test_go_available_nodes_counts(manager: ResourceManager) -> None:
    manager.register_node("node1", cpu=8, gpu=1, ram_gb=16)
    manager.register_node("node2", cpu=4, gpu=0, ram_gb=8)
    manager.register_node("node3", cpu=16, gpu=2, ram_gb=32)
    assert len(manager.get_available_nodes(cpu=6, gpu=0, ram_gb=4)) == 2
    assert len(manager.get_available_nodes(cpu=4, gpu=1, ram_gb=8)) == 2
    manager.reserve("job1", "node1", cpu=6, gpu=1, ram_gb=12)
    assert manager.get_available_nodes(cpu=6, gpu=0, ram_gb=4) == ["node3"]


def test_go_unregister_cleans_up(manager: ResourceManager) -> None:
    manager.register_node("node1", cpu=8, gpu=1, ram_gb=16)
    manager.reserve("job1", "node1", cpu=4, gpu=1, ram_gb=8)
    evicted = manager.unregister_node("node1")
    assert [r.job_id for r in evicted] == ["job1"]
    with pytest.raises(UnknownNodeError):
        manager.get_node("node1")
    assert manager.get_reservation("job1") is None


# -- exact accounting -------------------------------------------------------------------


def test_three_tenth_core_jobs_fit_a_three_tenth_core_node(manager: ResourceManager) -> None:
    manager.register_node("small", cpu=0.3)
    for job in ("a", "b", "c"):
        manager.reserve(job, "small", cpu=0.1)
    assert manager.get_node("small").available.cpu_milli == 0


def test_amounts_accept_strings(manager: ResourceManager) -> None:
    manager.register_node("n", cpu="4", ram_gb="8Gi")
    res = manager.reserve("j", "n", cpu="500m", ram_gb="512Mi")
    assert res.resources == Resources(500, 512, 0, {})


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "-1", "lots"])
def test_bad_amounts_are_rejected_before_touching_state(
    manager: ResourceManager, bad: object
) -> None:
    manager.register_node("n", cpu=4)
    with pytest.raises(InvalidAmountError):
        manager.reserve("j", "n", cpu=bad)  # type: ignore[arg-type]
    assert manager.get_node("n").used.cpu_milli == 0


def test_register_requires_positive_cpu(manager: ResourceManager) -> None:
    with pytest.raises(InvalidAmountError, match="cpu capacity must be > 0"):
        manager.register_node("n", cpu=0)


def test_insufficient_names_each_short_resource(manager: ResourceManager) -> None:
    manager.register_node("n", cpu=2, ram_gb=4)
    with pytest.raises(InsufficientResourcesError) as info:
        manager.reserve("j", "n", cpu=3, ram_gb=8, gpu=1)
    assert info.value.short == {"cpu": (3000, 2000), "ram": (8192, 4096), "gpu": (1, 0)}
    assert "cpu: need 3 cores, available 2" in str(info.value)
    assert "ram: need 8Gi, available 4Gi" in str(info.value)
    assert isinstance(info.value, ResourceError)


def test_unknown_node(manager: ResourceManager) -> None:
    with pytest.raises(UnknownNodeError, match="'ghost'"):
        manager.reserve("j", "ghost", cpu=1)


@pytest.mark.parametrize("job_id", ["", 5, "x" * 300, "tab\t"])
def test_bad_job_ids_are_rejected(manager: ResourceManager, job_id: object) -> None:
    manager.register_node("n", cpu=1)
    with pytest.raises(InvalidAmountError, match="job_id"):
        manager.reserve(job_id, "n", cpu=1)  # type: ignore[arg-type]


# -- idempotency ------------------------------------------------------------------------


def test_same_request_again_returns_the_existing_reservation(manager: ResourceManager) -> None:
    manager.register_node("n", cpu=4)
    first = manager.reserve("j", "n", cpu=1)
    assert manager.reserve("j", "n", cpu=1) == first
    assert manager.reserve("j", "n", cpu="1000m") == first
    assert manager.get_node("n").used.cpu_milli == 1000


def test_different_request_for_the_same_job_fails(manager: ResourceManager) -> None:
    manager.register_node("n", cpu=4)
    manager.register_node("m", cpu=4)
    manager.reserve("j", "n", cpu=1)
    with pytest.raises(DuplicateJobError, match="'j'"):
        manager.reserve("j", "n", cpu=2)
    with pytest.raises(DuplicateJobError):
        manager.reserve("j", "m", cpu=1)
    # The duplicate check comes before the capacity check (upstream had it after).
    with pytest.raises(DuplicateJobError):
        manager.reserve("j", "n", cpu=100)


def test_reserve_any_is_idempotent(manager: ResourceManager) -> None:
    manager.register_node("a", cpu=4)
    manager.register_node("b", cpu=4)
    first = manager.reserve_any("j", cpu=1)
    assert manager.reserve_any("j", cpu=1) == first
    with pytest.raises(DuplicateJobError):
        manager.reserve_any("j", cpu=2)


def test_release_of_an_unknown_job_is_a_reported_no_op(manager: ResourceManager) -> None:
    manager.register_node("n", cpu=1)
    assert manager.release("nobody") is None
    res = manager.reserve("j", "n", cpu=1)
    assert manager.release("j") == res
    assert manager.release("j") is None


# -- richer model -------------------------------------------------------------------------


def test_extended_resources_are_reserved_and_released(manager: ResourceManager) -> None:
    manager.register_node("gpu1", cpu=16, gpu=1, extended={"nvenc_sessions": 3})
    for i in range(3):
        manager.reserve(f"j{i}", "gpu1", cpu=1, extended={"nvenc_sessions": 1})
    with pytest.raises(InsufficientResourcesError) as info:
        manager.reserve("j3", "gpu1", cpu=1, extended={"nvenc_sessions": 1})
    assert info.value.short == {"nvenc_sessions": (1, 0)}
    manager.release("j0")
    res = manager.reserve("j3", "gpu1", cpu=1, extended={"nvenc_sessions": 1})
    assert dict(res.resources.extended) == {"nvenc_sessions": 1}
    assert dict(manager.get_node("gpu1").used.extended) == {"nvenc_sessions": 3}


def test_gpu_device_indices_are_assigned_and_reused(manager: ResourceManager) -> None:
    manager.register_node("n", cpu=16, gpu=4)
    a = manager.reserve("a", "n", gpu=2)
    b = manager.reserve("b", "n", gpu=1)
    assert a.gpu_devices == (0, 1)
    assert b.gpu_devices == (2,)
    manager.release("a")
    c = manager.reserve("c", "n", gpu=3)
    assert c.gpu_devices == (0, 1, 3)
    assert manager.get_node("n").gpu_devices_used == (0, 1, 2, 3)


def test_system_reserve_is_taken_off_capacity(make_manager: MakeManager) -> None:
    manager = make_manager(system_reserve={"cpu": "500m", "ram_gb": 1, "nvenc_sessions": 1})
    node = manager.register_node("n", cpu=8, ram_gb=16, extended={"nvenc_sessions": 3}).node
    assert node.capacity.cpu_milli == 8000
    assert node.allocatable == Resources(7500, 15 * 1024, 0, {"nvenc_sessions": 2})
    with pytest.raises(InsufficientResourcesError):
        manager.reserve("j", "n", cpu=8)
    own = manager.register_node("m", cpu=8, system_reserve={"cpu": 2}).node
    assert own.allocatable.cpu_milli == 6000


def test_labels_and_selectors(manager: ResourceManager) -> None:
    manager.register_node("a", cpu=8, labels={"gpu_type": "t4", "encoder": "nvenc"})
    manager.register_node("b", cpu=8, labels={"gpu_type": "a100", "encoder": "nvenc"})
    manager.register_node("c", cpu=8, labels={"encoder": "qsv"})
    assert manager.get_available_nodes(cpu=1, selector={"gpu_type": "a100"}) == ["b"]
    assert sorted(manager.get_available_nodes(cpu=1, selector={"encoder": ["qsv", "nvenc"]})) == [
        "a",
        "b",
        "c",
    ]
    res = manager.reserve_any("j", cpu=1, selector={"encoder": "qsv"})
    assert res.node_id == "c"
    with pytest.raises(NoNodeAvailableError):
        manager.reserve_any("k", cpu=1, selector={"gpu_type": "h100"})
    with pytest.raises(InvalidAmountError, match="selector"):
        manager.reserve_any("k", cpu=1, selector={"gpu_type": 5})  # type: ignore[dict-item]


def test_reserve_any_exclude_skips_nodes(manager: ResourceManager) -> None:
    manager.register_node("a", cpu=8)
    manager.register_node("b", cpu=8)
    assert manager.reserve_any("j", cpu=1, exclude=["a"]).node_id == "b"


# -- lifecycle ----------------------------------------------------------------------------


def test_drain_keeps_reservations_and_refuses_new_ones(manager: ResourceManager) -> None:
    manager.register_node("a", cpu=8)
    manager.register_node("b", cpu=8)
    manager.reserve("j", "a", cpu=1)
    node = manager.drain("a")
    assert node.draining
    assert node.reservations == 1
    with pytest.raises(NodeDrainingError):
        manager.reserve("k", "a", cpu=1)
    assert manager.get_available_nodes(cpu=1) == ["b"]
    assert manager.reserve_any("k", cpu=1).node_id == "b"
    manager.release("j")
    assert not manager.undrain("a").draining
    assert "a" in manager.get_available_nodes(cpu=1)


def test_reregistration_keeps_reservations_and_reports_misfits(manager: ResourceManager) -> None:
    manager.register_node("n", cpu=8, gpu=2, ram_gb=16)
    a = manager.reserve("a", "n", cpu=4, gpu=1)
    b = manager.reserve("b", "n", cpu=3, gpu=1)
    grown = manager.register_node("n", cpu=16, gpu=2, ram_gb=16)
    assert grown.no_longer_fit == ()
    assert grown.node.used.cpu_milli == 7000
    shrunk = manager.register_node("n", cpu=5, gpu=1, ram_gb=16)
    assert shrunk.no_longer_fit == (b,)  # b needs GPU device 1 and pushes cpu past 5
    assert manager.get_reservation("a") == a
    assert shrunk.node.available.cpu_milli == 0
    manager.release("b")
    assert manager.get_node("n").available.cpu_milli == 1000


def test_unregister_unknown_node(manager: ResourceManager) -> None:
    with pytest.raises(UnknownNodeError):
        manager.unregister_node("ghost")


def test_snapshot_is_consistent(manager: ResourceManager) -> None:
    manager.register_node("a", cpu=8, gpu=1)
    manager.reserve("j", "a", cpu=2, gpu=1)
    snap = manager.snapshot()
    assert set(snap.nodes) == {"a"}
    assert set(snap.reservations) == {"j"}
    assert snap.used_by_node()["a"] == snap.nodes["a"].used


def test_reregistration_replaces_labels_and_extended_resources(manager: ResourceManager) -> None:
    manager.register_node("n", cpu=4, labels={"zone": "a", "old": "x"}, extended={"nv": 2})
    node = manager.register_node("n", cpu=4, labels={"zone": "b"}, extended={"qsv": 1}).node
    assert dict(node.labels) == {"zone": "b"}
    assert dict(node.capacity.extended) == {"qsv": 1}
    assert manager.get_available_nodes(selector={"zone": "a"}) == []
    assert manager.get_available_nodes(selector={"zone": "b"}) == ["n"]
    with pytest.raises(InsufficientResourcesError):
        manager.reserve("j", "n", extended={"nv": 1})
    assert manager.reserve_any("k", extended={"qsv": 1}).node_id == "n"


@pytest.mark.parametrize("bad", [None, 7, ["n"], "", "x" * 257, "a\nb"])
def test_bad_ids_are_invalid_input_everywhere(manager: ResourceManager, bad: object) -> None:
    manager.register_node("n", cpu=1)
    calls = [
        lambda: manager.reserve("j", bad, cpu=1),  # type: ignore[arg-type]
        lambda: manager.reserve(bad, "n", cpu=1),  # type: ignore[arg-type]
        lambda: manager.reserve_any(bad, cpu=1),  # type: ignore[arg-type]
        lambda: manager.get_node(bad),  # type: ignore[arg-type]
        lambda: manager.drain(bad),  # type: ignore[arg-type]
        lambda: manager.unregister_node(bad),  # type: ignore[arg-type]
        lambda: manager.get_reservation(bad),  # type: ignore[arg-type]
        lambda: manager.release(bad),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidAmountError, match=re.escape(repr(bad)[:40])):
            call()


def test_release_and_arelease_of_an_empty_job_id_both_raise(manager: ResourceManager) -> None:
    # release("") returned None while arelease("") raised: an empty id is invalid input.
    with pytest.raises(InvalidAmountError, match=r"job_id must be a non-empty .* got ''"):
        manager.release("")
    with pytest.raises(InvalidAmountError, match=r"job_id must be a non-empty .* got ''"):
        asyncio.run(manager.arelease(""))
    assert manager.release("never-reserved") is None


def test_odd_capacities_round_down_and_requests_round_up(manager: ResourceManager) -> None:
    # A cgroup quota of 5/3 cores and psutil's bytes as GiB must still register.
    node = manager.register_node("n", cpu=5 / 3, ram_gb=15.623456789).node
    assert node.capacity.cpu_milli == 1666
    assert node.capacity.ram_mib == 15998
    assert manager.reserve("j", "n", cpu=1 / 3).resources.cpu_milli == 334


def test_the_same_numbers_in_other_units_are_other_requests(manager: ResourceManager) -> None:
    # Parsed request shapes are cached: (1 millicore, 1 MiB) given as "1m"/"1Mi" must never
    # stand in for the whole core and GiB that ints 1 and 1 mean, nor the other way round.
    manager.register_node("n", cpu=8, ram_gb=8)
    small = manager.reserve("small", "n", cpu="1m", ram_gb="1Mi")
    whole = manager.reserve("whole", "n", cpu=1, ram_gb=1)
    again = manager.reserve("again", "n", cpu=0.001, ram_gb="1Mi")
    assert (small.resources.cpu_milli, small.resources.ram_mib) == (1, 1)
    assert (whole.resources.cpu_milli, whole.resources.ram_mib) == (1000, 1024)
    assert again.resources == small.resources
    for bad in (True, False):  # equal to the cached ints 1 and 0, still not amounts
        with pytest.raises(InvalidAmountError, match=f"got {bad}"):
            manager.reserve("bool", "n", cpu=bad, ram_gb=1)
        with pytest.raises(InvalidAmountError, match=f"got {bad}"):
            manager.reserve("bool", "n", cpu=1, ram_gb=bad)
