"""The one-time warning the subpackages' ``_compat`` modules give when they fall back."""

from __future__ import annotations

import warnings

__all__ = ["warn_once"]


def warn_once(warned: set[str], package: str, dependency: str, feature: str, missing: str) -> None:
    """Warn once per ``warned`` set that ``feature`` runs on its public-API fallback.

    ``stacklevel`` points at the code that called the compat module's function.
    """
    if feature in warned:
        return
    warned.add(feature)
    warnings.warn(
        f"{package}: {missing} in the installed {dependency}; "
        f"{feature} uses its public-API fallback",
        RuntimeWarning,
        stacklevel=4,
    )
