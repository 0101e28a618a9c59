"""The worker process against a fake master: registration, heartbeats, jobs, signals."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.examples.conftest import RTMPReceiver, WorkerFactory
from tests.examples.fake_master import FakeMaster
from tests.examples.helpers import children_of, pid_alive, wait_until
from tests.support.ffmpeg import FFmpeg
from tests.support.servers import serve_asgi
from tests.support.services import free_port

pytestmark = [pytest.mark.ffmpeg, pytest.mark.slow]

TINY = {"type": "testsrc", "duration": 1, "size": "320x240", "rate": 25}


def batch_spec(seconds: float = 1) -> dict[str, Any]:
    return {
        "scenario": "480p-h264",
        "input": {**TINY, "duration": seconds},
        "queue": "default",
        "priority": "medium",
        "overrides": {"resolution": "320x240", "preset": "ultrafast"},
    }


def live_spec(url: str, seconds: float = 30) -> dict[str, Any]:
    return {
        "scenario": "live-rtmp",
        "input": {**TINY, "duration": seconds},
        "queue": "live",
        "priority": "high",
        "overrides": {"resolution": "320x240", "bitrate": "300k"},
        "output": {"url": url},
    }


def registered(master: FakeMaster) -> bool:
    return bool(master.of("/register"))


def test_worker_registers_its_capacity_and_heartbeats(
    fake_master: tuple[FakeMaster, str], start_worker: WorkerFactory
) -> None:
    master, url = fake_master
    worker = start_worker(url, "--label", "zone=test")
    wait_until(lambda: len(master.of("/heartbeat")) >= 3, timeout=60, what="3 heartbeats")
    body = master.of("/register")[0].body
    assert body["node_id"] == "w1"
    assert body["capacity"]["cpu"] == 2.0
    assert body["capacity"]["ram_gb"] == 4.0
    assert body["capacity"]["gpu"] == 0
    assert body["capacity"]["extended"] == {"nvenc_sessions": 0}
    assert {"libx264", "aac"} <= set(body["encoders"])
    assert "h264_nvenc" not in body["encoders"]  # no GPU here: listed by ffmpeg, not usable
    assert body["labels"]["zone"] == "test"
    assert body["labels"]["os"] == "linux"
    assert master.of("/heartbeat")[0].body == {"running": []}
    assert worker.alive()


def test_worker_moves_on_from_an_unreachable_master_and_reports_there(
    fake_master: tuple[FakeMaster, str], start_worker: WorkerFactory
) -> None:
    master, url = fake_master
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    worker = start_worker([dead, url])
    wait_until(lambda: len(master.of("/heartbeat")) >= 2, timeout=60, what="heartbeats")
    job_id = master.submit(batch_spec())
    [result] = wait_until(lambda: master.results(job_id), timeout=60, what="the result")
    assert result["status"] == "completed", result
    assert f"master {dead} is unreachable; moving to {url}" in worker.log()


def test_batch_job_runs_and_reports_outputs_duration_and_speed(
    fake_master: tuple[FakeMaster, str], start_worker: WorkerFactory, tmp_path: Path, ffmpeg: FFmpeg
) -> None:
    master, url = fake_master
    start_worker(url)
    job_id = master.submit(batch_spec(seconds=2))
    [result] = wait_until(lambda: master.results(job_id), timeout=60, what="the result")
    assert result["status"] == "completed", result
    assert result["node_id"] == "w1"
    assert result["attempt"] == 1
    assert result["exit_code"] == 0
    assert result["error"] is None
    [output] = result["outputs"]
    assert output["path"] == f"{job_id}/output.mp4"
    path = tmp_path / "w1" / "out" / output["path"]
    assert path.stat().st_size == output["size"]
    assert ffmpeg.duration(path) == pytest.approx(2.0, abs=1 / 25)
    assert result["media_duration_s"] == pytest.approx(2.0, abs=1 / 25)
    assert result["wall_time_s"] > 0
    expected_speed = result["media_duration_s"] / result["wall_time_s"]
    assert result["speed"] == pytest.approx(expected_speed, rel=0.01)
    progress = [c.body for c in master.of("/progress", job_id)]
    assert progress, "at least one progress report"
    assert progress[-1]["percent"] == 100.0
    assert all(p["attempt"] == 1 and p["node_id"] == "w1" for p in progress)
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents)


def test_progress_is_throttled_and_heartbeats_continue_while_ffmpeg_runs(
    fake_master: tuple[FakeMaster, str],
    start_worker: WorkerFactory,
    rtmp_receiver: Callable[[], RTMPReceiver],
) -> None:
    master, url = fake_master
    start_worker(url)
    wait_until(lambda: registered(master), timeout=60, what="registration")
    receiver = rtmp_receiver()
    job_id = master.submit(live_spec(receiver.url, seconds=3))
    [result] = wait_until(lambda: master.results(job_id), timeout=60, what="the result")
    assert result["status"] == "completed", result
    assert result["media_duration_s"] == pytest.approx(3.0, abs=0.1)
    progress = master.of("/progress", job_id)
    span = progress[-1].at - progress[0].at
    # --progress-interval 0.25: never more than one report per 0.25 s (plus the final one)
    assert len(progress) <= span / 0.25 + 2
    running = [
        c
        for c in master.of("/heartbeat")
        if progress[0].at <= c.at <= progress[-1].at and c.body["running"]
    ]
    assert len(running) >= 3, "heartbeats kept coming while ffmpeg ran"
    assert running[0].body["running"] == [{"job_id": job_id, "attempt": 1}]


def _ffmpeg_child(worker_pid: int) -> int:
    """The pid of the worker's transcoding ffmpeg (``-progress``), 0 while there is none.

    Start-up probes such as ``ffmpeg -encoders`` are children too, but they run before the
    worker installs its signal handlers: signalling the worker then would test nothing.
    """
    for pid in children_of(worker_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-progress" in argv:
            return pid
    return 0


def test_superseded_attempt_kills_ffmpeg_and_sends_no_result(
    fake_master: tuple[FakeMaster, str],
    start_worker: WorkerFactory,
    rtmp_receiver: Callable[[], RTMPReceiver],
) -> None:
    master, url = fake_master
    worker = start_worker(url)
    receiver = rtmp_receiver()
    job_id = master.submit(live_spec(receiver.url))
    wait_until(lambda: master.of("/progress", job_id), timeout=60, what="first progress")
    ffmpeg_pid = wait_until(lambda: _ffmpeg_child(worker.pid), timeout=30, what="ffmpeg")
    master.superseded.add(job_id)
    wait_until(lambda: not pid_alive(ffmpeg_pid), timeout=30, what="ffmpeg killed")
    wait_until(lambda: "dropped (superseded)" in worker.log(), timeout=30, what="drop logged")
    assert master.results(job_id) == []
    # the slot is free again: the next job runs
    next_id = master.submit(batch_spec())
    [result] = wait_until(lambda: master.results(next_id), timeout=60, what="next result")
    assert result["status"] == "completed"


def test_cancel_from_the_heartbeat_answer_kills_ffmpeg(
    fake_master: tuple[FakeMaster, str],
    start_worker: WorkerFactory,
    rtmp_receiver: Callable[[], RTMPReceiver],
) -> None:
    master, url = fake_master
    worker = start_worker(url)
    receiver = rtmp_receiver()
    job_id = master.submit(live_spec(receiver.url))
    wait_until(lambda: master.of("/progress", job_id), timeout=60, what="first progress")
    ffmpeg_pid = wait_until(lambda: _ffmpeg_child(worker.pid), timeout=30, what="ffmpeg")
    master.cancel_on_heartbeat.add(job_id)
    wait_until(lambda: not pid_alive(ffmpeg_pid), timeout=30, what="ffmpeg killed")
    wait_until(lambda: "dropped (canceled)" in worker.log(), timeout=30, what="drop logged")
    assert master.results(job_id) == []


def test_failed_ffmpeg_reports_exit_code_and_log_tail(
    fake_master: tuple[FakeMaster, str], start_worker: WorkerFactory
) -> None:
    master, url = fake_master
    start_worker(url)
    # nothing listens there: ffmpeg fails to connect
    job_id = master.submit(live_spec("rtmp://127.0.0.1:9/live/x", seconds=1))
    [result] = wait_until(lambda: master.results(job_id), timeout=60, what="the result")
    assert result["status"] == "failed"
    assert result["exit_code"] != 0
    assert result["error"].startswith("ffmpeg exited with")
    assert result["log_tail"]
    assert "stream-key" not in result["log_tail"]


def test_invalid_spec_fails_without_running_ffmpeg(
    fake_master: tuple[FakeMaster, str], start_worker: WorkerFactory, tmp_path: Path
) -> None:
    master, url = fake_master
    media = tmp_path / "media"
    media.mkdir()
    start_worker(url, "--media-root", str(media))
    spec = {**batch_spec(), "input": {"type": "file", "path": "../../etc/passwd"}}
    job_id = master.submit(spec)
    [result] = wait_until(lambda: master.results(job_id), timeout=60, what="the result")
    assert result["status"] == "failed"
    assert "input.path: must stay under the media root" in result["error"]
    assert result["exit_code"] is None


def test_unknown_node_registers_again_and_removed_node_exits(
    fake_master: tuple[FakeMaster, str], start_worker: WorkerFactory
) -> None:
    master, url = fake_master
    worker = start_worker(url)
    wait_until(lambda: registered(master), timeout=60, what="registration")
    master.forget_nodes = True
    wait_until(lambda: len(master.of("/register")) >= 2, timeout=30, what="re-registration")
    master.removed = True
    assert worker.wait(timeout=30) == 0
    assert "removed by an operator" in worker.log()


def url_spec(url: str) -> dict[str, Any]:
    return {
        "scenario": "480p-h264",
        "input": {"type": "url", "url": url},
        "overrides": {"resolution": "320x240", "preset": "ultrafast"},
    }


def test_sigterm_lets_a_batch_job_finish_then_deregisters(
    fake_master: tuple[FakeMaster, str],
    start_worker: WorkerFactory,
    slow_clip: Callable[[float, float], str],
) -> None:
    master, url = fake_master
    worker = start_worker(url)
    job_id = master.submit(url_spec(slow_clip(2, 4)))
    wait_until(lambda: master.of("/progress", job_id), timeout=60, what="first progress")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    [result] = master.results(job_id)
    assert result["status"] == "completed"
    assert result["media_duration_s"] == pytest.approx(2.0, abs=1 / 25)
    [delete] = master.of("/nodes/w1")
    assert delete.at > master.of("/result", job_id)[0].at
    # no new work was taken while draining
    assert not [c for c in master.of("/claim") if c.at > master.of("/progress", job_id)[-1].at]


def test_sigterm_hands_a_batch_job_back_when_the_grace_period_ends(
    fake_master: tuple[FakeMaster, str],
    start_worker: WorkerFactory,
    slow_clip: Callable[[float, float], str],
) -> None:
    master, url = fake_master
    worker = start_worker(url, "--grace", "0.5")
    job_id = master.submit(url_spec(slow_clip(3, 20)))
    wait_until(lambda: _ffmpeg_child(worker.pid), timeout=60, what="ffmpeg running")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    [result] = master.results(job_id)
    assert result["status"] == "handed_back"
    assert master.of("/nodes/w1"), "deregistered"


def test_sigterm_hands_a_live_job_back_at_once(
    fake_master: tuple[FakeMaster, str],
    start_worker: WorkerFactory,
    rtmp_receiver: Callable[[], RTMPReceiver],
) -> None:
    master, url = fake_master
    worker = start_worker(url)
    receiver = rtmp_receiver()
    job_id = master.submit(live_spec(receiver.url, seconds=60))
    wait_until(lambda: master.of("/progress", job_id), timeout=60, what="first progress")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    [result] = master.results(job_id)
    assert result["status"] == "handed_back"
    assert master.of("/nodes/w1"), "deregistered"


def test_kill_9_of_the_worker_takes_ffmpeg_down_too(
    fake_master: tuple[FakeMaster, str],
    start_worker: WorkerFactory,
    rtmp_receiver: Callable[[], RTMPReceiver],
) -> None:
    master, url = fake_master
    worker = start_worker(url)
    receiver = rtmp_receiver()
    job_id = master.submit(live_spec(receiver.url))
    wait_until(lambda: master.of("/progress", job_id), timeout=60, what="first progress")
    ffmpeg_pid = wait_until(lambda: _ffmpeg_child(worker.pid), timeout=30, what="ffmpeg")
    worker.signal(signal.SIGKILL)
    worker.wait(timeout=30)
    wait_until(lambda: not pid_alive(ffmpeg_pid), timeout=30, what="orphaned ffmpeg to die")


def test_result_is_retried_until_a_restarted_master_takes_it(
    start_worker: WorkerFactory, rtmp_receiver: Callable[[], RTMPReceiver]
) -> None:
    from tests.support.services import free_port

    master = FakeMaster()
    port = free_port()
    with serve_asgi(master.app, port=port) as url:
        worker = start_worker(url)
        job_id = master.submit(live_spec(rtmp_receiver().url, seconds=3))
        wait_until(lambda: master.of("/progress", job_id), timeout=60, what="first progress")
    # the master is down while the (real-time) job finishes
    wait_until(
        lambda: "result not delivered yet" in worker.log(), timeout=60, what="result retries"
    )
    with serve_asgi(master.app, port=port):
        [result] = wait_until(lambda: master.results(job_id), timeout=60, what="the result")
    assert result["status"] == "completed"


def test_max_jobs_caps_concurrent_claims(
    fake_master: tuple[FakeMaster, str],
    start_worker: WorkerFactory,
    rtmp_receiver: Callable[[], RTMPReceiver],
) -> None:
    master, url = fake_master
    start_worker(url, "--max-jobs", "1")
    first = master.submit(live_spec(rtmp_receiver().url, seconds=2))
    second = master.submit(live_spec(rtmp_receiver().url, seconds=1))
    wait_until(lambda: master.of("/progress", first), timeout=60, what="the first job running")
    assert len(master.pending) == 1, "the second job is not claimed while the first runs"
    assert master.results(second) == []
    [result] = wait_until(lambda: master.results(second), timeout=60, what="the second job")
    assert result["status"] == "completed"
    assert master.of("/result", first)[0].at <= master.of("/progress", second)[0].at


def test_a_malformed_assignment_is_ignored_and_claiming_goes_on(
    fake_master: tuple[FakeMaster, str], start_worker: WorkerFactory
) -> None:
    master, url = fake_master
    worker = start_worker(url)
    with master.lock:
        master.pending.append({"job_id": "no-attempt"})
    job_id = master.submit(batch_spec())
    [result] = wait_until(lambda: master.results(job_id), timeout=60, what="the next result")
    assert result["status"] == "completed"
    assert "the master sent an invalid attempt" in worker.log()


def test_a_new_attempt_of_a_running_job_replaces_the_old_one(
    fake_master: tuple[FakeMaster, str],
    start_worker: WorkerFactory,
    rtmp_receiver: Callable[[], RTMPReceiver],
) -> None:
    master, url = fake_master
    worker = start_worker(url)
    job_id = master.submit(live_spec(rtmp_receiver().url, seconds=30))
    wait_until(lambda: master.of("/progress", job_id), timeout=60, what="attempt 1 running")
    old_ffmpeg = wait_until(lambda: _ffmpeg_child(worker.pid), timeout=30, what="ffmpeg")
    master.submit(live_spec(rtmp_receiver().url, seconds=1), attempt=2, job_id=job_id)
    [result] = wait_until(lambda: master.results(job_id), timeout=60, what="attempt 2's result")
    assert result["attempt"] == 2
    assert result["status"] == "completed"
    assert not pid_alive(old_ffmpeg)
    assert "attempt 1: dropped (superseded)" in worker.log()


def test_claims_back_off_for_the_retry_after_of_a_429(start_worker: WorkerFactory) -> None:

    master = FakeMaster(throttle_claims=2)
    with serve_asgi(master.app) as url:
        start_worker(url)
        job_id = master.submit(batch_spec())
        [result] = wait_until(lambda: master.results(job_id), timeout=60, what="the result")
        assert result["status"] == "completed"
        claims = master.of("/claim")
        # the first two were refused with Retry-After: 1; the worker waited before each retry
        assert claims[1].at - claims[0].at >= 0.95
        assert claims[2].at - claims[1].at >= 0.95


def test_unreadable_file_input_fails_with_ffmpegs_reason(
    fake_master: tuple[FakeMaster, str], start_worker: WorkerFactory, tmp_path: Path
) -> None:
    master, url = fake_master
    media = tmp_path / "media"
    media.mkdir()
    (media / "broken.mp4").write_bytes(b"this is not a video" * 100)
    start_worker(url, "--media-root", str(media))
    spec = {**batch_spec(), "input": {"type": "file", "path": "broken.mp4"}}
    job_id = master.submit(spec)
    [result] = wait_until(lambda: master.results(job_id), timeout=60, what="the result")
    assert result["status"] == "failed"
    assert result["error"].startswith("cannot read")
    assert result["exit_code"] is None
