"""16 threads hammer one manager; the ledger stays exact and snapshots are never torn."""

from __future__ import annotations

import random
import threading

from ffrtmp_infra.resources import InsufficientResourcesError, NodeDrainingError, ResourceManager

from .conftest import MakeManager
from .invariants import check_invariants

THREADS = 16


def _worker(manager: ResourceManager, seed: int, ops: int, errors: list[BaseException]) -> None:
    rnd = random.Random(seed)
    mine: list[str] = []
    try:
        for i in range(ops):
            roll = rnd.random()
            if mine and roll < 0.45:
                assert manager.release(mine.pop(rnd.randrange(len(mine)))) is not None
            elif roll < 0.75:
                job = f"t{seed}-{i}"
                try:
                    manager.reserve_any(job, cpu=rnd.choice([0.5, 1, 2]), ram_gb=1,
                                        gpu=rnd.choice([0, 0, 1]))  # fmt: skip
                except InsufficientResourcesError:
                    continue
                mine.append(job)
            else:
                job = f"t{seed}-{i}"
                try:
                    manager.reserve(job, f"n{rnd.randrange(8)}", cpu=1, ram_gb=2)
                except (InsufficientResourcesError, NodeDrainingError):
                    continue
                mine.append(job)
    except BaseException as exc:  # surfaced by the main thread
        errors.append(exc)


def test_sixteen_threads_never_overcommit(make_manager: MakeManager, backend_name: str) -> None:
    manager = make_manager(scorer="spread")
    for i in range(8):
        manager.register_node(f"n{i}", cpu=4, ram_gb=8, gpu=1)
    ops = 400 if backend_name == "memory" else 60
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                check_invariants(manager.snapshot())
        except BaseException as exc:
            errors.append(exc)

    def operator() -> None:
        # Drains, undrains and same-size re-registrations race with the workers.
        rnd = random.Random(99)
        try:
            while not stop.is_set():
                node = f"n{rnd.randrange(8)}"
                roll = rnd.random()
                if roll < 0.4:
                    manager.drain(node)
                elif roll < 0.8:
                    manager.undrain(node)
                else:
                    assert manager.register_node(node, cpu=4, ram_gb=8, gpu=1).no_longer_fit == ()
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=_worker, args=(manager, seed, ops, errors))
        for seed in range(THREADS)
    ]
    watchers = [threading.Thread(target=reader), threading.Thread(target=operator)]
    for t in watchers + threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in watchers:
        t.join()
    assert errors == []
    snapshot = manager.snapshot()
    check_invariants(snapshot)
    counters = manager.counters()
    assert counters["reserved"] - counters["released"] == len(snapshot.reservations)
    for job in list(snapshot.reservations):
        manager.release(job)
    for i in range(8):
        manager.undrain(f"n{i}")
    for node in manager.snapshot().nodes.values():
        assert node.used.cpu_milli == node.used.ram_mib == node.used.gpu == 0
