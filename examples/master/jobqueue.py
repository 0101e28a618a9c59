"""The in-memory order of queued jobs: live first, then priority, then age.

The store holds the truth; this index only answers "which queued job comes
next" in O(log n) per insert without re-sorting 10,000 jobs on every pass.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["JobQueue", "QueuedJob"]

QUEUE_RANK = {"live": 0, "default": 1, "batch": 2}
PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}

_SortKey = tuple[int, int, float, int]


@dataclass
class QueuedJob:
    """What placement needs to know about a queued job without reading the store."""

    job_id: str
    seq: int
    scenario: str
    queue: str
    priority: str
    created_at: float
    retry_at: float | None = None
    avoid: str | None = None  # the node of the previous attempt: retry elsewhere if possible

    @property
    def key(self) -> _SortKey:
        """Sort key: queue rank, priority rank, creation time, sequence number."""
        return (
            QUEUE_RANK[self.queue],
            PRIORITY_RANK[self.priority],
            self.created_at,
            self.seq,
        )


class JobQueue:
    """Queued jobs in placement order; membership and removal by job id."""

    def __init__(self) -> None:
        self._keys: list[_SortKey] = []
        self._by_key: dict[_SortKey, QueuedJob] = {}
        self._by_id: dict[str, QueuedJob] = {}
        self._scenarios: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._by_id

    def __iter__(self) -> Iterator[QueuedJob]:
        """Jobs in placement order; safe to remove jobs while iterating."""
        for key in list(self._keys):
            job = self._by_key.get(key)
            if job is not None:
                yield job

    @property
    def scenarios(self) -> set[str]:
        """The scenarios of the queued jobs (placement stops once none of them fits)."""
        return set(self._scenarios)

    def get(self, job_id: str) -> QueuedJob | None:
        """The queued job with this id, or ``None``."""
        return self._by_id.get(job_id)

    def add(self, job: QueuedJob) -> None:
        """Insert (or re-insert) a job at its place in the order."""
        self.remove(job.job_id)
        key = job.key
        bisect.insort(self._keys, key)
        self._by_key[key] = job
        self._by_id[job.job_id] = job
        self._scenarios[job.scenario] = self._scenarios.get(job.scenario, 0) + 1

    def remove(self, job_id: str) -> QueuedJob | None:
        """Take a job out of the queue; returns it, or ``None`` if it was not queued."""
        job = self._by_id.pop(job_id, None)
        if job is None:
            return None
        key = job.key
        index = bisect.bisect_left(self._keys, key)
        if index < len(self._keys) and self._keys[index] == key:
            del self._keys[index]
        del self._by_key[key]
        left = self._scenarios[job.scenario] - 1
        if left:
            self._scenarios[job.scenario] = left
        else:
            del self._scenarios[job.scenario]
        return job

    def counts(self) -> dict[tuple[str, str], int]:
        """``{(queue, priority): count}`` for the metrics."""
        result: dict[tuple[str, str], int] = {}
        for job in self._by_id.values():
            pair = (job.queue, job.priority)
            result[pair] = result.get(pair, 0) + 1
        return result
