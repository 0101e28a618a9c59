"""Job spec validation: every bad field gets a SpecError naming it; good specs are normalised."""

from __future__ import annotations

from typing import Any

import pytest
from examples.common.scenarios import SCENARIOS
from examples.common.spec import SpecError, validate_spec


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"scenario": "720p-h264"}
    spec.update(changes)
    return spec


def test_minimal_spec_gets_defaults() -> None:
    spec = validate_spec({"scenario": "720p-h264"})
    assert spec == {
        "scenario": "720p-h264",
        "input": {"type": "testsrc", "duration": 10.0, "size": "1280x720", "rate": 30},
        "queue": "default",
        "priority": "medium",
        "overrides": {},
    }


def test_every_scenario_in_the_registry_validates() -> None:
    for name, scenario in SCENARIOS.items():
        body: dict[str, Any] = {"scenario": name}
        if scenario.kind == "live":
            body["output"] = {"url": "rtmp://127.0.0.1:1935/live/key"}
        assert validate_spec(body)["scenario"] == name


def test_live_scenario_defaults_to_live_queue() -> None:
    spec = validate_spec(
        {"scenario": "live-rtmp", "output": {"url": "rtmps://ingest.example.com/live/k"}}
    )
    assert spec["queue"] == "live"
    assert spec["output"] == {"url": "rtmps://ingest.example.com/live/k"}


def test_overrides_are_normalised() -> None:
    spec = validate_spec(
        _spec(overrides={"bitrate": "2.5M", "preset": "fast", "crf": 20, "fps": 25})
    )
    assert spec["overrides"] == {"bitrate": "2500k", "preset": "fast", "crf": 20, "fps": 25}


def test_file_and_url_inputs() -> None:
    assert validate_spec(_spec(input={"type": "file", "path": "clips/a.mp4"}))["input"] == {
        "type": "file",
        "path": "clips/a.mp4",
    }
    url = "https://media.example.com/a.mp4"
    assert validate_spec(_spec(input={"type": "url", "url": url}))["input"]["url"] == url


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({}, "scenario"),
        ({"scenario": 7}, "scenario"),
        ({"scenario": "4k-magic"}, "scenario"),
        (_spec(args="-vf scale=1:1"), "args"),
        (_spec(ffmpeg_args=["-i", "/etc/passwd"]), "ffmpeg_args"),
        (_spec(queue="urgent"), "queue"),
        (_spec(priority=1), "priority"),
        (_spec(input={"type": "file", "path": "../../etc/passwd"}), "input.path"),
        (_spec(input={"type": "file", "path": "/etc/passwd"}), "input.path"),
        (_spec(input={"type": "file", "path": "a\\..\\b"}), "input.path"),
        (_spec(input={"type": "url", "url": "file:///etc/passwd"}), "input.url"),
        (_spec(input={"type": "url", "url": "https://"}), "input.url"),
        (_spec(input={"type": "url", "url": "https://a b"}), "input.url"),
        (_spec(input={"type": "concat", "list": "x"}), "input.type"),
        (_spec(input={"type": "testsrc", "duration": 10**9}), "input.duration"),
        (_spec(input={"type": "testsrc", "duration": "10"}), "input.duration"),
        (_spec(input={"type": "testsrc", "duration": float("nan")}), "input.duration"),
        (_spec(input={"type": "testsrc", "size": "99999x99999"}), "input.size"),
        (_spec(input={"type": "testsrc", "size": "641x480"}), "input.size"),
        (_spec(input={"type": "testsrc", "rate": 29.97}), "input.rate"),
        (_spec(input={"type": "testsrc", "filter": "x"}), "input.filter"),
        (_spec(overrides={"bitrate": "10G"}), "overrides.bitrate"),
        (_spec(overrides={"bitrate": "fast"}), "overrides.bitrate"),
        (_spec(overrides={"preset": "placebo; rm -rf /"}), "overrides.preset"),
        (_spec(overrides={"crf": 99}), "overrides.crf"),
        (_spec(overrides={"crf": True}), "overrides.crf"),
        (_spec(overrides={"fps": 1000}), "overrides.fps"),
        (_spec(overrides={"resolution": "1x1"}), "overrides.resolution"),
        (_spec(overrides={"vf": "scale=2:2"}), "overrides.vf"),
        (_spec(output={"url": "rtmp://x/y"}), "output"),
        ({"scenario": "live-rtmp"}, "output"),
        ({"scenario": "live-rtmp", "output": {"url": "http://x/live"}}, "output.url"),
        ({"scenario": "live-rtmp", "output": {"url": "rtmp://x/l", "path": "/tmp"}}, "output.path"),
    ],
)
def test_bad_spec_names_the_field(body: Any, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(body)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_override_not_allowed_by_scenario_is_refused() -> None:
    scenario = SCENARIOS["hls-ladder"]
    assert "crf" not in scenario.allowed_overrides
    with pytest.raises(SpecError) as caught:
        validate_spec({"scenario": "hls-ladder", "overrides": {"crf": 20}})
    assert caught.value.field == "overrides.crf"
