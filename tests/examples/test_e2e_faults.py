"""End to end under failure: a worker killed, a worker frozen, the master restarted.

Jobs read a clip from a deliberately slow HTTP source, so a transcode stays in progress
for seconds without loading the (shared, 2-core) CPU. Every wait polls with a generous
deadline; nothing asserts on elapsed time.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from examples.cli import APIClient, MasterError

from tests.examples.conftest import MasterFactory, WorkerFactory
from tests.examples.helpers import children_of, wait_until

pytestmark = [pytest.mark.ffmpeg, pytest.mark.slow]

SlowClip = Callable[[float, float], str]
#: the slow clips are served from loopback, which the SSRF guard refuses by default
LOCAL_CLIPS = ("--allow-input-host", "127.0.0.1")


def slow_spec(url: str) -> dict[str, Any]:
    return {
        "scenario": "480p-h264",
        "input": {"type": "url", "url": url},
        "overrides": {"resolution": "320x240", "preset": "ultrafast"},
    }


def status_of(api: APIClient, job_id: str, *wanted: str) -> dict[str, Any] | None:
    job = api.job(job_id)
    return job if job["status"] in wanted else None


def node_status(api: APIClient, node_id: str) -> str:
    try:
        return str(api.node(node_id)["status"])
    except MasterError as exc:
        if exc.status == 404:
            return "unknown"
        raise


def both_online(api: APIClient) -> bool:
    return {n["id"] for n in api.nodes() if n["status"] == "online"} == {"w1", "w2"}


def completed_attempts(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in job["attempts"] if a["outcome"] == "completed"]


def test_kill_9_mid_transcode_requeues_to_the_other_worker_and_marks_the_node_offline(
    start_master: MasterFactory, start_worker: WorkerFactory, slow_clip: SlowClip, db: str
) -> None:
    master = start_master(*LOCAL_CLIPS, db=db)
    workers = {n: start_worker(master.url, name=n, env=master.env) for n in ("w1", "w2")}
    url = slow_clip(3, 5)
    with master.client() as api:
        wait_until(lambda: both_online(api), timeout=60, what="two workers")
        job_id = api.submit(slow_spec(url))["id"]
        running = wait_until(lambda: status_of(api, job_id, "running"), timeout=60, what="running")
        victim = running["node_id"]
        survivor = "w2" if victim == "w1" else "w1"
        workers[victim].signal(signal.SIGKILL)
        job = wait_until(
            lambda: status_of(api, job_id, "completed", "failed"), timeout=90, what="the job"
        )
        assert job["status"] == "completed", job
        assert job["node_id"] == survivor
        assert [a["node_id"] for a in completed_attempts(job)] == [survivor]
        assert job["attempts"][0]["node_id"] == victim
        assert job["result"]["media_duration_s"] == pytest.approx(3.0, abs=1 / 25)
        wait_until(lambda: node_status(api, victim) == "offline", timeout=30, what="offline")


def test_a_frozen_worker_that_comes_back_cannot_complete_the_reassigned_job(
    start_master: MasterFactory, start_worker: WorkerFactory, slow_clip: SlowClip, db: str
) -> None:
    master = start_master(*LOCAL_CLIPS, db=db)
    workers = {n: start_worker(master.url, name=n, env=master.env) for n in ("w1", "w2")}
    url = slow_clip(3, 5)
    with master.client() as api:
        wait_until(lambda: both_online(api), timeout=60, what="two workers")
        job_id = api.submit(slow_spec(url))["id"]
        running = wait_until(lambda: status_of(api, job_id, "running"), timeout=60, what="running")
        stale_name = running["node_id"]
        survivor = "w2" if stale_name == "w1" else "w1"
        stale = workers[stale_name]
        frozen = [stale.pid, *children_of(stale.pid)]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            job = wait_until(
                lambda: status_of(api, job_id, "completed", "failed"), timeout=90, what="the job"
            )
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        assert job["status"] == "completed", job
        assert job["node_id"] == survivor
        # the old attempt wakes up, reports, is told it was superseded and gives up
        wait_until(
            lambda: "superseded" in stale.log() or "result refused" in stale.log(),
            timeout=60,
            what="the stale worker to learn it was superseded",
        )
        job = api.job(job_id)
        assert job["status"] == "completed"
        assert [a["node_id"] for a in completed_attempts(job)] == [survivor]
        assert f"job {job_id} attempt 1: COMPLETED" not in stale.log()


def test_master_restart_mid_run_loses_nothing_and_completes_nothing_twice(
    start_master: MasterFactory, start_worker: WorkerFactory, slow_clip: SlowClip, db: str
) -> None:
    master = start_master(*LOCAL_CLIPS, db=db)
    workers = [start_worker(master.url, name=n, env=master.env) for n in ("w1", "w2")]
    url = slow_clip(2, 4)
    tiny = {
        "scenario": "480p-h264",
        "input": {"type": "testsrc", "duration": 1, "size": "320x240", "rate": 25},
        "overrides": {"resolution": "320x240"},
    }
    with master.client() as api:
        wait_until(lambda: both_online(api), timeout=60, what="two workers")
        ids = [api.submit(slow_spec(url))["id"] for _ in range(2)]
        ids += [api.submit(tiny)["id"] for _ in range(3)]
        wait_until(
            lambda: sum(api.job(i)["status"] == "running" for i in ids[:2]) >= 1,
            timeout=60,
            what="a slow job running",
        )
    master.kill()
    master.start()
    with master.client() as api:
        jobs = wait_until(
            lambda: (
                [j for j in (api.job(i) for i in ids) if j["status"] == "completed"]
                if all(api.job(i)["status"] == "completed" for i in ids)
                else None
            ),
            timeout=120,
            what="every job completed after the restart",
        )
    assert len(jobs) == len(ids)
    for job in jobs:
        assert len(completed_attempts(job)) == 1, job["attempts"]
    logs = "".join(w.log() for w in workers)
    for job_id in ids:
        accepted = [line for line in logs.splitlines() if f"job {job_id} attempt" in line]
        assert sum(": COMPLETED" in line for line in accepted) == 1, accepted


def test_sigterm_deregisters_the_worker_with_its_own_key(
    start_master: MasterFactory, start_worker: WorkerFactory
) -> None:
    master = start_master(*LOCAL_CLIPS)
    worker = start_worker(master.url, name="w1", env=master.env)
    with master.client() as api:
        wait_until(lambda: node_status(api, "w1") == "online", timeout=60, what="w1 online")
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        assert "deregistered w1" in worker.log()
        with pytest.raises(MasterError) as gone:
            api.node("w1")
        assert gone.value.status == 410
