"""examples.common.ffmpeg against the real ffmpeg binary, on tiny clips (1 s, 320x240)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from examples.common.ffmpeg import (
    FFmpegNotFoundError,
    Progress,
    ProgressParser,
    bitrate_bps,
    build_command,
    collect_outputs,
    encoder_works,
    find_ffmpeg,
    list_encoders,
    output_duration,
    probe,
    resolve_settings,
    usable_encoders,
)
from examples.common.scenarios import SCENARIOS
from examples.common.spec import SpecError

from ffrtmp_infra.tracing import redact_argv, run_ffmpeg
from tests.support.ffmpeg import FFmpeg
from tests.support.services import free_port

pytestmark = pytest.mark.ffmpeg

TINY = {"type": "testsrc", "duration": 1, "size": "320x240", "rate": 25}


def _spec(scenario: str, **extra: Any) -> dict[str, Any]:
    overrides = {"resolution": "320x240"}
    if "resolution" not in SCENARIOS[scenario].allowed_overrides:
        overrides = {}
    return {"scenario": scenario, "input": dict(TINY), "overrides": overrides, **extra}


def _run(argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


# --- finding ffmpeg -----------------------------------------------------------------------


def test_find_ffmpeg_prefers_ffmpeg_binary(ffmpeg: FFmpeg) -> None:
    assert find_ffmpeg({"FFMPEG_BINARY": ffmpeg.path, "PATH": ""}) == ffmpeg.path


def test_find_ffmpeg_rejects_a_missing_ffmpeg_binary(tmp_path: Path) -> None:
    with pytest.raises(FFmpegNotFoundError, match=r"FFMPEG_BINARY=.*not an executable"):
        find_ffmpeg({"FFMPEG_BINARY": str(tmp_path / "nope")})


def test_find_ffmpeg_uses_path_before_imageio(ffmpeg: FFmpeg, tmp_path: Path) -> None:
    (tmp_path / "ffmpeg").symlink_to(ffmpeg.path)
    assert find_ffmpeg({"PATH": str(tmp_path)}) == str(tmp_path / "ffmpeg")


def test_find_ffmpeg_falls_back_to_imageio_ffmpeg(tmp_path: Path) -> None:
    import imageio_ffmpeg

    assert find_ffmpeg({"PATH": str(tmp_path)}) == imageio_ffmpeg.get_ffmpeg_exe()


# --- encoders -----------------------------------------------------------------------------


def test_list_encoders_parses_the_encoder_table(ffmpeg: FFmpeg) -> None:
    encoders = list_encoders(ffmpeg.path)
    assert {"libx264", "aac"} <= encoders
    assert "=" not in encoders
    assert "------" not in encoders


def test_usable_encoders_keeps_only_hardware_encoders_that_really_work(ffmpeg: FFmpeg) -> None:
    usable = usable_encoders(ffmpeg.path)
    assert "libx264" in usable
    for name in ("h264_nvenc", "hevc_nvenc"):
        if name in list_encoders(ffmpeg.path):
            assert (name in usable) == encoder_works(ffmpeg.path, name)
    assert "h264_nvenc" not in usable_encoders(ffmpeg.path, check_hardware=False)


# --- settings -----------------------------------------------------------------------------


def test_resolve_settings_applies_allowed_overrides() -> None:
    settings = resolve_settings(SCENARIOS["720p-h264"], {"crf": 30, "resolution": "640x360"})
    assert (settings.crf, settings.width, settings.height, settings.fps) == (30, 640, 360, 30)


@pytest.mark.parametrize(
    ("scenario", "overrides", "message"),
    [
        ("hls-ladder", {"resolution": "640x360"}, "overrides.resolution: is not allowed"),
        ("720p-h264", {"vf": "movie=/etc/passwd"}, "overrides.vf: is not allowed"),
        ("720p-h264", {"preset": "-y"}, "overrides.preset: must be one of"),
        ("720p-h264", {"crf": 99}, "overrides.crf: must be an integer from 0 to 63"),
        ("720p-h264", {"crf": True}, "overrides.crf"),
        ("720p-h264", {"resolution": "99999x2"}, "must be at most 7680x4320"),
        ("720p-h264", {"resolution": "1280:720"}, "overrides.resolution: must look like"),
        ("720p-h264", {"resolution": "321x240"}, "even width and height"),
        ("720p-h264", {"fps": 0}, "overrides.fps: must be an integer from 1 to 120"),
        ("720p-h264", {"bitrate": "lots"}, "bitrate: must look like"),
        ("720p-h264", {"bitrate": "9G"}, "bitrate: must look like"),
        ("720p-h264", {"bitrate": "1k"}, "bitrate: must be between"),
    ],
)
def test_resolve_settings_rejects_bad_overrides(
    scenario: str, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        resolve_settings(SCENARIOS[scenario], overrides)


def test_bitrate_units() -> None:
    assert bitrate_bps("2500k") == 2_500_000
    assert bitrate_bps("2M") == 2_000_000
    assert bitrate_bps("1.5m") == 1_500_000
    assert bitrate_bps("800000") == 800_000


# --- argv building: safety ----------------------------------------------------------------


def test_argv_is_a_tuple_of_plain_strings_without_a_shell(tmp_path: Path) -> None:
    command = build_command(
        SCENARIOS["720p-h264"],
        _spec("720p-h264"),
        ffmpeg="ffmpeg",
        job_id="j1",
        output_dir=tmp_path,
    )
    assert isinstance(command.argv, tuple)
    assert all(isinstance(arg, str) for arg in command.argv)
    assert command.argv[-1] == str(tmp_path / "j1" / "output.mp4")
    assert "-progress" in command.argv
    assert "pipe:1" in command.argv


@pytest.mark.parametrize("job_id", ["..", "a/b", "", "x" * 65, "a b"])
def test_job_id_that_could_escape_the_output_dir_is_refused(tmp_path: Path, job_id: str) -> None:
    with pytest.raises(SpecError, match=r"job_id: must match"):
        build_command(
            SCENARIOS["480p-h264"],
            _spec("480p-h264"),
            ffmpeg="ffmpeg",
            job_id=job_id,
            output_dir=tmp_path,
        )


@pytest.mark.parametrize("path", ["../secret.mp4", "/etc/passwd", "a/../../x.mp4", "link.mp4"])
def test_file_input_must_stay_under_the_media_root(tmp_path: Path, path: str) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (tmp_path / "secret.mp4").write_bytes(b"x")
    (media / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    spec = {"scenario": "480p-h264", "input": {"type": "file", "path": path}}
    with pytest.raises(SpecError, match=r"input.path: must stay under the media root"):
        build_command(
            SCENARIOS["480p-h264"],
            spec,
            ffmpeg="ffmpeg",
            job_id="j",
            output_dir=tmp_path,
            media_root=media,
        )


def test_missing_file_input_is_named(tmp_path: Path) -> None:
    spec = {"scenario": "480p-h264", "input": {"type": "file", "path": "nope.mp4"}}
    with pytest.raises(SpecError, match=r"'nope.mp4' does not exist"):
        build_command(
            SCENARIOS["480p-h264"],
            spec,
            ffmpeg="ffmpeg",
            job_id="j",
            output_dir=tmp_path,
            media_root=tmp_path,
        )


@pytest.mark.parametrize("url", ["file:///etc/passwd", "rtmp://h/x", "concat:a|b", "https://"])
def test_url_input_must_be_http_or_https(tmp_path: Path, url: str) -> None:
    spec = {"scenario": "480p-h264", "input": {"type": "url", "url": url}}
    with pytest.raises(SpecError, match=r"input.url: must be an http"):
        build_command(
            SCENARIOS["480p-h264"], spec, ffmpeg="ffmpeg", job_id="j", output_dir=tmp_path
        )


@pytest.mark.parametrize("url", [None, "http://h/live", "file:///tmp/x.flv", "rtmp://"])
def test_live_output_must_be_rtmp_or_rtmps(url: str | None) -> None:
    spec = _spec("live-rtmp", output={"url": url})
    with pytest.raises(SpecError, match=r"output.url: must be an rtmp"):
        build_command(SCENARIOS["live-rtmp"], spec, ffmpeg="ffmpeg", job_id="j")


def test_redacted_argv_hides_the_stream_key() -> None:
    spec = _spec("live-rtmp", output={"url": "rtmp://127.0.0.1:1935/live/secret-key"})
    command = build_command(SCENARIOS["live-rtmp"], spec, ffmpeg="ffmpeg", job_id="j")
    assert "rtmp://127.0.0.1:1935/live/secret-key" in command.argv
    assert command.secret_args == {"rtmp://127.0.0.1:1935/live/secret-key"}
    redacted = redact_argv(command.argv, command.secret_args)
    assert "rtmp://127.0.0.1/REDACTED" in redacted
    assert not any("secret-key" in arg for arg in redacted)


def test_unknown_input_type_is_named(tmp_path: Path) -> None:
    spec = {"scenario": "480p-h264", "input": {"type": "lavfi", "graph": "x"}}
    with pytest.raises(SpecError, match=r"input.type: must be testsrc, file or url"):
        build_command(
            SCENARIOS["480p-h264"], spec, ffmpeg="ffmpeg", job_id="j", output_dir=tmp_path
        )


# --- running the real ffmpeg --------------------------------------------------------------


@pytest.mark.parametrize("name", ["480p-h264", "720p-h264", "1080p-h264", "720p-h265", "720p-av1"])
def test_batch_scenario_produces_a_playable_file_of_the_input_duration(
    ffmpeg: FFmpeg, tmp_path: Path, name: str
) -> None:
    command = build_command(
        SCENARIOS[name], _spec(name), ffmpeg=ffmpeg.path, job_id="job", output_dir=tmp_path
    )
    assert command.job_dir is not None
    command.job_dir.mkdir()
    done = _run(command.argv)
    assert done.returncode == 0, done.stderr[-2000:]
    [output] = collect_outputs(command.job_dir, tmp_path)
    assert output["path"] == "job/output.mp4"
    assert output["size"] > 1000
    info = probe(ffmpeg.path, str(tmp_path / output["path"]))
    assert info.has_video
    assert info.has_audio
    assert output_duration(ffmpeg.path, command) == pytest.approx(1.0, abs=1 / 25)


def test_hls_ladder_writes_a_master_playlist_and_every_rendition(
    ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    scenario = SCENARIOS["hls-ladder"]
    command = build_command(
        scenario, _spec("hls-ladder"), ffmpeg=ffmpeg.path, job_id="hls", output_dir=tmp_path
    )
    assert command.job_dir is not None
    command.job_dir.mkdir()
    done = _run(command.argv)
    assert done.returncode == 0, done.stderr[-2000:]
    master = (command.job_dir / "master.m3u8").read_text()
    for rung in scenario.renditions:
        assert f"RESOLUTION={rung.resolution}" in master
        assert (command.job_dir / rung.name / "index.m3u8").is_file()
        assert list((command.job_dir / rung.name).glob("seg_*.ts"))
    assert output_duration(ffmpeg.path, command) == pytest.approx(1.0, abs=1 / 25)


def test_file_input_under_the_media_root_with_an_awkward_name(
    ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    (media / "in dir").mkdir(parents=True)
    clip = ffmpeg.make_clip(media / "in dir" / "a;b $(x).mp4", seconds=1.0)
    info = probe(ffmpeg.path, str(clip))
    spec = {
        "scenario": "480p-h264",
        "input": {"type": "file", "path": "in dir/a;b $(x).mp4"},
        "overrides": {"resolution": "320x240"},
    }
    out = tmp_path / "out"
    command = build_command(
        SCENARIOS["480p-h264"],
        spec,
        ffmpeg=ffmpeg.path,
        job_id="f",
        output_dir=out,
        media_root=media,
        input_info=info,
    )
    assert command.expected_duration_s == pytest.approx(1.0, abs=0.05)
    assert command.job_dir is not None
    command.job_dir.mkdir(parents=True)
    done = _run(command.argv)
    assert done.returncode == 0, done.stderr[-2000:]
    assert output_duration(ffmpeg.path, command) == pytest.approx(info.duration_s, abs=1 / 25)


def test_file_input_without_audio_maps_video_only(ffmpeg: FFmpeg, tmp_path: Path) -> None:
    clip = ffmpeg.make_clip(tmp_path / "silent.mp4", seconds=1.0, audio=False)
    info = probe(ffmpeg.path, str(clip))
    assert not info.has_audio
    spec = {"scenario": "hls-ladder", "input": {"type": "file", "path": "silent.mp4"}}
    command = build_command(
        SCENARIOS["hls-ladder"],
        spec,
        ffmpeg=ffmpeg.path,
        job_id="s",
        output_dir=tmp_path / "out",
        media_root=tmp_path,
        input_info=info,
    )
    assert command.job_dir is not None
    command.job_dir.mkdir(parents=True)
    done = _run(command.argv)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (command.job_dir / "master.m3u8").is_file()


def test_probe_refuses_playlist_inputs_that_could_open_other_files(
    ffmpeg: FFmpeg, tmp_path: Path
) -> None:
    clip = ffmpeg.make_clip(tmp_path / "a.mp4", seconds=1.0)
    playlist = tmp_path / "list.txt"
    playlist.write_text(f"ffconcat version 1.0\nfile '{clip}'\n")
    with pytest.raises(ValueError, match=r"cannot read"):
        probe(ffmpeg.path, str(playlist))


def test_live_scenario_pushes_to_an_rtmp_receiver(ffmpeg: FFmpeg, tmp_path: Path) -> None:
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/key"
    received = tmp_path / "received.flv"
    receiver_args = [ffmpeg.path, "-hide_banner", "-nostdin", "-loglevel", "error"]
    receiver_args += ["-listen", "1", "-timeout", "20"]
    receiver = subprocess.Popen(
        [*receiver_args, "-i", url, "-c", "copy", "-y", str(received)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        spec = _spec("live-rtmp", output={"url": url})
        command = build_command(SCENARIOS["live-rtmp"], spec, ffmpeg=ffmpeg.path, job_id="live")
        assert command.live
        assert command.job_dir is None
        done = None
        for _ in range(50):  # the receiver may take a moment to listen
            done = _run(command.argv)
            if done.returncode == 0:
                break
            time.sleep(0.1)
        assert done is not None
        assert done.returncode == 0, done.stderr[-2000:]
        assert receiver.wait(timeout=30) == 0
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    assert ffmpeg.duration(received) == pytest.approx(1.0, abs=0.1)


# --- progress -----------------------------------------------------------------------------


def test_progress_parser_reads_real_ffmpeg_progress(ffmpeg: FFmpeg, tmp_path: Path) -> None:
    spec = {"scenario": "480p-h264", "input": {**TINY, "duration": 2}}
    spec["overrides"] = {"resolution": "320x240"}
    command = build_command(
        SCENARIOS["480p-h264"], spec, ffmpeg=ffmpeg.path, job_id="p", output_dir=tmp_path
    )
    assert command.job_dir is not None
    command.job_dir.mkdir()
    parser = ProgressParser(command.expected_duration_s)
    snapshots: list[Progress] = []
    done = run_ffmpeg(
        command.argv, on_progress=lambda block: snapshots.append(parser.snapshot(block))
    )
    assert done.returncode == 0
    assert done.args == list(command.argv)  # its own -progress pipe:1 is kept, not doubled
    assert snapshots
    last = snapshots[-1]
    assert last.done
    assert last.percent == 100.0
    assert last.frame == 60
    assert last.out_time_s == pytest.approx(2.0, abs=0.05)
    assert last.speed is not None
    assert last.speed > 0
    assert all(not s.done for s in snapshots[:-1])


def test_progress_parser_handles_na_and_unknown_duration() -> None:
    parser = ProgressParser(None)
    snapshot = parser.snapshot(
        {"frame": "0", "fps": "0.00", "out_time_us": "N/A", "speed": "N/A", "progress": "continue"}
    )
    assert (snapshot.frame, snapshot.speed, snapshot.out_time_s, snapshot.percent) == (
        0,
        None,
        0.0,
        None,
    )
    snapshot = parser.snapshot(
        {"frame": "30", "out_time_us": "5000000", "speed": "2.5x", "progress": "continue"}
    )
    assert snapshot.speed == 2.5
    assert snapshot.out_time_s == 5.0
    assert parser.last is snapshot


def test_progress_percent_is_capped_at_100_until_the_end() -> None:
    parser = ProgressParser(1.0)
    snapshot = parser.snapshot({"out_time_us": "1500000", "progress": "continue"})
    assert snapshot.percent == 100.0
    assert not snapshot.done
    assert parser.snapshot({"out_time_us": "1500000", "progress": "end"}).done


def test_find_ffmpeg_runs_in_a_clean_subprocess() -> None:
    # the module must import without the test rig (as `python -m examples.worker` does)
    code = "from examples.common.ffmpeg import find_ffmpeg; print(find_ffmpeg())"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert Path(done.stdout.strip()).is_file()


def _after(argv: tuple[str, ...], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_presets_map_onto_each_encoders_own_scale(tmp_path: Path) -> None:
    nvenc = build_command(
        SCENARIOS["1080p-h264-nvenc"],
        {"scenario": "1080p-h264-nvenc", "input": dict(TINY), "overrides": {"preset": "veryfast"}},
        ffmpeg="ffmpeg",
        job_id="n",
        output_dir=tmp_path,
    ).argv
    assert _after(nvenc, "-c:v") == "h264_nvenc"
    assert _after(nvenc, "-preset") == "p2"
    assert _after(nvenc, "-b:v") == "6000000"
    av1 = build_command(
        SCENARIOS["720p-av1"],
        {"scenario": "720p-av1", "input": dict(TINY), "overrides": {"preset": "medium"}},
        ffmpeg="ffmpeg",
        job_id="a",
        output_dir=tmp_path,
    ).argv
    assert _after(av1, "-c:v") == "libsvtav1"
    assert _after(av1, "-preset") == "6"
    assert _after(av1, "-crf") == "35"


def test_live_push_is_real_time_and_cbr(tmp_path: Path) -> None:
    spec = _spec("live-rtmp", output={"url": "rtmp://127.0.0.1/live/k"})
    argv = build_command(SCENARIOS["live-rtmp"], spec, ffmpeg="ffmpeg", job_id="l").argv
    assert argv.count("-re") == 2  # both generated inputs are paced
    assert _after(argv, "-tune") == "zerolatency"
    assert _after(argv, "-b:v") == _after(argv, "-maxrate") == "2500000"
    assert argv[-3:] == ("-f", "flv", "rtmp://127.0.0.1/live/k")
