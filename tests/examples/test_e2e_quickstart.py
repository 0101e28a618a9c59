"""End to end: the README's main command, ``python -m examples.quickstart``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.examples.helpers import REPO, child_env, pid_alive
from tests.support.ffmpeg import FFmpeg

pytestmark = [pytest.mark.ffmpeg, pytest.mark.slow]


def test_quickstart_runs_every_job_prints_the_summary_and_cleans_up(
    ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    out = tmp_path / "qs"
    done = subprocess.run(
        [sys.executable, "-m", "examples.quickstart", "--out", str(out)],
        cwd=REPO,
        env=child_env({"FFMPEG_BINARY": ffmpeg.path}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    assert "all jobs completed" in text
    header = next(line for line in text.splitlines() if line.startswith("job "))
    for column in ("node", "scenario", "duration", "speed", "output size"):
        assert column in header
    for scenario in ("480p-h264", "720p-h264", "720p-h265", "720p-av1", "hls-ladder", "live-rtmp"):
        row = next(line for line in text.splitlines() if f" {scenario} " in line)
        assert "completed" in row
        assert "node-" in row
    assert f"outputs: {out.resolve()}" in text
    assert list(out.glob("node-*/*/output.mp4")), "batch outputs on disk"
    assert list(out.glob("node-*/*/master.m3u8")), "the HLS ladder on disk"
    assert ffmpeg.duration(out / "live" / "received.flv") == pytest.approx(4.0, abs=0.2)
    # every process it started is gone (they all name the output directory)
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    pids = [pid for pid in pids if pid_alive(pid)]
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert str(out).encode() not in cmdline, cmdline


def test_quickstart_refuses_a_non_empty_output_directory(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    done = subprocess.run(
        [sys.executable, "-m", "examples.quickstart", "--out", str(tmp_path)],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "must be empty" in done.stderr


def test_quickstart_exits_non_zero_when_jobs_do_not_complete_and_still_cleans_up(
    ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    out = tmp_path / "qs"
    done = subprocess.run(
        [sys.executable, "-m", "examples.quickstart", "--out", str(out), "--timeout", "0.5"],
        cwd=REPO,
        env=child_env({"FFMPEG_BINARY": ffmpeg.path}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "SOME JOBS DID NOT COMPLETE" in done.stdout
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if pid_alive(pid):
            assert str(out).encode() not in cmdline, cmdline
