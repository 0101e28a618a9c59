"""The ledger invariants every test of the manager checks."""

from __future__ import annotations

from collections.abc import Set

from ffrtmp_infra.resources import Node, Snapshot


def check_invariants(snapshot: Snapshot, shrunk: Set[str] = frozenset()) -> None:
    """``used`` is the sum of live reservations and within ``0..allocatable`` on every node
    (a node in ``shrunk`` was re-registered smaller and may be over until releases)."""
    sums = snapshot.used_by_node()
    devices: dict[str, list[int]] = {n: [] for n in snapshot.nodes}
    for res in snapshot.reservations.values():
        assert res.node_id in snapshot.nodes, f"{res} points at a missing node"
        assert len(res.gpu_devices) == res.resources.gpu
        devices[res.node_id] += res.gpu_devices
    for node_id, node in snapshot.nodes.items():
        used, alloc = node.used, node.allocatable
        assert used == sums[node_id], f"{node_id}: used {used} != sum {sums[node_id]}"
        assert min(used.cpu_milli, used.ram_mib, used.gpu, *used.extended.values(), 0) >= 0
        assert sorted(devices[node_id]) == list(node.gpu_devices_used)
        assert len(set(devices[node_id])) == len(devices[node_id]), "a GPU given twice"
        if node_id in shrunk:
            continue
        assert used.cpu_milli <= alloc.cpu_milli, node
        assert used.ram_mib <= alloc.ram_mib, node
        assert used.gpu <= alloc.gpu, node
        for name, amount in used.extended.items():
            assert amount <= alloc.extended.get(name, 0), node
        assert all(d < alloc.gpu for d in devices[node_id]), node


def within_allocatable(node: Node) -> bool:
    """Whether the node's use fits its allocatable again (after a shrink)."""
    used, alloc = node.used, node.allocatable
    return (
        used.cpu_milli <= alloc.cpu_milli
        and used.ram_mib <= alloc.ram_mib
        and used.gpu <= alloc.gpu
        and all(d < alloc.gpu for d in node.gpu_devices_used)
        and all(v <= alloc.extended.get(k, 0) for k, v in used.extended.items())
    )
