"""One master on SQLite, one on PostgreSQL, two on PostgreSQL: latency, placement, failover.

Each setup runs real master processes on loopback (``--db`` a SQLite file or a fresh
PostgreSQL database on 127.0.0.1:5432). Measured, in one run, one setup after the other:

1. ``POST /jobs`` p50/p99: sequential submissions on one keep-alive connection per master
   (alternating between the masters when there are two); the jobs need a GPU no node has,
   so they stay queued and do not disturb placement.
2. placements/s: jobs are submitted (spread over the masters), then the nodes register
   with room for 10 each; timed until the active master's queue is empty (a standby's
   submissions are adopted on the active master's monitor pass).
3. failover (two masters): the active master is killed with SIGKILL; timed until the
   standby's ``/health`` says it is active, i.e. it took the lease and recovered.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks._harness import Table
from benchmarks.suite_scale import (
    ENCODERS,
    SUBMIT,
    WORKER,
    _bulk,
    _free_port,
    _node,
    _percentile,
    _start_master,
)

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
LEASE_TTL = 3.0


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    import psycopg

    name = f"ffrtmp_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def _health(port: int) -> dict[str, object] | None:
    try:
        return dict(httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json())
    except (httpx.HTTPError, ValueError):
        return None


def _wait(predicate: object, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _registrations(nodes: int, cpu: float) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    return [("/nodes/register", _node(i, ENCODERS, cpu), WORKER) for i in range(nodes)]


def _setup(db: str, masters: int, nodes: int, jobs: int, submits: int) -> dict[str, object]:
    ports = [_free_port() for _ in range(masters)]
    procs = []
    try:
        for port in ports:  # one after the other: the first takes the lease
            procs.append(_start_master(db, port, "--lease-ttl", str(LEASE_TTL)))
            _wait(lambda port=port: _health(port) is not None, "a master to answer")
        active = next(p for p in ports if (_health(p) or {}).get("role") == "active")
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=60) for p in ports]
        try:
            latencies = []
            for i in range(submits):
                client = clients[i % masters]
                start = time.perf_counter()
                response = client.post(
                    "/jobs", json={"scenario": "1080p-h264-nvenc", "queue": "batch"}, headers=SUBMIT
                )
                latencies.append(time.perf_counter() - start)
                if response.status_code != 201:
                    raise RuntimeError(f"POST /jobs -> {response.status_code}: {response.text}")
            unplaceable = submits
            for index, port in enumerate(ports):
                share = [("/jobs", {"scenario": "720p-h265"}, SUBMIT)] * (jobs // masters)
                _bulk(port, share if index else share + share[: jobs % masters])
            queued = lambda: int((_health(active) or {}).get("queued", -1))  # noqa: E731
            _wait(lambda: queued() == jobs + unplaceable, "every submission adopted")
            start = time.perf_counter()
            _bulk(active, _registrations(nodes, cpu=20))
            _wait(lambda: queued() == unplaceable, "placement", timeout=300)
            placed_rate = jobs / (time.perf_counter() - start)
        finally:
            for client in clients:
                client.close()
        failover = None
        if masters > 1:
            victim = ports.index(active)
            survivor = ports[1 - victim]
            procs[victim].kill()
            killed = time.perf_counter()
            _wait(lambda: (_health(survivor) or {}).get("role") == "active", "the takeover")
            failover = time.perf_counter() - killed
        return {"latencies": latencies, "placed_rate": placed_rate, "failover": failover}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)


def run(quick: bool) -> list[Table]:
    nodes, jobs, submits = (50, 500, 200) if quick else (200, 2_000, 600)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["SQLite, one master"] = _setup(str(Path(tmp) / "m.db"), 1, nodes, jobs, submits)
    with _postgres_database() as db:
        results["PostgreSQL, one master"] = _setup(db, 1, nodes, jobs, submits)
    with _postgres_database() as db:
        results["PostgreSQL, two masters"] = _setup(db, 2, nodes, jobs, submits)
    table = Table(
        "The job store: SQLite vs PostgreSQL, one and two masters",
        ["setup", "POST /jobs p50 ms", "POST /jobs p99 ms", "placements/s"],
    )
    for name, result in results.items():
        samples = result["latencies"]
        assert isinstance(samples, list)
        table.add(
            name,
            statistics.median(samples) * 1e3,
            _percentile(samples, 0.99) * 1e3,
            result["placed_rate"],
        )
    table.notes.append(
        f"{submits:,} sequential POST /jobs on one keep-alive connection per master (two "
        f"masters: alternating); {jobs:,} jobs placed onto {nodes:,} nodes, timed from the "
        "nodes' registration until the active master's queue is empty. Masters "
        "in their own processes, PostgreSQL 15 on loopback (fsync on), shared 2-core VM."
    )
    table.notes.append(
        "Two masters are active/standby: the standby stores submissions, the active one "
        "places every job; placement throughput is one master's."
    )
    failover = Table("Failover: the active master killed with SIGKILL", ["measure", "seconds"])
    seconds = results["PostgreSQL, two masters"]["failover"]
    failover.add(f"until the standby is active (--lease-ttl {LEASE_TTL:g})", seconds)
    failover.notes.append(
        f"Bounded by the lease: at most --lease-ttl x 4/3 = {LEASE_TTL * 4 / 3:g} s here "
        "(renewals every TTL/3; the expiry depends on when the victim last renewed), plus "
        "the standby's recovery from the store."
    )
    return [table, failover]
