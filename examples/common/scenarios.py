"""The registry of named transcoding scenarios.

A scenario is everything a job needs besides its input: what the master must reserve on a
node (``resources``), which ffmpeg encoders the node must have (``encoders``), the default
encoding settings and which of them a job may override. The master reads ``resources``,
``encoders`` and ``allowed_overrides``; the worker turns a scenario plus a validated job spec
into an ffmpeg argument list (see :mod:`examples.common.ffmpeg`).

Presets use libx264's vocabulary for every encoder (``ultrafast`` ... ``veryslow``); the
argv builder maps them to the encoder's own scale (SVT-AV1 numbers, NVENC ``p1``..``p7``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

ScenarioKind = Literal["batch", "live", "hls"]

#: Every override name a scenario may allow (the spec validator checks types and ranges).
OVERRIDE_NAMES: tuple[str, ...] = ("bitrate", "preset", "crf", "resolution", "fps")

#: The preset vocabulary shared by all scenarios, fastest first.
PRESETS: tuple[str, ...] = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


@dataclass(frozen=True)
class Rendition:
    """One rung of an HLS ladder: a name used in file names, a frame size and a bitrate."""

    name: str
    resolution: str
    bitrate: str


@dataclass(frozen=True, eq=False)
class Scenario:
    """A named transcoding preset.

    ``resources`` has the keys ``cpu`` (cores, float), ``ram_gb`` (float), ``gpu`` (int) and
    ``extended`` (a mapping of extended resources such as ``nvenc_sessions``), in the shape
    :meth:`ffrtmp_infra.resources.ResourceManager.reserve_any` takes as keyword arguments.
    ``defaults`` has ``bitrate`` (ffmpeg notation, ``"2500k"``), ``preset``, ``crf`` (int or
    None for pure bitrate control), ``resolution`` (``"WxH"``) and ``fps`` (int).
    """

    name: str
    description: str
    kind: ScenarioKind
    resources: Mapping[str, Any]
    encoders: tuple[str, ...]
    defaults: Mapping[str, Any]
    allowed_overrides: frozenset[str]
    video_encoder: str
    audio_encoder: str = "aac"
    container: str = "mp4"
    default_queue: str = "default"
    renditions: tuple[Rendition, ...] = field(default=())

    def __post_init__(self) -> None:
        unknown = set(self.allowed_overrides) - set(OVERRIDE_NAMES)
        if unknown:
            raise ValueError(
                f"scenario {self.name!r}: allowed_overrides must be among {OVERRIDE_NAMES}, "
                f"got {sorted(unknown)}"
            )
        if self.video_encoder not in self.encoders:
            raise ValueError(
                f"scenario {self.name!r}: video_encoder {self.video_encoder!r} must be listed "
                "in encoders"
            )
        object.__setattr__(self, "resources", MappingProxyType(dict(self.resources)))
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    @property
    def needs_output_url(self) -> bool:
        """True when the job must name an output URL (live pushes)."""
        return self.kind == "live"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (for ``GET /scenarios`` and the CLI)."""
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "resources": {
                **dict(self.resources),
                "extended": dict(self.resources.get("extended", {})),
            },
            "encoders": list(self.encoders),
            "defaults": dict(self.defaults),
            "allowed_overrides": sorted(self.allowed_overrides),
            "default_queue": self.default_queue,
            "renditions": [
                {"name": r.name, "resolution": r.resolution, "bitrate": r.bitrate}
                for r in self.renditions
            ],
        }


def _resources(
    cpu: float, ram_gb: float, gpu: int = 0, extended: Mapping[str, int] | None = None
) -> dict[str, Any]:
    return {"cpu": cpu, "ram_gb": ram_gb, "gpu": gpu, "extended": dict(extended or {})}


_ALL = frozenset(OVERRIDE_NAMES)

