"""Job spec validation shared by the master (422 on a bad spec) and the CLI.

A spec is plain JSON (see docs/examples.md). :func:`validate_spec` checks every
field against a closed allow-list and returns a normalised copy with defaults
filled in; anything else raises :class:`SpecError` naming the field and the
rule it broke. There is deliberately no way to pass free-form ffmpeg
arguments, an absolute or ``..`` path, or a URL with another scheme.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from examples.common.scenarios import OVERRIDE_NAMES, PRESETS, SCENARIOS, Scenario

__all__ = [
    "OVERRIDES",
    "PRESETS",
    "PRIORITIES",
    "QUEUES",
    "SpecError",
    "spec_json_schema",
    "validate_spec",
]

QUEUES = ("live", "default", "batch")
PRIORITIES = ("high", "medium", "low")
#: Every override any scenario may allow; a scenario narrows it with ``allowed_overrides``.
OVERRIDES = OVERRIDE_NAMES

MAX_DURATION_S = 3600.0
MAX_WIDTH, MAX_HEIGHT = 7680, 4320
MIN_SIDE = 16
MAX_FPS = 120.0
MIN_BITRATE, MAX_BITRATE = 32_000, 200_000_000
MAX_PATH_LEN, MAX_URL_LEN = 1024, 2048
INPUT_URL_SCHEMES = ("http", "https")
OUTPUT_URL_SCHEMES = ("rtmp", "rtmps")

_SIZE = re.compile(r"^([0-9]{1,5})x([0-9]{1,5})$")
_BITRATE = re.compile(r"^([0-9]{1,9}(?:\.[0-9]{1,3})?)([kKmM]?)$")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


class SpecError(ValueError):
    """A spec field broke a rule. ``field`` is a dotted path such as ``input.duration``."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def _object(value: Any, field: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(field or "body", f"must be a JSON object, got {_kind(value)}")
    for key in value:
        if key not in allowed:
            where = f"{field}.{key}" if field else str(key)
            raise SpecError(where, f"unknown field; allowed: {', '.join(allowed)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SpecError(field, f"must be one of {', '.join(choices)}, got {value!r}"[:200])
    return value


def _number(value: Any, field: str, low: float, high: float, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(field, f"must be a number, got {_kind(value)}")
    if integer and not isinstance(value, int):
        raise SpecError(field, f"must be an integer, got {value!r}")
    if not math.isfinite(value) or not low <= value <= high:
        raise SpecError(field, f"must be between {low:g} and {high:g}, got {value!r}")
    return value


def _size(value: Any, field: str) -> str:
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise SpecError(field, f"must be WIDTHxHEIGHT such as 1280x720, got {value!r}"[:200])
    width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIDE <= width <= MAX_WIDTH and MIN_SIDE <= height <= MAX_HEIGHT):
        raise SpecError(
            field,
            f"must be between {MIN_SIDE}x{MIN_SIDE} and {MAX_WIDTH}x{MAX_HEIGHT}, got {value}",
        )
    if width % 2 or height % 2:
        raise SpecError(field, f"width and height must be even (yuv420p), got {value}")
    return f"{width}x{height}"


def _bitrate(value: Any, field: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        bits = float(value)
    else:
        match = _BITRATE.match(value) if isinstance(value, str) else None
        if match is None:
            raise SpecError(field, f"must be bits/s like 2500k or 2M, got {value!r}"[:200])
        bits = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[match.group(2).lower()]
    if not MIN_BITRATE <= bits <= MAX_BITRATE:
        raise SpecError(
            field,
            f"must be between {MIN_BITRATE // 1000}k and {MAX_BITRATE // 10**6}M, got {value}",
        )
    return f"{round(bits / 1000)}k"


def _relative_path(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(field, f"must be a non-empty string, got {_kind(value)}")
    if len(value) > MAX_PATH_LEN or "\x00" in value or "\\" in value:
        raise SpecError(field, "must be a plain relative path (no NUL, no backslash, short)")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", value):
        raise SpecError(field, f"must be relative to the worker's media root, got {value!r}")
    return str(path)


def _url(value: Any, field: str, schemes: tuple[str, ...]) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(field, f"must be a URL string, got {_kind(value)}")
    if len(value) > MAX_URL_LEN or _CONTROL.search(value):
        raise SpecError(field, "must be a URL without spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme.lower() not in schemes:
        raise SpecError(field, f"scheme must be one of {', '.join(schemes)}, got {parts.scheme!r}")
    if not parts.hostname:
        raise SpecError(field, f"must name a host, got {value!r}"[:200])
    return value


def _input(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError("input", f"must be a JSON object, got {_kind(value)}")
    kind = _choice(value.get("type"), "input.type", ("testsrc", "file", "url"))
    if kind == "testsrc":
        _object(value, "input", ("type", "duration", "size", "rate"))
        return {
            "type": "testsrc",
            "duration": float(
                _number(value.get("duration", 10), "input.duration", 0.1, MAX_DURATION_S)
            ),
            "size": _size(value.get("size", "1280x720"), "input.size"),
            "rate": int(_number(value.get("rate", 30), "input.rate", 1, MAX_FPS, integer=True)),
        }
    if kind == "file":
        _object(value, "input", ("type", "path"))
        return {"type": "file", "path": _relative_path(value.get("path"), "input.path")}
    _object(value, "input", ("type", "url"))
    return {"type": "url", "url": _url(value.get("url"), "input.url", INPUT_URL_SCHEMES)}


def _max_crf(scenario: Scenario) -> int:
    # AV1 encoders take CRF 0-63; x264, x265 and NVENC stop at 51.
    return 63 if "av1" in scenario.video_encoder else 51


def _overrides(value: Any, scenario: Scenario) -> dict[str, Any]:
    allowed = tuple(sorted(scenario.allowed_overrides))
    _object(value, "overrides", OVERRIDES)
    result: dict[str, Any] = {}
    for name, raw in value.items():
        field = f"overrides.{name}"
        if name not in allowed:
            raise SpecError(field, f"not allowed for this scenario; allowed: {', '.join(allowed)}")
        if name == "bitrate":
            result[name] = _bitrate(raw, field)
        elif name == "preset":
            result[name] = _choice(raw, field, PRESETS)
        elif name == "crf":
            result[name] = int(_number(raw, field, 0, _max_crf(scenario), integer=True))
        elif name == "resolution":
            result[name] = _size(raw, field)
        else:
            result[name] = int(_number(raw, field, 1, MAX_FPS, integer=True))
    return result


def validate_spec(body: Any) -> dict[str, Any]:
    """Check a job spec and return it normalised, or raise :class:`SpecError`.

    Defaults: ``queue`` is the scenario's ``default_queue`` (``live`` for
    live pushes), ``priority`` is ``medium``, ``overrides`` is empty; a testsrc
    input defaults to 10 s of 1280x720 at 30 fps.
    """
    spec = _object(body, "", ("scenario", "input", "queue", "priority", "overrides", "output"))
    name = spec.get("scenario")
    if not isinstance(name, str):
        raise SpecError("scenario", f"must be a string, got {_kind(name)}")
    scenario = SCENARIOS.get(name)
    if scenario is None:
        known = ", ".join(sorted(SCENARIOS))
        raise SpecError("scenario", f"unknown scenario {name[:64]!r}; known: {known}")
    live = scenario.kind == "live"
    result: dict[str, Any] = {
        "scenario": name,
        "input": _input(spec.get("input", {"type": "testsrc"})),
        "queue": _choice(spec.get("queue", scenario.default_queue), "queue", QUEUES),
        "priority": _choice(spec.get("priority", "medium"), "priority", PRIORITIES),
        "overrides": _overrides(spec.get("overrides", {}), scenario),
    }
    if live:
        output = _object(spec.get("output"), "output", ("url",))
        result["output"] = {"url": _url(output.get("url"), "output.url", OUTPUT_URL_SCHEMES)}
    elif "output" in spec:
        raise SpecError(
            "output", "only live scenarios take an output URL; files go under the output dir"
        )
    return result


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of a job spec, built from the same tables :func:`validate_spec` uses.

    It describes the shape (fields, types, ranges, choices) for API documents and clients;
    :func:`validate_spec` stays the authority (it also checks cross-field rules: overrides
    a scenario allows, live scenarios needing an output, even sizes, host policy).
    """
    size = {"type": "string", "pattern": _SIZE.pattern}
    bitrate = {
        "oneOf": [
            {"type": "string", "pattern": _BITRATE.pattern},
            {"type": "integer", "minimum": MIN_BITRATE, "maximum": MAX_BITRATE},
        ]
    }

    def closed(required: list[str], **properties: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": required,
            "properties": properties,
        }

    inputs = [
        closed(
            ["type"],
            type={"const": "testsrc"},
            duration={"type": "number", "minimum": 0.1, "maximum": MAX_DURATION_S},
            size=size,
            rate={"type": "integer", "minimum": 1, "maximum": int(MAX_FPS)},
        ),
        closed(
            ["type", "path"],
            type={"const": "file"},
            path={"type": "string", "minLength": 1, "maxLength": MAX_PATH_LEN},
        ),
        closed(
            ["type", "url"],
            type={"const": "url"},
            url={"type": "string", "format": "uri", "maxLength": MAX_URL_LEN},
        ),
    ]
    overrides = {
        "bitrate": bitrate,
        "preset": {"enum": list(PRESETS)},
        "crf": {"type": "integer", "minimum": 0, "maximum": 63},
        "resolution": size,
        "fps": {"type": "integer", "minimum": 1, "maximum": int(MAX_FPS)},
    }
    return closed(
        ["scenario"],
        scenario={"enum": sorted(SCENARIOS)},
        input={"oneOf": inputs},
        queue={"enum": list(QUEUES)},
        priority={"enum": list(PRIORITIES)},
        overrides=closed([], **{k: v for k, v in overrides.items() if k in OVERRIDES}),
        output=closed(["url"], url={"type": "string", "format": "uri", "maxLength": MAX_URL_LEN}),
    )
