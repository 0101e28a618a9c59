"""End to end: requests per second through a real uvicorn on loopback, driven by ``wrk``.

Every scenario serves the same Starlette endpoint (``GET /jobs/{job_id}`` returning
"ok") in its own uvicorn process (one worker, uvicorn's defaults: uvloop and
httptools when installed, access log off). All servers start first; then each round
runs ``wrk`` against every server in turn (interleaved rounds, so the machine's noise
spreads over all of them) and the table shows medians over the rounds.

Pinning: on a machine with at least two CPUs, every server process is pinned to CPU 0
and ``wrk`` (one thread) to CPU 1, so the server being measured has a core of its own
and the load generator never takes turns with it on the same core (the idle servers
sleep in epoll). With one CPU nothing is pinned, which the notes say.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._harness import MissingTool, Table
from benchmarks._icount import Icount, Loop

ROOT = Path(__file__).resolve().parent.parent
HUGE = 1_000_000_000
PATH = "/jobs/42"
CONNECTIONS = 8
TARGET_RATELIMIT_VS_BARE = 0.95


def _bare() -> Any:
    from benchmarks.suite_tracing import starlette_app

    return starlette_app()


def _ffrtmp_ratelimit() -> Any:
    from ffrtmp_infra.ratelimit import Limiter, RateLimitMiddleware

    # In memory, a bucket refilling far faster than requests arrive: never rejects.
    return RateLimitMiddleware(_bare(), limiter=Limiter(HUGE, 100))


def _slowapi() -> Any:
    from slowapi import Limiter
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address

    app = _bare()
    app.state.limiter = Limiter(key_func=get_remote_address, default_limits=[f"{HUGE}/second"])
    app.add_middleware(SlowAPIASGIMiddleware)
    return app


def _asgi_ratelimit() -> Any:
    from ratelimit.backends.simple import MemoryBackend

    from ratelimit import RateLimitMiddleware, Rule

    async def by_ip(scope: Any) -> tuple[str, str]:
        return scope["client"][0], "default"

    return RateLimitMiddleware(_bare(), by_ip, MemoryBackend(), {r"^/": [Rule(second=HUGE)]})


def _ffrtmp_tracing() -> Any:
    from benchmarks.suite_tracing import sdk_provider
    from ffrtmp_infra.tracing import TracingMiddleware

    app = _bare()
    app.add_middleware(TracingMiddleware, tracer_provider=sdk_provider(0.1))
    return app


def _contrib_tracing() -> Any:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.metrics import NoOpMeterProvider

    from benchmarks.suite_tracing import sdk_provider

    app = _bare()
    app.add_middleware(
        OpenTelemetryMiddleware,
        tracer_provider=sdk_provider(0.1),
        meter_provider=NoOpMeterProvider(),
        exclude_spans=["receive", "send"],
    )
    return app


#: name -> (app factory, the module it needs). Add a scenario by adding an entry.
SCENARIOS: dict[str, tuple[Callable[[], Any], str]] = {
    "bare Starlette": (_bare, "starlette"),
    "ffrtmp RateLimitMiddleware (memory)": (_ffrtmp_ratelimit, "ffrtmp_infra.ratelimit"),
    "slowapi SlowAPIASGIMiddleware": (_slowapi, "slowapi"),
    "asgi-ratelimit MemoryBackend": (_asgi_ratelimit, "ratelimit"),
    "ffrtmp TracingMiddleware @ 10%": (_ffrtmp_tracing, "ffrtmp_infra.tracing"),
    "contrib ASGI tracing @ 10%": (_contrib_tracing, "opentelemetry.instrumentation.asgi"),
}
BARE = "bare Starlette"
OURS = "ffrtmp RateLimitMiddleware (memory)"
TRACING = "ffrtmp TracingMiddleware @ 10%"


def wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise MissingTool(
            "the http suite needs wrk, which is not on PATH: install it "
            "(Debian/Ubuntu: apt-get install wrk) or run the other suites"
        )
    return path


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _pins() -> tuple[set[int], set[int]] | None:
    """(server CPUs, wrk CPUs), or None when there are not two CPUs to split."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[0]}, {cpus[1]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    """One uvicorn process serving one scenario on a loopback port."""

    def __init__(self, scenario: str, cpus: set[int] | None) -> None:
        self.port = _free_port()
        command = [sys.executable, "-m", "benchmarks.suite_http", scenario, str(self.port)]
        if cpus is not None:
            command += [",".join(map(str, sorted(cpus)))]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.stderr()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server on port {self.port} not ready after {timeout} s")

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far, all its threads (ns from schedstat)."""
        total = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
                continue
        return total / 1e9

    def stderr(self) -> str:
        return self.process.stderr.read()[-2000:] if self.process.stderr else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stderr:
            self.process.stderr.close()


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_COUNT = re.compile(r"(\d+) requests in ")
_P50 = re.compile(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNIT = {"us": 1.0, "ms": 1e3, "s": 1e6}


def _load(port: int, seconds: int, cpus: set[int] | None) -> tuple[float, float, int]:
    """One wrk run: (requests per second, p50 latency in µs, requests); all 2xx."""
    command = [
        wrk(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
        f"http://127.0.0.1:{port}{PATH}",
    ]  # fmt: skip
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus is not None else None
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, preexec_fn=pin, check=False
    )
    rps, p50, count = _RPS.search(done.stdout), _P50.search(done.stdout), _COUNT.search(done.stdout)
    if done.returncode != 0 or rps is None or p50 is None or count is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    if "Non-2xx or 3xx responses" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"wrk saw errors or non-2xx responses:\n{done.stdout}")
    return float(rps.group(1)), float(p50.group(1)) * _UNIT[p50.group(2)], int(count.group(1))


