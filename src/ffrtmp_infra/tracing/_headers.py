"""HTTP header capture into span attributes, configured as contrib's instrumentations are.

``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`` and ``..._SERVER_RESPONSE``
list header names as comma-separated regexes matched against the whole name,
case-insensitively (``.*`` captures all); ``..._SANITIZE_FIELDS`` lists regexes
searched in the name whose values are recorded as ``[REDACTED]``. A captured
header becomes ``http.request.header.<lowercase-name>`` (or
``http.response.header.``) holding a tuple of its values, per the stable HTTP
semantic conventions. Only recording spans pay for it; each distinct header
name is matched once and remembered.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ffrtmp_infra.tracing._errors import ConfigurationError

__all__ = ["REDACTED", "HeaderCapture", "server_captures"]

REQUEST_ENV = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
RESPONSE_ENV = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"
SANITIZE_ENV = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
REDACTED = "[REDACTED]"

_CACHE_LIMIT = 512  # distinct header names remembered (clients choose names: bound it)
_Decision = tuple[str, bool] | None  # (attribute name, redact) or not captured


def _compile(variable: str, fullmatch: bool) -> re.Pattern[str] | None:
    raw = os.environ.get(variable, "")
    patterns = [p.strip() for p in raw.split(",") if p.strip()]
    if not patterns:
        return None
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigurationError(
                f"{variable} entry {pattern!r} is not a valid regex: {exc}"
            ) from None
    joined = "|".join(f"(?:{p})" for p in patterns)
    return re.compile(f"(?:{joined})" if fullmatch else joined, re.IGNORECASE)


class HeaderCapture:
    """Turns one direction's headers into ``<prefix><name>`` attributes."""

    def __init__(self, names: re.Pattern[str], sanitize: re.Pattern[str] | None, prefix: str):
        self._names = names
        self._sanitize = sanitize
        self._prefix = prefix
        self._decisions: dict[Any, _Decision] = {}

    def _decide(self, raw: Any, name: str) -> _Decision:
        decisions = self._decisions
        if raw in decisions:
            return decisions[raw]
        decision: _Decision = None
        if self._names.fullmatch(name):
            redact = self._sanitize is not None and self._sanitize.search(name) is not None
            decision = (self._prefix + name, redact)
        if len(decisions) < _CACHE_LIMIT:
            decisions[raw] = decision
        return decision

    def _collect(self, found: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
        return {key: tuple(values) for key, values in found.items()}

    def from_asgi(self, headers: Iterable[tuple[bytes, bytes]]) -> dict[str, tuple[str, ...]]:
        """From ASGI ``(name, value)`` byte pairs (repeated headers keep every value)."""
        found: dict[str, list[str]] = {}
        for raw, value in headers:
            decision = self._decide(raw, raw.decode("latin-1").lower())
            if decision is not None:
                key, redact = decision
                found.setdefault(key, []).append(REDACTED if redact else value.decode("latin-1"))
        return self._collect(found)

    def from_pairs(self, headers: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
        """From ``(name, value)`` string pairs (WSGI response headers)."""
        found: dict[str, list[str]] = {}
        for raw, value in headers:
            decision = self._decide(raw, raw.lower())
            if decision is not None:
                key, redact = decision
                found.setdefault(key, []).append(REDACTED if redact else value)
        return self._collect(found)

    def from_environ(self, environ: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        """From a WSGI environ's ``HTTP_*``, ``CONTENT_TYPE`` and ``CONTENT_LENGTH``."""
        found: dict[str, list[str]] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                name = key[5:]
            elif key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
                name = key
            else:
                continue
            decision = self._decide(key, name.lower().replace("_", "-"))
            if decision is not None and isinstance(value, str):
                attribute, redact = decision
                found.setdefault(attribute, []).append(REDACTED if redact else value)
        return self._collect(found)


def server_captures() -> tuple[HeaderCapture | None, HeaderCapture | None]:
    """(request capture, response capture) from the environment; None when not asked for.

    Read when a middleware is built; an invalid regex raises ConfigurationError then.
    """
    sanitize = _compile(SANITIZE_ENV, fullmatch=False)
    request = _compile(REQUEST_ENV, fullmatch=True)
    response = _compile(RESPONSE_ENV, fullmatch=True)
    return (
        HeaderCapture(request, sanitize, "http.request.header.") if request else None,
        HeaderCapture(response, sanitize, "http.response.header.") if response else None,
    )
