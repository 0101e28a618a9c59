"""Every use of a release-dependent redis-py name in resources, in one place.

Each shim probes for its feature where it is needed (never on the reserve/release
path) and otherwise uses the older public API, with one warning per process. Tests
force each fallback by replacing its probe (the ``_aclose`` function).
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["async_close"]

_warned: set[str] = set()


def warn_fallback(feature: str, missing: str) -> None:
    """Warn once per process that ``feature`` runs on its fallback."""
    if feature in _warned:
        return
    _warned.add(feature)
    warnings.warn(
        f"ffrtmp_infra.resources: {missing} in the installed redis-py; "
        f"{feature} uses its public-API fallback",
        RuntimeWarning,
        stacklevel=3,
    )


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
