"""ffrtmp_infra.resources against a straight Python port of the upstream Go manager.

* reserve + release pairs per second, 1/4/16 threads;
* reserve_any median at 1k/10k/100k nodes (indexed) vs the port's linear scan;
* the Redis backend: latency and commands per operation (EVALSHA count from INFO).
"""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable

from benchmarks._harness import Table
from benchmarks.resources_goport import GoPortManager
from ffrtmp_infra.resources import MemoryBackend, RedisBackend, ResourceManager

SHAPES = [(8, 16), (16, 32), (32, 64), (4, 8)]


def _pairs_per_second(make_loop: Callable[[int, int], Callable[[], None]], threads: int,
                      pairs: int, repeat: int) -> float:  # fmt: skip
    """Median over ``repeat`` runs of total pairs / wall time with ``threads`` threads."""
    rates = []
    for _ in range(repeat):
        loops = [make_loop(t, pairs // threads) for t in range(threads)]
        workers = [threading.Thread(target=loop) for loop in loops]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        rates.append((pairs // threads) * threads / (time.perf_counter() - start))
    return statistics.median(rates)


def _throughput(quick: bool) -> Table:
    table = Table(
        "Reserve + release pairs per second (memory backend, one node per thread)",
        ["threads", "ffrtmp_infra", "Go port", "ffrtmp / Go port"],
    )
    pairs = 60_000 if quick else 300_000
    repeat = 3 if quick else 7
    for threads in (1, 4, 16):
        manager = ResourceManager()
        port = GoPortManager()
        for t in range(threads):
            manager.register_node(f"n{t}", cpu=64, ram_gb=256)
            port.register_node(f"n{t}", 64.0, 0, 256.0)

        def ours(t: int, n: int, manager: ResourceManager = manager) -> Callable[[], None]:
            node, job = f"n{t}", f"job-{t}"

            def loop() -> None:
                reserve, release = manager.reserve, manager.release
                for _ in range(n):
                    reserve(job, node, cpu=2, ram_gb=4)
                    release(job)

            return loop

        def theirs(t: int, n: int, port: GoPortManager = port) -> Callable[[], None]:
            node, job = f"n{t}", f"job-{t}"

            def loop() -> None:
                reserve, release = port.reserve, port.release_exact
                for _ in range(n):
                    reserve(job, node, 2.0, 0, 4.0)
                    release(job, 2.0, 0, 4.0)

            return loop

        rates: dict[str, list[float]] = {"ours": [], "theirs": []}
        for _ in range(repeat):  # interleave the two so machine noise hits both
            rates["ours"].append(_pairs_per_second(ours, threads, pairs, 1))
            rates["theirs"].append(_pairs_per_second(theirs, threads, pairs, 1))
        a, b = statistics.median(rates["ours"]), statistics.median(rates["theirs"])
        table.add(threads, f"{a:,.0f}", f"{b:,.0f}", f"{a / b:.2f}x")
    table.notes.append(
        "ffrtmp_infra: keyword amounts parsed to integers, validation, idempotency check, "
        "index marking, an immutable Reservation returned; the port: float fields, no "
        "validation, and a release given the amounts back (upstream's own release returns "
        "only the CPU, which would exhaust the node's RAM within the loop)."
    )
    table.notes.append("CPython with the GIL: threads share one core's worth of Python.")
    return table


def _cluster(n: int, seed: int = 1) -> tuple[list[tuple[int, int, int, int]], None]:
    rnd = random.Random(seed)
    loads = []
    for i in range(n):
        c, r = SHAPES[i % len(SHAPES)]
        loads.append((c, r, rnd.randint(0, c), rnd.randint(0, r)))
    return loads, None


def _median_us(fn: Callable[[int], object], calls: int) -> float:
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def _reserve_any(quick: bool) -> Table:
    table = Table(
        "reserve_any median (µs) on a randomly loaded cluster of 4 node shapes",
        [
            "nodes",
            "scorer",
            "ffrtmp_infra (index)",
            "Go port: scan + score + reserve",
            "speedup",
            "Go port: GetAvailableNodes alone",
        ],
    )
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    for n in sizes:
        loads, _ = _cluster(n)
        port = GoPortManager()
        for i, (c, r, uc, ur) in enumerate(loads):
            port.register_node(f"n{i}", float(c), 0, float(r))
            port.reserve(f"pre{i}", f"n{i}", float(uc), 0, float(ur))
        port_calls = max(5, min(200, 2_000_000 // n)) // (4 if quick else 1)

        def port_op(i: int, port: GoPortManager = port) -> None:
            port.reserve_any_linear("x", 2.0, 0, 4.0)
            port.release_exact("x", 2.0, 0, 4.0)

        port_us = _median_us(port_op, port_calls)
        filter_us = _median_us(
            lambda i, port=port: port.get_available_nodes(2.0, 0, 4.0), port_calls
        )
        for scorer in ("binpack", "spread", "balanced"):
            manager = ResourceManager(MemoryBackend(), scorer=scorer)
            for i, (c, r, uc, ur) in enumerate(loads):
                manager.register_node(f"n{i}", cpu=c, ram_gb=r)
                manager.reserve(f"pre{i}", f"n{i}", cpu=uc, ram_gb=ur)
            manager.reserve_any("warm", cpu=2, ram_gb=4)  # builds the index once
            manager.release("warm")

            def ours(i: int, manager: ResourceManager = manager) -> None:
                manager.reserve_any("x", cpu=2, ram_gb=4)
                manager.release("x")

            ours_us = _median_us(ours, 300 if quick else 2000)
            port_cell = f"{port_us:,.1f}" if scorer == "binpack" else "-"
            speedup = f"{port_us / ours_us:,.0f}x" if scorer == "binpack" else "-"
            filter_cell = f"{filter_us:,.1f}" if scorer == "binpack" else "-"
            table.add(f"{n:,}", scorer, f"{ours_us:,.1f}", port_cell, speedup, filter_cell)
    table.notes.append(
        "Each sample is reserve_any + release of 2 cores / 4 GiB (so the cluster stays the "
        "same); medians of per-call timings. The port scans every node under its lock and "
        "keeps the most allocated one that fits (its binpack); upstream's GetAvailableNodes "
        "(filter only, no scoring, no reservation) is shown for scale."
    )
    table.notes.append(
        "The index cost grows with the number of distinct (used CPU, used GPU) levels per "
        "node shape, not with the node count; here 4 shapes with whole-core loads."
    )
    return table


def _heterogeneous(quick: bool) -> Table:
    table = Table(
        "Worst case for the index: 10,000 nodes of 100 different sizes, millicore loads",
        ["scorer", "ffrtmp_infra (index) µs", "Go port: scan + score + reserve µs", "ratio"],
    )
    rnd = random.Random(2)
    shapes = [(rnd.randint(4, 64), rnd.randint(8, 256)) for _ in range(100)]
    loads = []
    for i in range(10_000):
        c, r = shapes[i % len(shapes)]
        loads.append((c, r, rnd.randint(0, c * 1000), rnd.randint(0, r * 1024)))
    port = GoPortManager()
    for i, (c, r, uc, ur) in enumerate(loads):
        port.register_node(f"n{i}", float(c), 0, float(r))
        port.reserve(f"pre{i}", f"n{i}", uc / 1000, 0, ur / 1024)

    def port_op(i: int) -> None:
        port.reserve_any_linear("x", 2.0, 0, 4.0)
        port.release_exact("x", 2.0, 0, 4.0)

    port_us = _median_us(port_op, 20 if quick else 60)
    for scorer in ("binpack", "spread", "balanced"):
        manager = ResourceManager(MemoryBackend(), scorer=scorer)
        for i, (c, r, uc, ur) in enumerate(loads):
            manager.register_node(f"n{i}", cpu=c, ram_gb=r)
            manager.reserve(f"pre{i}", f"n{i}", cpu=f"{uc}m", ram_gb=f"{ur}Mi")
        manager.reserve_any("warm", cpu=2, ram_gb=4)
        manager.release("warm")

        def ours(i: int, manager: ResourceManager = manager) -> None:
            manager.reserve_any("x", cpu=2, ram_gb=4)
            manager.release("x")

        ours_us = _median_us(ours, 20 if quick else 60)
        table.add(scorer, f"{ours_us:,.0f}", f"{port_us:,.0f}", f"{port_us / ours_us:.2f}x")
    table.notes.append(
        "Almost every node sits in its own bucket here: binpack and spread still stop early, "
        "balanced (which cannot) falls back to a node-by-node pass per shape and runs at "
        "about the speed of a plain scan. Real clusters have few node sizes and jobs of a "
        "few sizes; this table shows where that assumption stops holding."
    )
    return table


def _redis(quick: bool) -> Table:
    from tests.support.redis_server import RedisServer, find_redis_server

    table = Table(
        "Redis backend: median latency and commands sent per operation (loopback redis-server)",
        ["operation", "nodes", "median µs", "EVALSHA per op", "other commands per op"],
    )
    binary = find_redis_server()
    if binary is None:
        table.notes.append("redis-server not found: not measured")
        return table
    server = RedisServer(binary)
    server.start()
    try:
        probe = server.client()
        for n in (100, 1_000) if not quick else (100,):
            manager = ResourceManager(RedisBackend(server.url, prefix=f"bench-{uuid.uuid4().hex}"))
            loads, _ = _cluster(n)
            for i, (c, r, uc, ur) in enumerate(loads):
                manager.register_node(f"n{i}", cpu=c, ram_gb=r)
                manager.reserve(f"pre{i}", f"n{i}", cpu=uc, ram_gb=ur)
            calls = 200 if quick else 1000
            ops: list[tuple[str, Callable[[int], object]]] = [
                ("reserve", lambda i, m=manager: m.reserve(f"r{i}", "n0", cpu=0, ram_gb=0)),
                ("release", lambda i, m=manager: m.release(f"r{i}")),
                ("reserve_any", lambda i, m=manager: m.reserve_any(f"a{i}", cpu="100m")),
                ("release", lambda i, m=manager: m.release(f"a{i}")),
            ]
            for name, op in ops:
                op(-1)  # load the script
                before = _commandstats(probe)
                us = _median_us(op, calls)
                after = _commandstats(probe)
                evalsha = (after.get("evalsha", 0) - before.get("evalsha", 0)) / calls
                table.add(name, n, f"{us:,.0f}", f"{evalsha:.2f}", "0")
            manager.close()
        probe.close()
    finally:
        server.stop()
    table.notes.append(
        "'Other commands per op' is checked by tests/resources/test_redis.py with MONITOR "
        "(every operation is exactly one EVALSHA from the client). reserve_any scores every "
        "node inside the script, so its server time grows linearly with the node count."
    )
    return table


def _commandstats(client: object) -> dict[str, int]:
    info = client.info("commandstats")  # type: ignore[attr-defined]
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


def run(quick: bool) -> list[Table]:
    return [_throughput(quick), _reserve_any(quick), _heterogeneous(quick), _redis(quick)]
