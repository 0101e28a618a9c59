"""Reference master at scale: 1,000 simulated nodes heartbeating and 10,000 queued jobs.

The master runs as its own process (``python -m examples.master``, rate limiter
and auth on, SQLite WAL file) so the load generator does not share its GIL.
One asyncio client process simulates the nodes and the API users:

1. **idle**: API latency with no nodes and an empty queue (the baseline);
2. **loaded**: every node heartbeats every 5 s (staggered), 10,000 jobs wait in
   the queue for an encoder no node has yet; the same API probes are timed;
3. **placement**: the nodes re-register with the encoder and room for every
   job; we time until the queue is empty (jobs placed per second).

The headline is the loaded/idle latency ratio and the placement rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks._harness import Table

API_KEY = "bench-submitter-key-0123456789"
WORKER_KEY = "bench-worker-key-0123456789ab"
SUBMIT = {"Authorization": f"Bearer {API_KEY}"}
WORKER = {"Authorization": f"Bearer {WORKER_KEY}"}
ROOT = Path(__file__).resolve().parent.parent
HEARTBEAT_INTERVAL = 5.0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_master(db: Path, port: int) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "examples.master", "--port", str(port), "--db", str(db),
        "--api-key", API_KEY, "--worker-key", WORKER_KEY,
        "--rate-limit", "1000000", "--rate-burst", "1000000",
        "--worker-rate-limit", "1000", "--worker-rate-burst", "1000",
        "--heartbeat-interval", str(HEARTBEAT_INTERVAL), "--heartbeat-timeout", "120",
        "--log-level", "warning",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _wait_healthy(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("master did not become healthy")


def _node(i: int, encoders: list[str], cpu: float) -> dict[str, Any]:
    return {
        "node_id": f"sim-{i:05d}",
        "capacity": {"cpu": cpu, "ram_gb": 64, "gpu": 0, "extended": {}},
        "labels": {"rack": f"r{i % 20}"},
        "encoders": encoders,
        "version": "bench",
    }


async def _gather_limited(coros: list[Any], limit: int = 64) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


async def _probe(client: httpx.AsyncClient, job_id: str, seconds: float) -> dict[str, list[float]]:
    """Time the user-facing calls round-robin for ``seconds``."""
    calls = {
        "POST /jobs": lambda: client.post(
            # needs a GPU no simulated node has: stays queued, never skews the placement count
            "/jobs",
            json={"scenario": "1080p-h264-nvenc", "queue": "batch"},
            headers=SUBMIT,
        ),
        "GET /jobs/{id}": lambda: client.get(f"/jobs/{job_id}", headers=SUBMIT),
        "GET /jobs?limit=50": lambda: client.get(
            "/jobs", params={"status": "queued", "limit": 50}, headers=SUBMIT
        ),
        "GET /health": lambda: client.get("/health"),
    }
    samples: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, call in calls.items():
            start = time.perf_counter()
            response = await call()
            samples[name].append(time.perf_counter() - start)
            if response.status_code >= 400:
                raise RuntimeError(f"{name} -> {response.status_code}: {response.text[:200]}")
    return samples


async def _heartbeats(
    client: httpx.AsyncClient, nodes: int, stop: asyncio.Event, latencies: list[float]
) -> None:
    async def one(i: int) -> None:
        await asyncio.sleep(HEARTBEAT_INTERVAL * i / nodes)  # stagger
        while not stop.is_set():
            start = time.perf_counter()
            response = await client.post(
                f"/nodes/sim-{i:05d}/heartbeat", json={"running": []}, headers=WORKER
            )
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise RuntimeError(f"heartbeat -> {response.status_code}: {response.text[:200]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_INTERVAL)

    await asyncio.gather(*(one(i) for i in range(nodes)))


async def _scenario(nodes: int, jobs: int, probe_seconds: float) -> dict[str, Any]:
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        master = _start_master(Path(tmp) / "master.db", port)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits
            ) as client:
                await _wait_healthy(client)
                first = (
                    await client.post("/jobs", json={"scenario": "720p-h265"}, headers=SUBMIT)
                ).json()
                idle = await _probe(client, first["id"], probe_seconds)

                await _gather_limited(
                    [
                        client.post(
                            "/nodes/register", json=_node(i, ["libx264", "aac"], 20), headers=WORKER
                        )
                        for i in range(nodes)
                    ]
                )
                start = time.perf_counter()
                await _gather_limited(
                    [
                        client.post(
                            "/jobs",
                            json={
                                "scenario": "720p-h265",
                                "priority": ("high", "medium", "low")[i % 3],
                            },
                            headers=SUBMIT,
                        )
                        for i in range(jobs - 1)
                    ]
                )
                submit_rate = (jobs - 1) / (time.perf_counter() - start)

                stop = asyncio.Event()
                beats: list[float] = []
                beating = asyncio.create_task(_heartbeats(client, nodes, stop, beats))
                await asyncio.sleep(HEARTBEAT_INTERVAL)  # every node has beaten once
                loaded = await _probe(client, first["id"], probe_seconds)
                queued = jobs  # the 720p-h265 jobs; probe jobs need a GPU and stay queued

                start = time.perf_counter()
                await _gather_limited(
                    [
                        client.post(
                            "/nodes/register",
                            json=_node(i, ["libx264", "libx265", "aac"], 20),
                            headers=WORKER,
                        )
                        for i in range(nodes)
                    ]
                )
                unplaceable = len(idle["POST /jobs"]) + len(loaded["POST /jobs"])
                deadline = time.monotonic() + 300
                while (await client.get("/health")).json()["queued"] > unplaceable:
                    if time.monotonic() > deadline:
                        raise RuntimeError("placement did not finish within 300 s")
                    await asyncio.sleep(0.01)
                placed_in = time.perf_counter() - start
                stop.set()
                await beating
        finally:
            master.terminate()
            master.wait(timeout=30)
    return {
        "idle": idle,
        "loaded": loaded,
        "heartbeats": beats,
        "queued": queued,
        "submit_rate": submit_rate,
        "placed": queued,
        "placed_in": placed_in,
    }


def run(quick: bool) -> list[Table]:
    nodes, jobs, probe_seconds = (200, 2_000, 3.0) if quick else (1_000, 10_000, 10.0)
    result = asyncio.run(_scenario(nodes, jobs, probe_seconds))
    latency = Table(
        f"API latency, idle vs {nodes:,} nodes heartbeating and {result['queued']:,} jobs queued",
        ["call", "idle p50 ms", "idle p99 ms", "loaded p50 ms", "loaded p99 ms", "loaded/idle p50"],
    )
    for name, idle in result["idle"].items():
        loaded = result["loaded"][name]
        latency.add(
            name,
            statistics.median(idle) * 1e3,
            _percentile(idle, 0.99) * 1e3,
            statistics.median(loaded) * 1e3,
            _percentile(loaded, 0.99) * 1e3,
            f"{statistics.median(loaded) / statistics.median(idle):.2f}x",
        )
    beats = result["heartbeats"]
    latency.add(
        "POST /nodes/{id}/heartbeat", "-", "-",
        statistics.median(beats) * 1e3, _percentile(beats, 0.99) * 1e3, "-",
    )  # fmt: skip
    latency.notes.append(
        f"Master in its own process (auth, rate limiter, tracing middleware, SQLite WAL); one "
        f"asyncio httpx client simulates the nodes (a heartbeat each every "
        f"{HEARTBEAT_INTERVAL:g} s, ~{nodes / HEARTBEAT_INTERVAL:.0f}/s) and times the calls "
        f"one after another for "
        f"{probe_seconds:g} s per phase. Same run, same machine (shared 2-core VM)."
    )
    throughput = Table(
        "Scheduling throughput",
        ["measure", "value"],
    )
    throughput.add("jobs submitted/s (POST /jobs, 64 in flight)", result["submit_rate"])
    throughput.add(
        f"jobs placed/s ({result['placed']:,} queued jobs onto {nodes:,} nodes as they register)",
        result["placed"] / result["placed_in"],
    )
    throughput.notes.append(
        "Placement: the nodes re-register with the encoder the queued jobs need; timed from the "
        "first registration until GET /health reports an empty queue (includes the 1,000 "
        "registration requests and one SQLite transaction per placement pass)."
    )
    return [latency, throughput]
