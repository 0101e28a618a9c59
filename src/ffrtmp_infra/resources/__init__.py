"""A thread-safe multi-resource manager: CPU, GPU, RAM and extended resources per node.

Quantities are fixed-point integers inside (millicores, MiB, whole GPUs). Nodes
carry labels and an allocatable vector (capacity minus a system reserve); jobs
reserve on a named node or let :meth:`ResourceManager.reserve_any` filter, score
and reserve atomically. State lives in this process (:class:`MemoryBackend`) or in
Redis (:class:`RedisBackend`) so several masters share it safely.
"""

from ._backend import Backend
from ._errors import (
    BackendUnavailableError,
    DuplicateJobError,
    InsufficientResourcesError,
    InvalidAmountError,
    MissingExtraError,
    NodeDrainingError,
    NoNodeAvailableError,
    ResourceError,
    UnknownNodeError,
)
from ._manager import ResourceManager
from ._memory import MemoryBackend
from ._quantity import parse_cpu, parse_ram
from ._redis import RedisBackend
from ._scoring import BALANCED, BINPACK, SPREAD, Scorer
from ._types import Node, RegisterResult, Reservation, Resources, Snapshot

__all__ = [
    "BALANCED",
    "BINPACK",
    "SPREAD",
    "Backend",
    "BackendUnavailableError",
    "DuplicateJobError",
    "InsufficientResourcesError",
    "InvalidAmountError",
    "MemoryBackend",
    "MissingExtraError",
    "NoNodeAvailableError",
    "Node",
    "NodeDrainingError",
    "RedisBackend",
    "RegisterResult",
    "Reservation",
    "ResourceError",
    "ResourceManager",
    "Resources",
    "Scorer",
    "Snapshot",
    "UnknownNodeError",
    "parse_cpu",
    "parse_ram",
]
