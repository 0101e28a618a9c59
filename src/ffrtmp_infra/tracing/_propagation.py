"""Carrying the trace across processes: HTTP headers, httpx hooks, subprocess environments.

All helpers use the global propagator (W3C ``traceparent``/``tracestate`` and
``baggage`` unless ``OTEL_PROPAGATORS`` says otherwise).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from typing import Any, TypeVar, overload

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter

__all__ = [
    "ENV_CARRIER_KEYS",
    "async_httpx_request_hook",
    "context_from_env",
    "extract_headers",
    "httpx_request_hook",
    "inject_headers",
    "subprocess_env",
]

#: The environment variables of the OpenTelemetry "environment variables as
#: context propagation carriers" convention for the default propagators.
ENV_CARRIER_KEYS = ("TRACEPARENT", "TRACESTATE", "BAGGAGE")

_NOT_ENV_SAFE = re.compile(r"[^A-Z0-9_]")


def _env_name(key: str) -> str:
    return _NOT_ENV_SAFE.sub("_", key.upper())


class _EnvSetter(Setter[MutableMapping[str, str]]):
    def set(self, carrier: MutableMapping[str, str], key: str, value: str) -> None:
        carrier[_env_name(key)] = value


class _EnvGetter(Getter[Mapping[str, str]]):
    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(_env_name(key))
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return [key.lower() for key in carrier]


class CaseInsensitiveGetter(Getter[Mapping[str, str]]):
    """Header lookup ignoring case, for any mapping (dicts, CaseInsensitiveDicts).

    Propagators ask for their own spelling (``X-Amzn-Trace-Id``, ``traceparent``)
    while servers hand headers over lowercased (ASGI) or in any case (users):
    the exact key, then its lowercase form, then a scan.
    """

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            value = carrier.get(lowered)
            if value is None:
                for name, candidate in carrier.items():
                    if name.lower() == lowered:
                        value = candidate
                        break
        if value is None:
            return None
        return [value] if isinstance(value, str) else list(value)

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return [key.lower() for key in carrier]


_Headers = TypeVar("_Headers", bound=MutableMapping[str, str])

_ENV_SETTER = _EnvSetter()
_ENV_GETTER = _EnvGetter()
CASE_INSENSITIVE_GETTER = CaseInsensitiveGetter()


@overload
def inject_headers(headers: None = None, *, context: Context | None = None) -> dict[str, str]: ...
@overload
def inject_headers(headers: _Headers, *, context: Context | None = None) -> _Headers: ...
def inject_headers(
    headers: MutableMapping[str, str] | None = None, *, context: Context | None = None
) -> MutableMapping[str, str]:
    """Add the current (or given) context's ``traceparent``/``tracestate``/``baggage``.

    Returns ``headers`` (a new dict when None), ready for ``urllib``,
    ``requests`` or any client taking a header mapping. Adds nothing when no
    span is current.
    """
    carrier: MutableMapping[str, str] = {} if headers is None else headers
    propagate.inject(carrier, context=context)
    return carrier


def extract_headers(headers: Mapping[str, str]) -> Context:
    """A fresh context holding the remote span and baggage that ``headers`` carry.

    Header names match case-insensitively. Use it with
    ``opentelemetry.context.attach`` or as the ``context=`` of a new span.
    """
    return propagate.extract(headers, context=Context(), getter=CASE_INSENSITIVE_GETTER)


def httpx_request_hook(request: Any) -> None:
    """``httpx.Client(event_hooks={"request": [httpx_request_hook]})``: propagate on every call."""
    propagate.inject(request.headers)


async def async_httpx_request_hook(request: Any) -> None:
    """The :func:`httpx_request_hook` for ``httpx.AsyncClient``."""
    httpx_request_hook(request)


def subprocess_env(
    env: Mapping[str, str] | None = None, *, context: Context | None = None
) -> dict[str, str]:
    """An environment for a child process carrying the current trace.

    Starts from ``env`` (default: a copy of ``os.environ``), drops any
    ``TRACEPARENT``/``TRACESTATE``/``BAGGAGE`` inherited from further up, then
    sets them from the current (or given) context, so a child Python process
    can continue the trace with :func:`context_from_env`.
    """
    result = dict(os.environ if env is None else env)
    for key in ENV_CARRIER_KEYS:
        result.pop(key, None)
    propagate.inject(result, context=context, setter=_ENV_SETTER)
    return result


def context_from_env(env: Mapping[str, str] | None = None) -> Context:
    """The context a parent passed through ``TRACEPARENT``/``TRACESTATE``/``BAGGAGE``.

    Reads ``env`` (default ``os.environ``); an empty context when none is set.
    """
    return propagate.extract(
        os.environ if env is None else env, context=Context(), getter=_ENV_GETTER
    )
