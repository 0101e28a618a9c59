"""The exceptions this package raises."""

from __future__ import annotations

__all__ = ["ConfigurationError", "StorageUnavailableError"]


class ConfigurationError(ValueError):
    """A limiter, rule or middleware was configured with a value that breaks a rule.

    Raised at construction time; the message names the value and the rule it broke.
    """


class StorageUnavailableError(RuntimeError):
    """The shared storage (Redis/Valkey) could not be reached.

    Limiters never raise it from ``hit``: they apply their failure policy instead
    (``"open"``, ``"closed"`` or ``"local"``). It is raised by operations that have
    no sensible fallback, such as ``reset`` on an unreachable storage.
    """
