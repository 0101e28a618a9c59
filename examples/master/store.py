"""SQLite job and node store (WAL mode): the master's source of truth.

Every write commits at once unless it runs inside :meth:`Store.batch`, which
groups many writes in one transaction (a scheduling pass placing hundreds of
jobs commits once). The store is used from the event-loop thread only; with
WAL and ``synchronous=NORMAL`` a commit costs tens of microseconds, so the
scheduler calls it directly instead of through a thread pool.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ACTIVE", "TERMINAL", "AttemptRecord", "JobRecord", "NodeRecord", "Store"]

#: Statuses a job moves through; ``queued`` also covers "waiting for a retry".
ACTIVE = ("assigned", "running")
TERMINAL = ("completed", "failed", "canceled")

#: a job's sequence number as given in a URL (str.isdigit also takes "³", any length)
_SEQ = re.compile(r"[0-9]{1,18}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    capacity TEXT NOT NULL,
    labels TEXT NOT NULL,
    encoders TEXT NOT NULL,
    version TEXT NOT NULL,
    registered_at REAL NOT NULL,
    last_heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS node_tokens (
    node_id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    status TEXT NOT NULL,
    scenario TEXT NOT NULL,
    queue TEXT NOT NULL,
    priority TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at REAL NOT NULL,
    queued_at REAL NOT NULL,
    assigned_at REAL,
    started_at REAL,
    finished_at REAL,
    last_activity REAL,
    node_id TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    retry_at REAL,
    progress TEXT,
    result TEXT,
    error TEXT,
    dead_letter INTEGER NOT NULL DEFAULT 0,
    trace TEXT
);
CREATE INDEX IF NOT EXISTS idx_jobs_status ON jobs(status, seq);
CREATE INDEX IF NOT EXISTS idx_jobs_node ON jobs(node_id, status);
CREATE TABLE IF NOT EXISTS attempts (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    assigned_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    outcome TEXT,
    error TEXT,
    PRIMARY KEY (job_id, attempt)
);
"""


@dataclass
class NodeRecord:
    """A worker node as stored: capacity as registered, status ``online|offline|removed``."""

    id: str
    status: str
    capacity: dict[str, Any]
    labels: dict[str, str]
    encoders: list[str]
    version: str
    registered_at: float
    last_heartbeat: float


@dataclass
class AttemptRecord:
    """One try of a job on a node and how it ended (``None`` while it runs)."""

    job_id: str
    attempt: int
    node_id: str
    assigned_at: float
    started_at: float | None = None
    finished_at: float | None = None
    outcome: str | None = None
    error: str | None = None


@dataclass
class JobRecord:
    """A job as stored. ``spec`` is the validated spec; ``trace`` the job.create carrier."""

    id: str
    seq: int
    status: str
    scenario: str
    queue: str
    priority: str
    spec: dict[str, Any]
    created_at: float
    queued_at: float
    assigned_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    last_activity: float | None = None
    node_id: str | None = None
    attempt: int = 0
    failures: int = 0
    retry_at: float | None = None
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    dead_letter: bool = False
    trace: dict[str, str] = field(default_factory=dict)


_JOB_COLUMNS = (
    "id, seq, status, scenario, queue, priority, spec, created_at, queued_at, assigned_at, "
    "started_at, finished_at, last_activity, node_id, attempt, failures, retry_at, progress, "
    "result, error, dead_letter, trace"
)
_JSON_JOB_FIELDS = ("spec", "progress", "result", "trace")


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _job_from_row(row: sqlite3.Row) -> JobRecord:
    values = dict(row)
    for name in _JSON_JOB_FIELDS:
        raw = values[name]
        values[name] = json.loads(raw) if raw is not None else None
    values["trace"] = values["trace"] or {}
    values["dead_letter"] = bool(values["dead_letter"])
    return JobRecord(**values)


