"""The scenario registry: the names the issue requires and their internal consistency."""

from __future__ import annotations

import pytest
from examples.common.scenarios import (
    OVERRIDE_NAMES,
    SCENARIOS,
    Scenario,
    UnknownScenarioError,
    get_scenario,
)

REQUIRED = (
    "480p-h264",
    "720p-h264",
    "1080p-h264",
    "720p-h265",
    "720p-av1",
    "hls-ladder",
    "live-rtmp",
    "1080p-h264-nvenc",
)


@pytest.mark.parametrize("name", REQUIRED)
def test_required_scenario_exists_with_consistent_fields(name: str) -> None:
    scenario = SCENARIOS[name]
    assert scenario.name == name
    assert scenario.kind in ("batch", "live", "hls")
    assert set(scenario.resources) == {"cpu", "ram_gb", "gpu", "extended"}
    assert scenario.resources["cpu"] > 0
    assert scenario.video_encoder in scenario.encoders
    assert set(scenario.allowed_overrides) <= set(OVERRIDE_NAMES)
    assert set(scenario.defaults) == set(OVERRIDE_NAMES)


def test_nvenc_scenario_reserves_a_gpu_and_an_encoder_session() -> None:
    nvenc = SCENARIOS["1080p-h264-nvenc"]
    assert nvenc.resources["gpu"] == 1
    assert nvenc.resources["extended"] == {"nvenc_sessions": 1}
    assert "h264_nvenc" in nvenc.encoders


def test_live_scenario_goes_to_the_live_queue_and_needs_an_output_url() -> None:
    live = SCENARIOS["live-rtmp"]
    assert live.default_queue == "live"
    assert live.needs_output_url
    assert not SCENARIOS["720p-h264"].needs_output_url


def test_hls_ladder_has_several_renditions() -> None:
    assert len(SCENARIOS["hls-ladder"].renditions) >= 2


def test_get_scenario_names_the_known_ones_on_a_typo() -> None:
    with pytest.raises(UnknownScenarioError, match=r"unknown scenario '720p-h246'.*720p-h264"):
        get_scenario("720p-h246")


def test_registry_and_scenarios_are_read_only() -> None:
    with pytest.raises(TypeError):
        SCENARIOS["x"] = SCENARIOS["720p-h264"]  # type: ignore[index]
    with pytest.raises(TypeError):
        SCENARIOS["720p-h264"].defaults["crf"] = 1  # type: ignore[index]


def test_scenario_rejects_an_unknown_override_name() -> None:
    with pytest.raises(ValueError, match="allowed_overrides must be among"):
        Scenario(
            name="bad",
            description="",
            kind="batch",
            resources={"cpu": 1, "ram_gb": 1, "gpu": 0, "extended": {}},
            encoders=("libx264",),
            defaults={},
            allowed_overrides=frozenset({"vf"}),
            video_encoder="libx264",
        )


def test_to_dict_is_json_ready() -> None:
    import json

    for scenario in SCENARIOS.values():
        assert json.loads(json.dumps(scenario.to_dict()))["name"] == scenario.name
