"""Hypothesis drives random register/reserve/release/drain/unregister sequences, with
leases (reserve with a ttl, renew, renew by owner, time passing), and checks the ledger
after every step, on every backend."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ffrtmp_infra.resources import (
    InsufficientResourcesError,
    NodeDrainingError,
    ResourceManager,
    UnknownNodeError,
)

from .conftest import MakeManager, advance
from .invariants import check_invariants, within_allocatable

NODES = st.sampled_from(["n1", "n2", "n3", "n4"])
JOBS = st.sampled_from([f"j{i}" for i in range(12)])
CPU = st.sampled_from([0, 0.1, 0.25, 1, 2, "1500m", 4])
RAM = st.sampled_from([0, 0.5, 1, "512Mi", 2, 8])
GPU = st.integers(0, 2)
NVENC = st.integers(0, 2)
# Lease times in whole 100 s: the Redis ledger runs on real server TIME plus an offset,
# so its clock runs a little ahead of the model's; a margin of 50 s keeps every deadline
# on the same side of "now" for both.
TTL = st.sampled_from([None, 100, 200])
OWNERS = st.sampled_from(["a", "b"])


def _fits(manager: ResourceManager, node_id: str, cpu: int, ram: int, gpu: int, nv: int) -> bool:
    node = manager.snapshot().nodes[node_id]
    a, u = node.allocatable, node.used
    return (
        not node.draining
        and cpu <= a.cpu_milli - u.cpu_milli
        and ram <= a.ram_mib - u.ram_mib
        and gpu <= a.gpu - u.gpu
        # An extended resource is only checked when requested (zero amounts are dropped);
        # CPU, RAM and GPU always are, so a node shrunk below its use takes nothing new.
        and (nv == 0 or nv <= a.extended.get("nvenc", 0) - u.extended.get("nvenc", 0))
    )


class LedgerMachine(RuleBasedStateMachine):
    manager: ResourceManager

    def __init__(self) -> None:
        super().__init__()
        self.shrunk: set[str] = set()
        self.now = 0.0  # the model's clock, advanced with the ledger's
        self.leases: dict[str, tuple[float, str | None, float]] = {}  # deadline, owner, ttl

    @rule(node=NODES, cpu=st.sampled_from([1, 2, 4, 8]), ram=st.sampled_from([1, 4, 16]),
          gpu=GPU, nv=NVENC)  # fmt: skip
    def register(self, node: str, cpu: int, ram: int, gpu: int, nv: int) -> None:
        result = self.manager.register_node(
            node, cpu=cpu, ram_gb=ram, gpu=gpu, extended={"nvenc": nv}
        )
        if result.no_longer_fit:
            self.shrunk.add(node)

    @rule(job=JOBS, node=NODES, cpu=CPU, ram=RAM, gpu=GPU, nv=NVENC, ttl=TTL, owner=OWNERS)
    def reserve(
        self, job: str, node: str, cpu: Any, ram: Any, gpu: int, nv: int, ttl: Any, owner: str
    ) -> None:
        before = self.manager.snapshot()
        ext = {"nvenc": nv} if nv else None
        if job in before.reservations:
            return
        lease: dict[str, Any] = {} if ttl is None else {"ttl": ttl, "owner": owner}
        try:
            res = self.manager.reserve(
                job, node, cpu=cpu, ram_gb=ram, gpu=gpu, extended=ext, **lease
            )
        except UnknownNodeError:
            assert node not in before.nodes
        except (InsufficientResourcesError, NodeDrainingError):
            assert node in before.nodes
            assert not _fits(self.manager, node, *self._units(cpu, ram, gpu, nv))
        else:
            assert res.node_id == node
            assert (res.resources.cpu_milli, res.resources.ram_mib, res.resources.gpu) == (
                self._units(cpu, ram, gpu, nv)[:3]
            )
            self._leased(job, ttl, owner)

    @rule(job=JOBS, cpu=CPU, ram=RAM, gpu=GPU, ttl=TTL, owner=OWNERS)
    def reserve_any(self, job: str, cpu: Any, ram: Any, gpu: int, ttl: Any, owner: str) -> None:
        before = self.manager.snapshot()
        if job in before.reservations:
            return
        units = self._units(cpu, ram, gpu, 0)
        candidates = [n for n in before.nodes if _fits(self.manager, n, *units)]
        lease: dict[str, Any] = {} if ttl is None else {"ttl": ttl, "owner": owner}
        try:
            res = self.manager.reserve_any(job, cpu=cpu, ram_gb=ram, gpu=gpu, **lease)
        except InsufficientResourcesError:
            assert candidates == []
        else:
            assert res.node_id in candidates
            assert self.manager.get_available_nodes(cpu=cpu, ram_gb=ram, gpu=gpu) is not None
            self._leased(job, ttl, owner)

    @rule(job=JOBS)
    def release(self, job: str) -> None:
        held = self.manager.get_reservation(job)
        assert self.manager.release(job) == held
        self.leases.pop(job, None)

    @rule(job=JOBS, ttl=TTL)
    def renew(self, job: str, ttl: Any) -> None:
        held = self.manager.get_reservation(job)
        renewed = self.manager.renew(job, ttl=ttl)
        assert (renewed is None) == (held is None)
        if renewed is not None and (ttl is not None or job in self.leases):
            owner = self.leases[job][1] if job in self.leases else None
            self._leased(job, ttl or self.leases[job][2], owner)
            assert (renewed.owner, renewed.ttl) == (owner, float(ttl or self.leases[job][2]))

    @rule(owner=OWNERS, ttl=TTL)
    def renew_owner(self, owner: str, ttl: Any) -> None:
        mine = sorted(j for j, (_, o, _) in self.leases.items() if o == owner)
        assert self.manager.renew_owner(owner, ttl=ttl) == mine
        for job in mine:
            self._leased(job, ttl or self.leases[job][2], owner)

    @rule(seconds=st.sampled_from([100, 200]))
    def time_passes(self, seconds: int) -> None:
        self.now += seconds
        advance(self.manager, seconds)
        due = sorted(j for j, (deadline, _, _) in self.leases.items() if deadline <= self.now)
        assert sorted(r.job_id for r in self.manager.expire()) == due
        for job in due:
            del self.leases[job]

    @rule(node=NODES, on=st.booleans())
    def drain(self, node: str, on: bool) -> None:
        try:
            view = self.manager.drain(node) if on else self.manager.undrain(node)
        except UnknownNodeError:
            assert node not in self.manager.snapshot().nodes
        else:
            assert view.draining is on

    @rule(node=NODES)
    def unregister(self, node: str) -> None:
        before = self.manager.snapshot()
        try:
            evicted = self.manager.unregister_node(node)
        except UnknownNodeError:
            assert node not in before.nodes
            return
        assert sorted(r.job_id for r in evicted) == sorted(
            j for j, r in before.reservations.items() if r.node_id == node
        )
        for res in evicted:
            self.leases.pop(res.job_id, None)
        self.shrunk.discard(node)

    @invariant()
    def ledger_is_consistent(self) -> None:
        snapshot = self.manager.snapshot()
        for node_id in list(self.shrunk):
            node = snapshot.nodes.get(node_id)
            if node is None or within_allocatable(node):
                self.shrunk.discard(node_id)
        check_invariants(snapshot, self.shrunk)
        leased = {j: (r.owner, r.ttl) for j, r in snapshot.reservations.items() if r.ttl}
        assert leased == {j: (o, float(t)) for j, (_, o, t) in self.leases.items()}

    def _leased(self, job: str, ttl: float | None, owner: str | None) -> None:
        if ttl is not None:
            self.leases[job] = (self.now + ttl, owner, ttl)

    def teardown(self) -> None:
        self.manager.close()  # one Redis connection per example, not hundreds at once

    @staticmethod
    def _units(cpu: Any, ram: Any, gpu: int, nv: int) -> tuple[int, int, int, int]:
        from ffrtmp_infra.resources._quantity import parse_cpu, parse_ram

        return parse_cpu(cpu), parse_ram(ram), gpu, nv


def test_random_sequences_keep_the_ledger_exact(make_manager: MakeManager) -> None:
    def factory() -> LedgerMachine:
        machine = LedgerMachine()
        machine.manager = make_manager(scorer="binpack")
        return machine

    run_state_machine_as_test(
        factory,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
