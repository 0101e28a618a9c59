"""The worker against a misbehaving master (issue 14, finding 7)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.examples.conftest import RTMPReceiver, WorkerFactory
from tests.examples.fake_master import FakeMaster
from tests.examples.helpers import wait_until
from tests.examples.test_worker_loop import batch_spec, live_spec

pytestmark = [pytest.mark.ffmpeg, pytest.mark.slow]


def test_bad_json_and_wrong_types_are_retried_and_no_thread_dies(
    fake_master: tuple[FakeMaster, str], start_worker: WorkerFactory
) -> None:
    master, url = fake_master
    with master.lock:
        master.bad_claims.extend([b"<html>not json</html>", b"[1, 2, 3]", b'{"job_id": 5}'])
        master.bad_heartbeats.extend([{"cancel": 5}, "online", [1], {"cancel": [None]}])
    worker = start_worker(url)
    wait_until(lambda: not master.bad_heartbeats, timeout=30, what="the bad heartbeats")
    beats = len(master.of("/heartbeat"))
    job_id = master.submit(batch_spec())
    [result] = wait_until(lambda: master.results(job_id), timeout=60, what="a job after them")
    assert result["status"] == "completed"  # the claim thread survived
    wait_until(lambda: len(master.of("/heartbeat")) > beats + 2, timeout=30, what="heartbeats")
    log = worker.log()
    assert "answer is not JSON" in log
    assert "cancel must be a list" in log
    assert "Traceback" not in log


def test_a_job_id_that_is_not_a_safe_id_is_refused(
    fake_master: tuple[FakeMaster, str], start_worker: WorkerFactory, tmp_path: Path
) -> None:
    master, url = fake_master
    worker = start_worker(url)
    master.submit(batch_spec(), job_id="../escape")
    job_id = master.submit(batch_spec())
    [result] = wait_until(lambda: master.results(job_id), timeout=60, what="the next job")
    assert result["status"] == "completed"
    assert not [c for c in master.calls if "escape" in c.path]
    assert not (tmp_path / "w1" / "escape").exists()
    assert "invalid job id" in worker.log()


def test_local_concurrency_is_capped_by_the_cpus_offered(
    fake_master: tuple[FakeMaster, str],
    start_worker: WorkerFactory,
    rtmp_receiver: Callable[[], RTMPReceiver],
) -> None:
    master, url = fake_master
    start_worker(url, cpu=1)  # no --max-jobs: one job per CPU offered
    first = master.submit(live_spec(rtmp_receiver().url, seconds=2))
    second = master.submit(live_spec(rtmp_receiver().url, seconds=1))
    wait_until(lambda: master.of("/progress", first), timeout=60, what="the first job running")
    assert len(master.pending) == 1, "the second job is not claimed while the first runs"
    [result] = wait_until(lambda: master.results(second), timeout=60, what="the second job")
    assert result["status"] == "completed"
    assert master.of("/result", first)[0].at <= master.of("/progress", second)[0].at
