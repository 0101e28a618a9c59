"""Every use of a release-dependent redis-py name in resources, in one place.

Each shim probes for its feature where it is needed (never on the reserve/release
path) and otherwise uses the older public API, with one warning per process. Tests
force each fallback by replacing its probe (the ``_aclose`` function).
"""

from __future__ import annotations

from typing import Any

from ffrtmp_infra._fallback import warn_once

__all__ = ["async_close"]

_warned: set[str] = set()


def warn_fallback(feature: str, missing: str) -> None:
    """Warn once per process that ``feature`` runs on its public-API fallback."""
    warn_once(_warned, "ffrtmp_infra.resources", "redis-py", feature, missing)


def _aclose(client: Any) -> Any:
    return getattr(client, "aclose", None)


async def async_close(client: Any) -> None:
    """Close a ``redis.asyncio`` client: ``aclose()`` (redis-py 5.0.1+), else ``close()``
    (the same coroutine under its older name, deprecated since 5.0.1)."""
    aclose = _aclose(client)
    if aclose is None:
        warn_fallback("closing the asyncio client", "Redis.aclose() is missing")
        aclose = client.close
    await aclose()
