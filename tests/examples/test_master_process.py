"""The master as a real process: CLI flags, one trace across job steps, restart on the same DB."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.examples.conftest import mark_schema_newer
from tests.support.otlp import OTLPReceiver
from tests.support.services import free_port

WORKER_KEY = "worker-key-0123456789abcdef"
API_KEY = "submitter-key-0123456789abcdef"


@contextmanager
def master_process(db: Path | str, *extra: str, verify: str | bool = True) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "100", "FFRTMP_API_KEY": API_KEY}
    env["FFRTMP_WORKER_KEY"] = WORKER_KEY
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.master", "--port", str(port), "--db", str(db), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    scheme = "https" if "--tls-auto" in extra or "--tls-cert" in extra else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1, verify=verify).status_code == 200:
                    break
            except (httpx.TransportError, ssl.SSLError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                output = proc.communicate(timeout=5)[0] if proc.poll() is not None else ""
                raise AssertionError(f"master did not start: {output}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_help_lists_the_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "examples.master", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in (
        "--tls-cert",
        "--tls-client-ca",
        "--api-key",
        "--worker-key",
        "--rate-limit",
        "--otlp-endpoint",
        "--sample-ratio",
        "--stale-timeout-live",
        "--max-retries",
        "--heartbeat-timeout",
    ):
        assert flag in out


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--heartbeat-interval", "10", "--heartbeat-timeout", "5"], "heartbeat_timeout"),
        (["--sample-ratio", "7"], "sample_ratio"),
        (["--max-retries", "-1"], "max_retries"),
        (["--tls-client-ca", "ca.crt"], "--tls-client-ca"),
    ],
)
def test_bad_flag_value_fails_naming_it(tmp_path: Path, flags: list[str], named: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.master", "--db", str(tmp_path / "m.db"), *flags],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert named in result.stderr


def test_job_steps_form_one_trace(tmp_path: Path, otlp_receiver: OTLPReceiver) -> None:
    worker = {"Authorization": f"Bearer {WORKER_KEY}"}
    with (
        master_process(
            tmp_path / "m.db", "--otlp-endpoint", otlp_receiver.endpoint, "--sample-ratio", "1"
        ) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        registered = client.post(
            "/nodes/register",
            json={
                "node_id": "w1",
                "capacity": {"cpu": 2, "ram_gb": 4},
                "encoders": ["libx264", "aac"],
            },
            headers=worker,
        )
        registered.raise_for_status()
        worker["X-Node-Token"] = registered.json()["node_token"]
        job = client.post(
            "/jobs", json={"scenario": "480p-h264"}, headers={"Authorization": f"Bearer {API_KEY}"}
        ).json()
        assignment = client.post("/nodes/w1/claim", json={"wait": 5}, headers=worker).json()
        carrier = assignment["trace"]
        assert carrier["traceparent"].startswith("00-")
        # What the worker's httpx hook does: the result request carries its job's context.
        client.post(
            f"/jobs/{job['id']}/result",
            json={"node_id": "w1", "attempt": 1, "status": "completed", "wall_time_s": 1.0},
            headers={**worker, "traceparent": carrier["traceparent"]},
        ).raise_for_status()
        deadline = time.monotonic() + 15
        names: dict[str, list] = {}
        while time.monotonic() < deadline:
            names = {}
            for span in otlp_receiver.spans:
                names.setdefault(span.name, []).append(span)
            if {"job.create", "job.assign", "job.complete"} <= set(names):
                break
            time.sleep(0.1)
    create, assign, complete = (
        names["job.create"][0],
        names["job.assign"][0],
        names["job.complete"][0],
    )
    assert create.trace_id == assign.trace_id == complete.trace_id
    assert assign.parent_span_id == create.span_id
    assert carrier["traceparent"].split("-")[1] == create.trace_id
    assert carrier["traceparent"].split("-")[2] == assign.span_id
    assert create.resource.get("service.name") == "ffrtmp-master"
    server_spans = [name for name in names if name.startswith("POST ")]
    assert any("/result" in name for name in server_spans)
    assert not any("/claim" in name for name in server_spans)  # long-polls are not traced


def test_restart_of_the_process_keeps_queued_jobs(db: str) -> None:
    submit = {"Authorization": f"Bearer {API_KEY}"}
    with master_process(db) as url:
        job = httpx.post(f"{url}/jobs", json={"scenario": "720p-h264"}, headers=submit).json()
    with master_process(db) as url:
        again = httpx.get(f"{url}/jobs/{job['id']}", headers=submit).json()
    assert again["status"] == "queued"
    assert again["id"] == job["id"]


def test_db_takes_a_sqlite_url(tmp_path: Path) -> None:
    with master_process(f"sqlite:///{tmp_path}/url.db") as url:
        assert httpx.get(f"{url}/health").status_code == 200
    assert (tmp_path / "url.db").exists()


def test_a_master_refuses_to_start_on_a_newer_schema(db: str) -> None:
    newer = mark_schema_newer(db)
    result = subprocess.run(
        [sys.executable, "-m", "examples.master", "--db", db],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"schema version {newer}" in result.stderr
    assert "run a newer master" in result.stderr


def test_tls_auto_generates_certificates_and_serves_https(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    # The CA does not exist before the master writes it: poll for readiness unverified,
    # then check the served certificate against the generated CA.
    with master_process(tmp_path / "m.db", "--tls-auto", str(certs), verify=False) as url:
        assert url.startswith("https://")
        assert (certs / "server.key").stat().st_mode & 0o777 == 0o600
        trusted = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        assert httpx.get(f"{url}/health", verify=trusted).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health", verify=ssl.create_default_context())  # unknown CA