def _node_from_row(row: sqlite3.Row) -> NodeRecord:
    values = dict(row)
    for name in ("capacity", "labels", "encoders"):
        values[name] = json.loads(values[name])
    return NodeRecord(**values)


class Store:
    """Jobs, attempts and nodes in one SQLite file (``":memory:"`` for throwaway runs)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        if path != ":memory:":
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise RuntimeError(f"SQLite at {path!r} refused WAL mode (got {mode!r})")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        self._depth = 0
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()
        self._next_seq = int(row[0]) + 1

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with contextlib.suppress(sqlite3.ProgrammingError):
            self._db.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes inside in one transaction (nests; the outermost commits)."""
        if self._depth == 0:
            self._db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._db.execute("COMMIT")

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self.batch():
            return self._db.execute(sql, tuple(params))

    # -- nodes ---------------------------------------------------------------------------

    def upsert_node(self, node: NodeRecord) -> None:
        """Insert or replace a node (re-registration keeps ``registered_at`` as given)."""
        self._write(
            "INSERT INTO nodes (id, status, capacity, labels, encoders, version, registered_at,"
            " last_heartbeat) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
            " status=excluded.status, capacity=excluded.capacity, labels=excluded.labels,"
            " encoders=excluded.encoders, version=excluded.version,"
            " last_heartbeat=excluded.last_heartbeat",
            (
                node.id,
                node.status,
                _dumps(node.capacity),
                _dumps(node.labels),
                _dumps(node.encoders),
                node.version,
                node.registered_at,
                node.last_heartbeat,
            ),
        )

    def set_node_token(self, node_id: str, token_hash: str | None) -> None:
        """Store the hash of a node's credential (``None`` revokes it)."""
        if token_hash is None:
            self._write("DELETE FROM node_tokens WHERE node_id=?", (node_id,))
        else:
            self._write(
                "INSERT INTO node_tokens (node_id, token_hash) VALUES (?, ?) ON CONFLICT(node_id)"
                " DO UPDATE SET token_hash=excluded.token_hash",
                (node_id, token_hash),
            )

    def node_token(self, node_id: str) -> str | None:
        """The hash of a node's credential, or ``None`` if it has none."""
        row = self._db.execute(
            "SELECT token_hash FROM node_tokens WHERE node_id=?", (node_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def prune_nodes(self, silent_since: float) -> list[str]:
        """Delete offline nodes (and their tokens) silent since before ``silent_since``."""
        with self.batch():
            rows = self._db.execute(
                "SELECT id FROM nodes WHERE status='offline' AND last_heartbeat < ?",
                (silent_since,),
            ).fetchall()
            pruned = [str(r[0]) for r in rows]
            for node_id in pruned:
                self._db.execute("DELETE FROM nodes WHERE id=?", (node_id,))
                self._db.execute("DELETE FROM node_tokens WHERE node_id=?", (node_id,))
        return pruned

    def count_nodes(self) -> int:
        """Nodes not removed (online or offline)."""
        row = self._db.execute("SELECT COUNT(*) FROM nodes WHERE status != 'removed'").fetchone()
        return int(row[0])

    def set_node_status(self, node_id: str, status: str) -> None:
        """Change a node's status (``online``, ``offline``, ``removed``)."""
        self._write("UPDATE nodes SET status=? WHERE id=?", (status, node_id))

    def save_heartbeats(self, beats: Iterable[tuple[str, float]]) -> None:
        """Persist last-heartbeat times in one statement (called periodically, not per beat)."""
        with self.batch():
            self._db.executemany(
                "UPDATE nodes SET last_heartbeat=? WHERE id=?", [(t, n) for n, t in beats]
            )

    def get_node(self, node_id: str) -> NodeRecord | None:
        """The node with this id, or ``None``."""
        row = self._db.execute("SELECT * FROM nodes WHERE id=?", (node_id,)).fetchone()
        return _node_from_row(row) if row else None

    def list_nodes(self) -> list[NodeRecord]:
        """All nodes, in id order."""
        return [_node_from_row(r) for r in self._db.execute("SELECT * FROM nodes ORDER BY id")]

    # -- jobs ----------------------------------------------------------------------------

    def next_seq(self) -> int:
        """A fresh, human-friendly job sequence number."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def insert_job(self, job: JobRecord) -> None:
        """Store a new job."""
        values = [getattr(job, name.strip()) for name in _JOB_COLUMNS.split(",")]
        values = [
            _dumps(v) if name.strip() in _JSON_JOB_FIELDS else v
            for name, v in zip(_JOB_COLUMNS.split(","), values, strict=True)
        ]
        placeholders = ", ".join("?" for _ in values)
        self._write(f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({placeholders})", values)  # noqa: S608

    def update_job(self, job_id: str, **changes: Any) -> None:
        """Set the given columns of one job (JSON columns are encoded here)."""
        names = list(changes)
        values = [_dumps(changes[n]) if n in _JSON_JOB_FIELDS else changes[n] for n in names]
        assignments = ", ".join(f"{n}=?" for n in names)
        self._write(f"UPDATE jobs SET {assignments} WHERE id=?", [*values, job_id])  # noqa: S608

    def get_job(self, job_id: str) -> JobRecord | None:
        """The job with this id (or this sequence number, given as digits), or ``None``."""
        if _SEQ.fullmatch(job_id):
            sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE seq=?"  # noqa: S608
            row = self._db.execute(sql, (int(job_id),)).fetchone()
        else:
            sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id=?"  # noqa: S608
            row = self._db.execute(sql, (job_id,)).fetchone()
        return _job_from_row(row) if row else None

    def jobs_with_status(self, statuses: Iterable[str]) -> list[JobRecord]:
        """Every job in one of ``statuses``, oldest first (used by recovery)."""
        wanted = tuple(statuses)
        marks = ", ".join("?" for _ in wanted)
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status IN ({marks}) ORDER BY seq"  # noqa: S608
        return [_job_from_row(r) for r in self._db.execute(sql, wanted)]

    def list_jobs(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        """A page of jobs, newest first; ``before_seq`` continues after a previous page."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status=?")
            params.append(status)
        if queue is not None:
            where.append("queue=?")
            params.append(queue)
        if before_seq is not None:
            where.append("seq<?")
            params.append(before_seq)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs {clause} ORDER BY seq DESC LIMIT ?"  # noqa: S608
        return [_job_from_row(r) for r in self._db.execute(sql, (*params, limit))]

    def count_jobs_by_status(self) -> dict[str, int]:
        """``{status: count}`` over all jobs."""
        rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        return {str(s): int(n) for s, n in rows}

    # -- attempts ------------------------------------------------------------------------

    def insert_attempt(self, attempt: AttemptRecord) -> None:
        """Record the start of an attempt."""
        self._write(
            "INSERT INTO attempts (job_id, attempt, node_id, assigned_at, started_at, finished_at,"
            " outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                attempt.job_id,
                attempt.attempt,
                attempt.node_id,
                attempt.assigned_at,
                attempt.started_at,
                attempt.finished_at,
                attempt.outcome,
                attempt.error,
            ),
        )

    def update_attempt(self, job_id: str, attempt: int, **changes: Any) -> None:
        """Set columns of one attempt (``started_at``, ``finished_at``, ``outcome``, ``error``)."""
        names = list(changes)
        assignments = ", ".join(f"{n}=?" for n in names)
        self._write(
            f"UPDATE attempts SET {assignments} WHERE job_id=? AND attempt=?",  # noqa: S608
            [*(changes[n] for n in names), job_id, attempt],
        )

    def attempts(self, job_id: str) -> list[AttemptRecord]:
        """A job's attempt history, first attempt first."""
        rows = self._db.execute("SELECT * FROM attempts WHERE job_id=? ORDER BY attempt", (job_id,))
        return [AttemptRecord(**dict(r)) for r in rows]
