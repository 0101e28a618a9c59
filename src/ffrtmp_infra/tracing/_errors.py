"""The tracing subpackage's exceptions."""

from __future__ import annotations

__all__ = ["ConfigurationError", "MissingDependencyError"]


class ConfigurationError(ValueError):
    """A tracing setting (argument or ``OTEL_*`` variable) is invalid; the message says why."""


class MissingDependencyError(ImportError):
    """An optional feature needs a package that is not installed; the message names the extra."""
