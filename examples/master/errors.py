"""The master's errors: domain errors the scheduler and store raise, and the HTTP one.

The scheduler and the store know nothing of HTTP: they raise a :class:`MasterError`
subclass named after what went wrong, and ``api.py`` maps each class to a status code.
Only the HTTP layer itself (body limits, rate limits, auth) raises :class:`APIError`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIError",
    "Conflict",
    "Gone",
    "Invalid",
    "MasterError",
    "NotFound",
    "SchemaTooNew",
    "StoreUnavailable",
]


class MasterError(Exception):
    """A domain error: a message for people and optional machine-readable ``detail``."""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(MasterError):
    """No job or node with this id."""


class Gone(MasterError):
    """The node was removed by an operator."""


class Conflict(MasterError):
    """The request does not fit the job's current state (finished, superseded, canceled)."""


class Invalid(MasterError):
    """A value the domain refuses (a capacity the resource manager rejects, a full master)."""


class StoreUnavailable(MasterError):
    """The job store cannot be reached or refused the operation (database down, disk full)."""


class SchemaTooNew(MasterError):
    """The database was migrated by a newer master than this one: refuse to touch it."""


class APIError(Exception):
    """An HTTP-layer error with a status, a short message and optional detail.

    ``api.py`` raises it for what only HTTP knows (bodies, limits, credentials); the app's
    exception handler renders ``{"error": message, "detail": detail}`` with ``status``.
    """

    def __init__(
        self, status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = headers or {}
