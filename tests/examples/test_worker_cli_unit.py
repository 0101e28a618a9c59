"""The CLI's spec building and formatting (no master needed)."""

from __future__ import annotations

import pytest
from examples.cli import build_parser, build_spec, format_table, human_size, job_row


def spec_from(*argv: str) -> dict[str, object]:
    return build_spec(build_parser().parse_args(["submit", *argv]))


def test_testsrc_submit_with_typed_overrides() -> None:
    spec = spec_from(
        "--scenario", "720p-h264", "--testsrc", "10", "--size", "640x360",
        "--set", "crf=28", "--set", "bitrate=2M", "--priority", "high",
    )  # fmt: skip
    assert spec == {
        "scenario": "720p-h264",
        "input": {"type": "testsrc", "duration": 10.0, "size": "640x360"},
        "priority": "high",
        "overrides": {"crf": 28, "bitrate": "2M"},
    }


def test_file_url_and_live_output() -> None:
    assert spec_from("--scenario", "480p-h264", "--file", "a/b.mp4")["input"] == {
        "type": "file",
        "path": "a/b.mp4",
    }
    live = spec_from(
        "--scenario", "live-rtmp", "--url", "https://h/x.mp4", "--output", "rtmp://i/k"
    )
    assert live["input"] == {"type": "url", "url": "https://h/x.mp4"}
    assert live["output"] == {"url": "rtmp://i/k"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--scenario", "x"],
        ["--scenario", "x", "--testsrc", "1", "--file", "a.mp4"],
    ],
)
def test_exactly_one_input_is_required(argv: list[str]) -> None:
    with pytest.raises(ValueError, match="exactly one input"):
        spec_from(*argv)


def test_set_needs_name_equals_value() -> None:
    with pytest.raises(ValueError, match="--set must be NAME=VALUE"):
        spec_from("--scenario", "x", "--testsrc", "1", "--set", "crf")


def test_json_flag_works_before_and_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["--json", "list"]).json is True
    assert parser.parse_args(["list", "--json"]).json is True
    assert parser.parse_args(["list"]).json is False


def test_human_size_and_table() -> None:
    assert human_size(512) == "512 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(5 * 1024 * 1024) == "5.0 MiB"
    table = format_table(("a", "bb"), [["x", None], ["long", 2]])
    assert table.splitlines() == ["a     bb", "----  --", "x     -", "long  2"]


def test_job_row_summarises_a_completed_job() -> None:
    job = {
        "id": "0123456789abcdef",
        "status": "completed",
        "scenario": "720p-h264",
        "node_id": "n1",
        "progress": {"percent": 100.0},
        "result": {
            "outputs": [{"path": "x/output.mp4", "size": 2048}],
            "media_duration_s": 10.0,
            "speed": 2.5,
        },
    }
    assert job_row(job) == [
        "01234567", "completed", "720p-h264", "n1", "100%", "10.00s", "2.5x", "2.0 KiB",
    ]  # fmt: skip
