"""The worker's one retry pacing: doubling delays with a cap and jitter, and Retry-After."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays for retrying a call to the master: ``first``, doubling up to ``cap``.

    Each delay is drawn from [delay/2, delay] so that workers which lost the master at
    the same moment do not all come back at the same moment; a server's ``Retry-After``
    (as ``retry_after`` on the error) is a floor. :meth:`reset` after a success.
    """

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"Backoff needs 0 < first <= cap, got first={first!r} cap={cap!r}")
        self.first = first
        self.cap = cap
        self._delay = first

    def next(self, error: BaseException | None = None) -> float:
        """The pause before the next try (and double the one after)."""
        pause = random.uniform(self._delay / 2, self._delay)  # noqa: S311 (jitter, not security)
        self._delay = min(self._delay * 2, self.cap)
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > pause:
            return float(retry_after)
        return pause

    def reset(self) -> None:
        self._delay = self.first
