"""The one exception type the API turns into a JSON error response."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error with an HTTP status, a short message and optional detail.

    Routes raise it; the app's exception handler renders
    ``{"error": message, "detail": detail}`` with ``status``.
    """

    def __init__(
        self, status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = headers or {}
