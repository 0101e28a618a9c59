"""The benchmark runner's instruction counts (a behaviour, not a timing)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )


@pytest.mark.timeout(900)  # a dozen callgrind runs, on a machine that may be loaded
def test_icount_quick_prints_instructions_per_request_for_bare_and_ffrtmp() -> None:
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is required (.ci/run installs it)")
    done = _run("ratelimit", "--icount", "--quick")
    assert done.returncode == 0, done.stderr
    rows = {}
    for line in done.stdout.splitlines():
        found = re.match(r"^(Starlette bare|ffrtmp ratelimit, draft-10 headers)\s+([\d,]+)\s", line)
        if found:
            rows[found.group(1)] = int(found.group(2).replace(",", ""))
    assert set(rows) == {"Starlette bare", "ffrtmp ratelimit, draft-10 headers"}, done.stdout
    # A Starlette request is tens of thousands of instructions; the middleware adds some.
    assert 10_000 < rows["Starlette bare"] < rows["ffrtmp ratelimit, draft-10 headers"]
    # Client-side instructions per Redis call: a decision does more than a PING.
    calls = dict(re.findall(r"^((?:async )?(?:PING|decision))\s+([\d,]+)\s", done.stdout, re.M))
    assert set(calls) == {"PING", "decision", "async PING", "async decision"}, done.stdout
    count = {name: int(value.replace(",", "")) for name, value in calls.items()}
    assert 0 < count["PING"] < count["decision"]
    assert 0 < count["async PING"] < count["async decision"]


def test_icount_without_valgrind_says_so_and_fails(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bindir)}
    done = _run("ratelimit", "--icount", "--quick", env=env)
    assert done.returncode == 2
    assert "needs valgrind" in done.stderr
    assert "apt-get install valgrind" in done.stderr
    assert "Traceback" not in done.stderr


def test_ratelimit_redis_table_runs_against_a_real_server() -> None:
    """The Redis rows of ``python -m benchmarks ratelimit`` (public API only, no internals)."""
    from benchmarks import suite_ratelimit

    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is required (.ci/run installs it)")
    table = suite_ratelimit.redis_table(quick=True)
    assert table is not None
    assert [row[0] for row in table.rows] == ["sync redis-py", "async redis-py"]
    for row in table.rows:
        ping, get, decision = (float(cell.replace(",", "")) for cell in row[1:4])
        assert min(ping, get, decision) > 0, row
        server_ping, server_decision = (float(v) for v in row[6].split(" / "))
        # The script does more work on the server than a PING does.
        assert 0 < server_ping < server_decision, row


def test_scale_scenario_runs_with_node_tokens() -> None:
    """The scale suite drives a real master: every heartbeat and re-registration is accepted.

    Nodes must present their node token since the master fences node identities; the suite
    once sent none and every heartbeat was refused (403).
    """
    from benchmarks import suite_scale

    result = suite_scale._scenario(nodes=10, jobs=40, probe_seconds=0.3)
    assert result["placed"] == 40
    assert len(result["heartbeats"]["latencies"]) >= 10  # every node beat at least once
    assert set(result["loaded"]) == {
        "POST /jobs",
        "GET /jobs/{id}",
        "GET /jobs?limit=50",
        "GET /health",
    }


def test_tracing_icount_scenarios_run_and_compare_at_the_same_sampling() -> None:
    """Every --icount scenario of the tracing suite serves requests (no valgrind needed)."""
    from benchmarks import suite_tracing

    spec = suite_tracing.icount(quick=True)
    assert spec.baseline == "bare Starlette"
    assert spec.references["contrib ASGI (exclude_spans) @ 0%"] == "ffrtmp TracingMiddleware @ 0%"
    assert spec.references["contrib ASGI (exclude_spans) @ 100%"] == (
        "ffrtmp TracingMiddleware @ 100%"
    )
    for name, make in spec.scenarios.items():
        assert make()(3) is None, name


def test_http_quick_serves_every_scenario_through_uvicorn_and_wrk() -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is required (.ci/run installs it)")
    done = _run("http", "--quick")
    assert done.returncode == 0, done.stderr
    rows = {}
    for line in done.stdout.splitlines():
        found = re.match(r"^(bare Starlette|ffrtmp \w+Middleware .*?)\s{2,}([\d,]+)\s", line)
        if found:
            rows[found.group(1)] = int(found.group(2).replace(",", ""))
    assert set(rows) == {
        "bare Starlette",
        "ffrtmp RateLimitMiddleware (memory)",
        "ffrtmp TracingMiddleware @ 10%",
    }, done.stdout
    assert min(rows.values()) > 0
    assert "target: ffrtmp rate limiting >= 0.95x" in done.stdout


def test_http_without_wrk_says_so_and_fails(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    done = _run("http", "--quick", env={**os.environ, "PATH": str(bindir)})
    assert done.returncode == 2
    assert "needs wrk" in done.stderr
    assert "apt-get install wrk" in done.stderr
    assert "Traceback" not in done.stderr


def test_http_icount_scenarios_serve_through_uvicorn() -> None:
    """Every --icount scenario of the http suite answers through a real uvicorn."""
    from benchmarks import suite_http

    spec = suite_http.icount(quick=True)
    assert spec.baseline == "bare Starlette"
    assert spec.capacity
    for name, make in spec.scenarios.items():
        assert make()(3) is None, name  # raises unless every response is a 200
