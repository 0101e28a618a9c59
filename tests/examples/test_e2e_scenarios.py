"""End to end: a real master, two real workers, real ffmpeg, every scenario."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from examples.cli import APIClient
from examples.common.scenarios import SCENARIOS

from tests.examples.conftest import MasterFactory, RTMPReceiver, WorkerFactory
from tests.examples.helpers import wait_until
from tests.support.ffmpeg import FFmpeg

pytestmark = [pytest.mark.ffmpeg, pytest.mark.slow]

RATE = 25
TINY = {"type": "testsrc", "duration": 1, "size": "320x240", "rate": RATE}


def spec_for(name: str, **extra: Any) -> dict[str, Any]:
    scenario = SCENARIOS[name]
    overrides: dict[str, Any] = {}
    if "resolution" in scenario.allowed_overrides:
        overrides["resolution"] = "320x240"
    if "fps" in scenario.allowed_overrides:
        overrides["fps"] = RATE
    spec: dict[str, Any] = {"scenario": name, "input": dict(TINY), **extra}
    if overrides:
        spec["overrides"] = overrides
    return spec


def online_nodes(api: APIClient) -> set[str]:
    return {n["id"] for n in api.nodes() if n["status"] == "online"}


def finished(api: APIClient, ids: list[str]) -> list[dict[str, Any]] | None:
    jobs = [api.job(i) for i in ids]
    if all(j["status"] in ("completed", "failed", "canceled") for j in jobs):
        return jobs
    return None


def test_every_scenario_completes_with_outputs_of_the_input_duration(
    start_master: MasterFactory,
    start_worker: WorkerFactory,
    rtmp_receiver: Callable[[], RTMPReceiver],
    ffmpeg: FFmpeg,
    tmp_path: Path,
) -> None:
    master = start_master("--rtmp-allow", "127.0.0.1")
    for name in ("w1", "w2"):
        start_worker(master.url, name=name, env=master.env)
    receiver = rtmp_receiver()
    with master.client() as api:
        wait_until(lambda: online_nodes(api) == {"w1", "w2"}, timeout=60, what="two workers")
        batch = [s for s in SCENARIOS if s not in ("live-rtmp", "1080p-h264-nvenc")]
        ids = {api.submit(spec_for(name))["id"]: name for name in batch}
        live = api.submit(spec_for("live-rtmp", output={"url": receiver.url}))
        ids[live["id"]] = "live-rtmp"
        # No node has a GPU: this job waits, without blocking the others behind it.
        gpu_job = api.submit(spec_for("1080p-h264-nvenc"))
        jobs = wait_until(lambda: finished(api, list(ids)), timeout=120, what="every job")
        assert api.job(gpu_job["id"])["status"] == "queued"
    for job in jobs:
        name = ids[job["id"]]
        assert job["status"] == "completed", (name, job)
        result = job["result"]
        assert result["exit_code"] == 0
        assert result["media_duration_s"] == pytest.approx(1.0, abs=1 / RATE), name
        if name == "live-rtmp":
            continue
        out_dir = tmp_path / job["node_id"] / "out"
        assert result["outputs"], name
        for output in result["outputs"]:
            path = out_dir / output["path"]
            assert path.is_file(), path
            assert path.stat().st_size == output["size"]
        if name == "hls-ladder":
            master_playlist = out_dir / job["id"] / "master.m3u8"
            assert master_playlist.read_text().count("#EXT-X-STREAM-INF") == 3
            seconds = ffmpeg.duration(out_dir / job["id"] / "360p" / "index.m3u8")
        else:
            seconds = ffmpeg.duration(out_dir / result["outputs"][0]["path"])
        assert seconds == pytest.approx(1.0, abs=1 / RATE), name
    receiver.proc.wait(timeout=30)
    assert ffmpeg.duration(receiver.path) == pytest.approx(1.0, abs=0.1)


def test_file_input_from_the_media_root(
    start_master: MasterFactory, start_worker: WorkerFactory, ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    (media / "clips").mkdir(parents=True)
    ffmpeg.make_clip(media / "clips" / "in.mp4", seconds=1.5)
    master = start_master()
    start_worker(master.url, "--media-root", str(media), env=master.env)
    with master.client() as api:
        job = api.submit(
            {
                "scenario": "480p-h264",
                "input": {"type": "file", "path": "clips/in.mp4"},
                "overrides": {"resolution": "320x240"},
            }
        )
        done = wait_until(lambda: finished(api, [job["id"]]), timeout=90, what="the job")[0]
    assert done["status"] == "completed", done
    output = tmp_path / "w1" / "out" / done["result"]["outputs"][0]["path"]
    assert ffmpeg.duration(output) == pytest.approx(1.5, abs=1 / 25)
