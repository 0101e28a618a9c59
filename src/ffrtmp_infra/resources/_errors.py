"""The exceptions of :mod:`ffrtmp_infra.resources`: one small hierarchy under ResourceError."""

from __future__ import annotations

from collections.abc import Mapping

from ffrtmp_infra.errors import FfrtmpInfraError, MissingExtraError

__all__ = [
    "BackendUnavailableError",
    "DuplicateJobError",
    "InsufficientResourcesError",
    "InvalidAmountError",
    "MissingExtraError",
    "NoNodeAvailableError",
    "NodeDrainingError",
    "ResourceError",
    "UnknownNodeError",
]


class ResourceError(FfrtmpInfraError):
    """Base class of every error the resource manager raises on purpose."""


class InvalidAmountError(ResourceError, ValueError):
    """An amount, name or option is not valid (negative, NaN, infinite, wrong unit...)."""


class UnknownNodeError(ResourceError, LookupError):
    """The node id is not registered."""

    def __init__(self, node_id: str) -> None:
        super().__init__(f"node {node_id!r} is not registered")
        self.node_id = node_id


class NodeDrainingError(ResourceError):
    """The node is draining: it keeps its reservations but takes no new ones."""

    def __init__(self, node_id: str) -> None:
        super().__init__(f"node {node_id!r} is draining and takes no new reservations")
        self.node_id = node_id


class DuplicateJobError(ResourceError):
    """The job already holds a reservation for a different request or node."""

    def __init__(self, job_id: str, detail: str) -> None:
        super().__init__(f"job {job_id!r} already has a reservation {detail}")
        self.job_id = job_id


class InsufficientResourcesError(ResourceError):
    """The node cannot hold the request.

    ``short`` maps each resource that is short (``"cpu"`` in millicores, ``"ram"`` in MiB,
    ``"gpu"`` and extended resources in units) to ``(requested, available)``.
    """

    def __init__(
        self, node_id: str | None, short: Mapping[str, tuple[int, int]], message: str
    ) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.short = dict(short)


class NoNodeAvailableError(InsufficientResourcesError):
    """``reserve_any`` found no node that passes the filters and holds the request."""

    def __init__(self, message: str) -> None:
        super().__init__(None, {}, message)


class BackendUnavailableError(ResourceError):
    """The storage backend (Redis) could not be reached; nothing was changed or the
    outcome is unknown (check with ``get_reservation`` before retrying)."""