_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="480p-h264",
        description="H.264/AAC MP4 at 854x480, capped CRF",
        kind="batch",
        resources=_resources(cpu=1, ram_gb=0.5),
        encoders=("libx264", "aac"),
        defaults={
            "bitrate": "1200k",
            "preset": "veryfast",
            "crf": 23,
            "resolution": "854x480",
            "fps": 30,
        },
        allowed_overrides=_ALL,
        video_encoder="libx264",
    ),
    Scenario(
        name="720p-h264",
        description="H.264/AAC MP4 at 1280x720, capped CRF",
        kind="batch",
        resources=_resources(cpu=1, ram_gb=1),
        encoders=("libx264", "aac"),
        defaults={
            "bitrate": "3000k",
            "preset": "veryfast",
            "crf": 23,
            "resolution": "1280x720",
            "fps": 30,
        },
        allowed_overrides=_ALL,
        video_encoder="libx264",
    ),
    Scenario(
        name="1080p-h264",
        description="H.264/AAC MP4 at 1920x1080, capped CRF",
        kind="batch",
        resources=_resources(cpu=2, ram_gb=1.5),
        encoders=("libx264", "aac"),
        defaults={
            "bitrate": "6000k",
            "preset": "veryfast",
            "crf": 23,
            "resolution": "1920x1080",
            "fps": 30,
        },
        allowed_overrides=_ALL,
        video_encoder="libx264",
    ),
    Scenario(
        name="720p-h265",
        description="H.265 (HEVC)/AAC MP4 at 1280x720, capped CRF, tagged hvc1",
        kind="batch",
        resources=_resources(cpu=2, ram_gb=1.5),
        encoders=("libx265", "aac"),
        defaults={
            "bitrate": "2000k",
            "preset": "ultrafast",
            "crf": 28,
            "resolution": "1280x720",
            "fps": 30,
        },
        allowed_overrides=_ALL,
        video_encoder="libx265",
    ),
    Scenario(
        name="720p-av1",
        description="AV1 (SVT-AV1)/AAC MP4 at 1280x720, capped CRF",
        kind="batch",
        resources=_resources(cpu=2, ram_gb=2),
        encoders=("libsvtav1", "aac"),
        defaults={
            "bitrate": "1500k",
            "preset": "ultrafast",
            "crf": 35,
            "resolution": "1280x720",
            "fps": 30,
        },
        allowed_overrides=_ALL,
        video_encoder="libsvtav1",
    ),
    Scenario(
        name="hls-ladder",
        description="HLS with three H.264 renditions (720p, 480p, 360p) and a master playlist",
        kind="hls",
        resources=_resources(cpu=2, ram_gb=1.5),
        encoders=("libx264", "aac"),
        defaults={
            "bitrate": "2800k",
            "preset": "veryfast",
            "crf": None,
            "resolution": "1280x720",
            "fps": 30,
        },
        allowed_overrides=frozenset({"preset", "fps"}),
        video_encoder="libx264",
        container="hls",
        renditions=(
            Rendition("720p", "1280x720", "2800k"),
            Rendition("480p", "854x480", "1400k"),
            Rendition("360p", "640x360", "800k"),
        ),
    ),
    Scenario(
        name="live-rtmp",
        description="Real-time H.264/AAC FLV push to an rtmp:// or rtmps:// URL",
        kind="live",
        resources=_resources(cpu=1, ram_gb=0.5),
        encoders=("libx264", "aac"),
        defaults={
            "bitrate": "2500k",
            "preset": "veryfast",
            "crf": None,
            "resolution": "1280x720",
            "fps": 30,
        },
        allowed_overrides=frozenset({"bitrate", "preset", "resolution", "fps"}),
        video_encoder="libx264",
        container="flv",
        default_queue="live",
    ),
    Scenario(
        name="1080p-h264-nvenc",
        description="H.264/AAC MP4 at 1920x1080 on an NVIDIA GPU (NVENC)",
        kind="batch",
        resources=_resources(cpu=0.5, ram_gb=1, gpu=1, extended={"nvenc_sessions": 1}),
        encoders=("h264_nvenc", "aac"),
        defaults={
            "bitrate": "6000k",
            "preset": "fast",
            "crf": None,
            "resolution": "1920x1080",
            "fps": 30,
        },
        allowed_overrides=frozenset({"bitrate", "preset", "resolution", "fps"}),
        video_encoder="h264_nvenc",
    ),
)

#: Every scenario by name. Read-only: build your own registry to add presets.
SCENARIOS: Mapping[str, Scenario] = MappingProxyType({s.name: s for s in _SCENARIOS})


class UnknownScenarioError(KeyError):
    """Raised by :func:`get_scenario` for a name that is not in :data:`SCENARIOS`."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown scenario"


def get_scenario(name: str) -> Scenario:
    """Return the scenario called ``name`` or raise :class:`UnknownScenarioError`."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownScenarioError(
            f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}"
        ) from None


__all__ = [
    "OVERRIDE_NAMES",
    "PRESETS",
    "SCENARIOS",
    "Rendition",
    "Scenario",
    "ScenarioKind",
    "UnknownScenarioError",
    "get_scenario",
]
