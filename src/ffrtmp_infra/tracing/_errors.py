"""The tracing subpackage's exceptions: the package-wide ones, re-exported."""

from __future__ import annotations

from ffrtmp_infra.errors import ConfigurationError, MissingExtraError

#: The name this subpackage used before the package-wide :class:`MissingExtraError`.
MissingDependencyError = MissingExtraError

__all__ = ["ConfigurationError", "MissingDependencyError", "MissingExtraError"]
