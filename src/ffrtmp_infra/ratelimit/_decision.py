"""The result of one rate-limit decision."""

from __future__ import annotations

from typing import Any

__all__ = ["Decision"]


class Decision:
    """What a limiter decided for one hit.

    Attributes:
        allowed: whether the hit was admitted (and its cost consumed).
        limit: the bucket size (burst) or the window's quota.
        remaining: whole units still available right after this decision.
        retry_after: seconds until a hit of the same cost could be admitted
            (``0.0`` when allowed; ``math.inf`` when the cost exceeds the limit).
        reset_after: seconds until the bucket is full again (or the window resets).
        policy: the limiter's policy name (used in the ``RateLimit`` headers).
        storage_error: True when the shared storage failed and the limiter's
            failure policy decided instead.
        limiter: the limiter that decided (what :func:`rate_limit_headers` and
            :func:`rejection` read the policy's quota and window from); not compared
            by ``==``.
    """

    __slots__ = (
        "allowed",
        "limit",
        "limiter",
        "policy",
        "remaining",
        "reset_after",
        "retry_after",
        "storage_error",
    )

    def __init__(
        self,
        allowed: bool,
        limit: int,
        remaining: int,
        retry_after: float,
        reset_after: float,
        policy: str = "default",
        storage_error: bool = False,
        limiter: Any = None,
    ) -> None:
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.retry_after = retry_after
        self.reset_after = reset_after
        self.policy = policy
        self.storage_error = storage_error
        self.limiter = limiter

    def __repr__(self) -> str:
        return (
            f"Decision(allowed={self.allowed}, limit={self.limit}, remaining={self.remaining}, "
            f"retry_after={self.retry_after:.6g}, reset_after={self.reset_after:.6g}, "
            f"policy={self.policy!r}, storage_error={self.storage_error})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _COMPARED)

    __hash__ = None  # type: ignore[assignment]


_COMPARED = tuple(name for name in Decision.__slots__ if name != "limiter")
