"""The exceptions this package raises."""

from __future__ import annotations

from ffrtmp_infra.errors import ConfigurationError, FfrtmpInfraError, MissingExtraError

__all__ = ["ConfigurationError", "MissingExtraError", "StorageUnavailableError"]


class StorageUnavailableError(FfrtmpInfraError, RuntimeError):
    """The shared storage (Redis/Valkey) could not be reached.

    Limiters never raise it from ``hit``: they apply their failure policy instead
    (``"open"``, ``"closed"`` or ``"local"``). It is raised by operations that have
    no sensible fallback, such as ``reset`` on an unreachable storage.
    """