def throughput_table(quick: bool) -> Table:
    wrk()
    rounds, seconds, warmup = (2, 1, 1) if quick else (7, 4, 1)  # wrk takes whole seconds
    pins = _pins()
    server_cpus, wrk_cpus = pins if pins is not None else (None, None)
    names = [name for name, (_, module) in SCENARIOS.items() if _installed(module)]
    missing = [name for name in SCENARIOS if name not in names]
    servers: dict[str, _Server] = {}
    rps: dict[str, list[float]] = {name: [] for name in names}
    p50: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    try:
        for name in names:
            servers[name] = _Server(name, server_cpus)
        for name in names:
            servers[name].wait_ready()
            _load(servers[name].port, warmup, wrk_cpus)
        for _ in range(rounds):
            for name in names:
                before = servers[name].cpu_seconds()
                r, p, count = _load(servers[name].port, seconds, wrk_cpus)
                cpu[name].append((servers[name].cpu_seconds() - before) / count)
                rps[name].append(r)
                p50[name].append(p)
    finally:
        for server in servers.values():
            server.stop()
    bare = statistics.median(rps[BARE])
    bare_cpu = statistics.median(cpu[BARE])
    table = Table(
        "Requests per second through uvicorn on loopback (wrk, one server worker)",
        ["scenario", "req/s (median)", "vs bare", "req/s min-max", "p50 latency µs (median)",
         "server CPU µs/request (median)", "CPU capacity vs bare"],
    )  # fmt: skip
    for name in names:
        median = statistics.median(rps[name])
        cpu_median = statistics.median(cpu[name])
        table.add(
            name,
            median,
            "—" if name == BARE else f"{median / bare:.3f}x",
            f"{min(rps[name]):,.0f}-{max(rps[name]):,.0f}",
            statistics.median(p50[name]),
            cpu_median * 1e6,
            "—" if name == BARE else f"{bare_cpu / cpu_median:.3f}x",
        )
    if OURS in rps:
        ratio = statistics.median(rps[OURS]) / bare
        capacity = bare_cpu / statistics.median(cpu[OURS])
        verdict = "met" if ratio >= TARGET_RATELIMIT_VS_BARE else "MISSED"
        table.notes.append(
            f"target: ffrtmp rate limiting >= {TARGET_RATELIMIT_VS_BARE}x bare Starlette's "
            f"throughput: {ratio:.3f}x in req/s, {verdict}; {capacity:.3f}x in server CPU "
            "per request"
        )
    pinning = (
        f"server processes pinned to CPU {min(server_cpus)}, wrk (1 thread) to CPU {min(wrk_cpus)}"
        if server_cpus is not None and wrk_cpus is not None
        else "one CPU: nothing pinned, server and wrk share it"
    )
    table.notes += [
        f"medians of {rounds} interleaved rounds of {seconds:g} s per scenario (each server "
        f"warmed up {warmup:g} s first); wrk -t1 -c{CONNECTIONS} keep-alive on GET {PATH}; "
        f"{pinning}; every response checked to be a 2xx",
        "uvicorn with one worker, default loop and HTTP parser (uvloop, httptools), "
        "--no-access-log; rate limiters in memory with a limit they never reach; tracing "
        "with build_tracer_provider's sampler at 10% and a batch processor into an exporter "
        "that drops spans; contrib with exclude_spans=['receive', 'send'] and a no-op meter",
        "server CPU µs/request: CPU time of the server process (all threads, from "
        "/proc/<pid>/task/*/schedstat) during the wrk run divided by the requests wrk "
        "completed; 'CPU capacity vs bare' is bare's CPU per request over the scenario's, the "
        "throughput ratio a server with a core to itself would reach",
        "wall-clock throughput on a machine shared with other work: req/s drift between "
        "runs and a loaded core caps them; server CPU per request is much steadier",
    ]
    if missing:
        table.notes.append(f"not installed, not measured: {', '.join(missing)}")
    return table


