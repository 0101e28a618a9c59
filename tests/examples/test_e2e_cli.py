"""End to end: ``python -m examples.cli`` against a real master and worker."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.examples.conftest import MasterFactory, MasterProcess, WorkerFactory
from tests.examples.helpers import REPO, child_env
from tests.support.services import free_port

pytestmark = [pytest.mark.ffmpeg, pytest.mark.slow]


def cli(master: MasterProcess | None, *args: str, key: str | None = None) -> tuple[int, str]:
    env = child_env()
    env.pop("FFRTMP_API_KEY", None)
    if master is not None:
        env["FFRTMP_MASTER"] = master.url
        env["FFRTMP_API_KEY"] = key if key is not None else master.api_key
    done = subprocess.run(
        [sys.executable, "-m", "examples.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_submit_wait_status_list_and_nodes(
    start_master: MasterFactory, start_worker: WorkerFactory
) -> None:
    master = start_master()
    start_worker(master.url, name="w1", env=master.env)
    code, out = cli(
        master,
        "submit",
        "--scenario",
        "480p-h264",
        "--testsrc",
        "1",
        "--size",
        "320x240",
        "--set",
        "resolution=320x240",
        "--set",
        "crf=30",
        "--wait",
        "--json",
    )
    assert code == 0, out
    job = json.loads(out)
    assert job["status"] == "completed"
    assert job["spec"]["overrides"] == {"resolution": "320x240", "crf": 30}
    code, out = cli(master, "status", job["id"])
    assert code == 0
    assert "completed" in out
    assert f"output: {job['id']}/output.mp4" in out
    assert "attempt 1 on w1: completed" in out
    code, out = cli(master, "list", "--status", "completed")
    assert code == 0
    assert job["id"][:8] in out
    code, out = cli(master, "nodes")
    assert code == 0
    assert "w1" in out
    assert "online" in out


def test_cancel_and_retry_a_job_that_cannot_be_placed(
    start_master: MasterFactory, start_worker: WorkerFactory
) -> None:
    master = start_master()
    start_worker(master.url, name="w1", env=master.env)
    code, out = cli(master, "submit", "--scenario", "1080p-h264-nvenc", "--testsrc", "1", "--json")
    assert code == 0, out
    job_id = json.loads(out)["id"]
    code, out = cli(master, "cancel", job_id)
    assert code == 0, out
    assert "canceled" in out
    code, out = cli(master, "--json", "retry", job_id)
    assert code == 0, out
    assert json.loads(out)["status"] == "queued"


def test_errors_have_clear_messages_and_exit_codes(start_master: MasterFactory) -> None:
    master = start_master()
    code, out = cli(master, "submit", "--scenario", "4k-magic", "--testsrc", "1")
    assert code == 3
    assert "422" in out
    assert "scenario" in out
    code, out = cli(master, "submit", "--scenario", "480p-h264", "--testsrc", "1", "--url", "x")
    assert code == 2
    assert "exactly one input" in out
    code, out = cli(master, "list", key="not-the-key-of-this-master")
    assert code == 3
    assert "401" in out
    code, out = cli(None, "--master", f"http://127.0.0.1:{free_port()}", "nodes")
    assert code == 4
    assert "cannot reach the master" in out
