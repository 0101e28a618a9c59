"""The error vocabulary shared by every subpackage.

Each subpackage's exceptions derive from :class:`FfrtmpInfraError`, so one
``except FfrtmpInfraError`` catches anything this library raises on purpose.
There is one :class:`ConfigurationError` (a bad argument or setting, raised at
construction) and one :class:`MissingExtraError` (an optional dependency is not
installed; it is an :class:`ImportError`, so existing ``except ImportError`` code
keeps working). The subpackages re-export the names they raise.
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "FfrtmpInfraError", "MissingExtraError"]


class FfrtmpInfraError(Exception):
    """Base class of every error ffrtmp-infra raises on purpose."""


class ConfigurationError(FfrtmpInfraError, ValueError):
    """A value given to a constructor or an ``OTEL_*``/setting broke a rule.

    Raised at construction time; the message names the value and the rule it broke.
    """


class MissingExtraError(FfrtmpInfraError, ImportError):
    """An optional feature needs a package that is not installed.

    ``extra`` is the ffrtmp-infra extra that brings it (``pip install
    'ffrtmp-infra[<extra>]'``); the message says so.
    """

    def __init__(self, feature: str, extra: str, package: str) -> None:
        super().__init__(
            f"{feature} needs {package}, which is not installed: "
            f"pip install 'ffrtmp-infra[{extra}]'",
            name=package,
        )
        self.feature = feature
        self.extra = extra
        self.package = package