# --icount ---------------------------------------------------------------------------
_REQUEST = f"GET {PATH} HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: bench\r\n\r\n".encode()


def _in_process_server(scenario: str) -> Loop:
    """loop(n): n keep-alive requests, one after the other, to a uvicorn serving
    ``scenario`` in a thread of this process (both sides counted: the client is a raw
    socket doing the same small work for every scenario)."""
    import threading

    import uvicorn

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        SCENARIOS[scenario][0](), log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn serving {scenario!r} did not start")
        time.sleep(0.01)
    client = socket.create_connection(listener.getsockname())

    def run(n: int) -> object:
        for _ in range(n):
            client.sendall(_REQUEST)
            data = b""
            while b"\r\n\r\n" not in data:
                data += client.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"{scenario}: {head!r}")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += client.recv(65536)
        return None

    return run


def icount(quick: bool) -> Icount:
    """Instructions per request through uvicorn's HTTP layer (httptools, uvloop)."""
    names = [name for name, (_, module) in SCENARIOS.items() if _installed(module)]
    return Icount(
        "Instructions per request through uvicorn (server and a raw-socket client, one process)",
        "request",
        {name: lambda name=name: _in_process_server(name) for name in names},
        reference=OURS,
        baseline=BARE,
        references={name: TRACING for name in names if "Tracing" in name or "tracing" in name},
        capacity=True,
        n=(100, 600) if quick else (200, 2000),
        notes=[
            "uvicorn (one server, uvloop and httptools, access log off) in a thread, and a "
            "client sending keep-alive GETs over a raw socket in the main thread; the "
            "client's work is the same for every scenario, so 'added instructions' is what "
            "the middleware costs through a real HTTP server, response headers included",
            "with a server thread and sockets, counts move by 1-2% between runs (event-loop "
            "wake-ups batch differently), far less than wall-clock figures",
            "'added vs ffrtmp': tracing rows against ffrtmp tracing, the others against "
            "ffrtmp rate limiting; 'throughput vs bare' = instructions(bare) / "
            "instructions(scenario), the req/s ratio a CPU-bound server would reach",
        ],
    )


def run(quick: bool) -> list[Table]:
    return [throughput_table(quick)]


def serve(scenario: str, port: int, cpus: set[int] | None) -> None:
    """Child process: serve one scenario until SIGTERM."""
    import uvicorn

    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    app = SCENARIOS[scenario][0]()
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


if __name__ == "__main__":
    cpu_arg = {int(c) for c in sys.argv[3].split(",")} if len(sys.argv) > 3 else None
    serve(sys.argv[1], int(sys.argv[2]), cpu_arg)
