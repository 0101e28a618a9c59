"""Validation of the worker's messages (register, heartbeat, claim, progress, result).

Unknown keys are ignored so a newer worker can talk to an older master, but
every known key is type- and range-checked: a bad message gets a 422 naming
the field, like a bad job spec.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from examples.common.spec import SpecError
from ffrtmp_infra.tracing import redact_text

__all__ = [
    "MAX_ENCODERS",
    "MAX_EXTENDED",
    "MAX_LABELS",
    "MAX_REGISTER_BODY",
    "NODE_ID",
    "RESULT_STATUSES",
    "validate_claim",
    "validate_heartbeat",
    "validate_progress",
    "validate_register",
    "validate_result",
]

NODE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
RESULT_STATUSES = ("completed", "failed", "handed_back")
#: Registration caps: a node record is shown by GET /nodes and kept for the node's life,
#: so one registration must stay small (it was up to ~94 KB).
MAX_LABELS = 32
MAX_ENCODERS = 256
MAX_EXTENDED = 16
MAX_REGISTER_BODY = 16 * 1024
_MAX_LOG_TAIL = 16_384
_MAX_ERROR = 2_000


def _mapping(body: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise SpecError(field, "must be a JSON object")
    return body


def _string(value: Any, field: str, max_len: int, *, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or len(value) > max_len:
        raise SpecError(field, f"must be a string of at most {max_len} characters")
    if pattern is not None and not pattern.match(value):
        raise SpecError(field, f"must match {pattern.pattern}")
    return value


def _number(
    value: Any,
    field: str,
    low: float,
    high: float,
    *,
    integer: bool = False,
    optional: bool = False,
) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(field, "must be a number" + (" or null" if optional else ""))
    if integer and not isinstance(value, int):
        raise SpecError(field, f"must be an integer, got {value!r}")
    if not math.isfinite(value) or not low <= value <= high:
        raise SpecError(field, f"must be between {low:g} and {high:g}, got {value!r}")
    return value


def node_id(value: Any, field: str = "node_id") -> str:
    """A node id: 1-64 of ``[A-Za-z0-9._-]``."""
    return _string(value, field, 64, pattern=NODE_ID)


def validate_register(body: Any) -> dict[str, Any]:
    """``POST /nodes/register``: node id, capacity, labels, encoders, version."""
    body = _mapping(body, "body")
    capacity = _mapping(body.get("capacity"), "capacity")
    extended_in = _mapping(capacity.get("extended", {}) or {}, "capacity.extended")
    if len(extended_in) > MAX_EXTENDED:
        raise SpecError("capacity.extended", f"at most {MAX_EXTENDED} extended resources")
    extended: dict[str, int] = {}
    for name, amount in extended_in.items():
        _string(name, "capacity.extended", 64, pattern=NODE_ID)
        extended[name] = _number(amount, f"capacity.extended.{name}", 0, 10_000, integer=True)
    labels_in = _mapping(body.get("labels", {}) or {}, "labels")
    if len(labels_in) > MAX_LABELS:
        raise SpecError("labels", f"at most {MAX_LABELS} labels")
    labels = {
        _string(k, "labels", 128): _string(v, f"labels.{k}", 256) for k, v in labels_in.items()
    }
    encoders_in = body.get("encoders", [])
    if not isinstance(encoders_in, list) or len(encoders_in) > MAX_ENCODERS:
        raise SpecError("encoders", f"must be an array of at most {MAX_ENCODERS} encoder names")
    return {
        "node_id": node_id(body.get("node_id")),
        "capacity": {
            "cpu": _number(capacity.get("cpu"), "capacity.cpu", 0.001, 4096),
            "ram_gb": _number(capacity.get("ram_gb", 0), "capacity.ram_gb", 0, 65536),
            "gpu": _number(capacity.get("gpu", 0), "capacity.gpu", 0, 64, integer=True),
            "extended": extended,
        },
        "labels": labels,
        "encoders": sorted({_string(e, "encoders", 64) for e in encoders_in}),
        "version": _string(body.get("version", ""), "version", 64),
    }


def validate_heartbeat(body: Any) -> list[dict[str, Any]] | None:
    """``POST /nodes/{id}/heartbeat``: the running attempts (``None`` if not reported)."""
    if body is None:
        return None
    body = _mapping(body, "body")
    if "running" not in body:
        return None
    running = body["running"]
    if not isinstance(running, list) or len(running) > 1024:
        raise SpecError("running", "must be an array of {job_id, attempt}")
    return [
        {
            "job_id": _string(
                _mapping(r, f"running[{i}]").get("job_id"), f"running[{i}].job_id", 64
            ),
            "attempt": _number(r.get("attempt"), f"running[{i}].attempt", 1, 10**9, integer=True),
        }
        for i, r in enumerate(running)
    ]


def validate_claim(body: Any, max_wait: float) -> float:
    """``POST /nodes/{id}/claim``: how long to wait, in seconds (default and cap ``max_wait``)."""
    if body is None:
        return max_wait
    body = _mapping(body, "body")
    return float(_number(body.get("wait", max_wait), "wait", 0, max_wait))


def _report_base(body: Any) -> dict[str, Any]:
    body = _mapping(body, "body")
    return {
        "node_id": node_id(body.get("node_id")),
        "attempt": _number(body.get("attempt"), "attempt", 1, 10**9, integer=True),
    }


def validate_progress(body: Any) -> dict[str, Any]:
    """``POST /jobs/{id}/progress``: percent, fps, speed, out_time_s, frame (each optional)."""
    report = _report_base(body)
    limits = {
        "percent": (0, 100),
        "fps": (0, 100_000),
        "speed": (0, 100_000),
        "out_time_s": (0, 10**7),
        "frame": (0, 10**10),
    }
    for name, (low, high) in limits.items():
        report[name] = _number(body.get(name), name, low, high, optional=True)
    return report


def validate_result(body: Any) -> dict[str, Any]:
    """``POST /jobs/{id}/result``: how the attempt ended, its outputs and measurements."""
    report = _report_base(body)
    status = body.get("status")
    if status not in RESULT_STATUSES:
        raise SpecError("status", f"must be one of {', '.join(RESULT_STATUSES)}")
    outputs_in = body.get("outputs", []) or []
    if not isinstance(outputs_in, list) or len(outputs_in) > 4096:
        raise SpecError("outputs", "must be an array of at most 4096 {path, size}")
    outputs = []
    for i, item in enumerate(outputs_in):
        item = _mapping(item, f"outputs[{i}]")
        path = _string(item.get("path"), f"outputs[{i}].path", 1024)
        parts = PurePosixPath(path)
        if parts.is_absolute() or ".." in parts.parts:
            raise SpecError(f"outputs[{i}].path", "must be relative to the output dir")
        size = _number(item.get("size"), f"outputs[{i}].size", 0, 2**53, integer=True)
        outputs.append({"path": path, "size": size})
    error = body.get("error")
    log_tail = body.get("log_tail")
    retryable = body.get("retryable", True)
    if not isinstance(retryable, bool):
        raise SpecError("retryable", "must be a boolean")
    report.update(
        retryable=retryable,
        status=status,
        exit_code=_number(
            body.get("exit_code"), "exit_code", -(2**31), 2**31, integer=True, optional=True
        ),
        outputs=outputs,
        media_duration_s=_number(
            body.get("media_duration_s"), "media_duration_s", 0, 10**7, optional=True
        ),
        wall_time_s=_number(body.get("wall_time_s", 0), "wall_time_s", 0, 10**7),
        speed=_number(body.get("speed"), "speed", 0, 100_000, optional=True),
        # Shown to every submitter: a worker (older, or careless) must not leak stream
        # keys or URL credentials through them, so they are redacted here as well.
        error=None if error is None else redact_text(str(error)[:_MAX_ERROR]),
        log_tail=None if log_tail is None else redact_text(str(log_tail)[-_MAX_LOG_TAIL:]),
    )
    return report
