"""The framework integrations under real multi-process servers on loopback.

uvicorn ``--workers 2`` (FastAPI, Django ASGI) and gunicorn ``-w 2`` (Flask, Django
WSGI) serve tests/ratelimit/server_apps.py; with Redis storage the limits hold exactly
across the worker processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
MAX_REQUESTS = 200  # per loop: enough for both workers to answer a few times each


@contextlib.contextmanager
def serve(command: list[str], app: str, storage: str, port: int, **extra_env: str) -> Iterator[str]:
    """Run a server command until the block ends; yields its URL."""
    env = {
        **os.environ,
        **extra_env,
        "FFRTMP_TEST_APP": app,
        "FFRTMP_TEST_STORAGE": storage,
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its workers are stopped with it
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                assert process.stderr is not None
                raise RuntimeError(f"{command[0]} exited: {process.stderr.read()[-2000:]!r}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not listen on 127.0.0.1:{port}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        assert process.stderr is not None
        process.stderr.close()


def uvicorn(target: str, port: int) -> list[str]:
    return ["uvicorn", target, "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
            "--log-level", "warning", "--no-access-log"]  # fmt: skip


def gunicorn(target: str, port: int) -> list[str]:
    return ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning", target]


def fresh_client(base: str) -> httpx.Client:
    """A client opening a new connection per request, so the kernel picks any worker."""
    return httpx.Client(base_url=base, limits=httpx.Limits(max_keepalive_connections=0))


def until_both_workers_answered(client: httpx.Client, path: str) -> list[httpx.Response]:
    """GET ``path`` until each of the two workers answered at least 4 times (bounded)."""
    responses: list[httpx.Response] = []
    per_worker: dict[str | None, int] = {}
    while len(responses) < MAX_REQUESTS:
        response = client.get(path)
        responses.append(response)
        pid = response.headers.get("x-worker-pid")
        per_worker[pid] = per_worker.get(pid, 0) + 1
        if len(per_worker) >= 2 and min(per_worker.values()) >= 4:
            break
    return responses


def test_fastapi_under_two_uvicorn_workers_holds_a_redis_limit_exactly(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    target = "tests.ratelimit.server_apps:fastapi_app"
    gate = tmp_path / "gate"
    server = serve(uvicorn(target, port), "fastapi", redis_url, port, FFRTMP_TEST_GATE=str(gate))
    with server as base, fresh_client(base) as client:
        items = until_both_workers_answered(client, "/items/1")
        origin = "https://app.example"
        preflight = {"Origin": origin, "Access-Control-Request-Method": "GET"}
        preflights = [client.options("/stream", headers=preflight) for _ in range(5)]
        with client.stream("GET", "/stream") as streamed:
            chunks = streamed.iter_raw()
            first = next(chunks)
            gate.touch()  # only now may the endpoint finish
            rest = b"".join(chunks)
        handshakes = [_websocket_status(base) for _ in range(3)]
    assert len({r.headers["x-worker-pid"] for r in items}) == 2, "one worker answered all"
    statuses = [r.status_code for r in items]
    assert statuses.count(200) == 3, statuses  # burst 3, shared by both processes
    assert set(statuses[3:]) == {429}
    assert items[3].headers["content-type"] == "application/problem+json"
    # Preflights pass the limiter uncharged to CORS inside it ...
    assert [r.status_code for r in preflights] == [200] * 5
    assert all(r.headers["access-control-allow-origin"] == origin for r in preflights)
    # ... so the site limit (burst 3) is untouched: the stream is its first unit.
    assert streamed.status_code == 200
    assert streamed.headers["ratelimit"].startswith('"site";r=2;')
    assert (first, rest) == (b"first;", b"released")  # streamed, not buffered
    # Two more units, then the handshake is refused with a 429.
    assert handshakes == [101, 101, 429]


def _websocket_status(base: str) -> int:
    """The HTTP status of a WebSocket handshake (101 when accepted)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(base.replace("http://", "ws://") + "/ws", open_timeout=10) as ws:
            assert ws.recv(timeout=10) == "hello"
            return 101
    except InvalidStatus as exc:
        return int(exc.response.status_code)


def test_contract_flask_limit_under_two_gunicorn_workers_admits_exactly_3_of_10(
    redis_url: str,
) -> None:
    port = free_port()
    target = "tests.ratelimit.server_apps:flask_app"
    with serve(gunicorn(target, port), "flask", redis_url, port) as base, fresh_client(base) as c:
        responses = [c.get("/items/1") for _ in range(10)]
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 3, statuses
    assert statuses.count(429) == 7, statuses
    assert responses[0].headers["ratelimit"] == '"flask-items";r=2;t=1'


@pytest.mark.parametrize(
    ("server", "target"),
    [("gunicorn", "django_wsgi"), ("uvicorn", "django_asgi")],
    ids=["gunicorn-wsgi", "uvicorn-asgi"],
)
def test_django_under_two_workers_holds_the_setting_and_the_decorator(
    server: str, target: str, redis_url: str
) -> None:
    port = free_port()
    build = gunicorn if server == "gunicorn" else uvicorn
    command = build(f"tests.ratelimit.server_apps:{target}", port)
    with serve(command, "django", redis_url, port) as base, fresh_client(base) as client:
        site = until_both_workers_answered(client, "/")
        items = until_both_workers_answered(client, "/items/1")
    assert len({r.headers["x-worker-pid"] for r in site + items}) == 2, "one worker answered all"
    assert [r.status_code for r in site].count(200) == 3  # the middleware, from the setting
    assert site[0].headers["ratelimit"] == '"django-site";r=2;t=100'
    assert [r.status_code for r in items].count(200) == 3  # the view's decorator
    assert items[0].headers["ratelimit"] == '"django-items";r=2;t=100'


def test_in_memory_limits_are_per_process(redis_url: str) -> None:
    """What docs/ratelimit.md warns about: memory storage gives each worker a bucket."""
    port = free_port()
    target = "tests.ratelimit.server_apps:fastapi_app"
    with (
        serve(uvicorn(target, port), "fastapi", "memory://", port) as base,
        fresh_client(base) as c,
    ):
        responses = until_both_workers_answered(c, "/items/1")
    pids = {r.headers["x-worker-pid"] for r in responses}
    admitted = {
        pid: sum(r.status_code == 200 for r in responses if r.headers["x-worker-pid"] == pid)
        for pid in pids
    }
    assert len(pids) == 2
    assert sorted(admitted.values()) == [3, 3]  # 3 per process: 6 in all, not 3
