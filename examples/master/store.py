"""The job store: one interface, SQL shared by two backends, versioned schema.

:class:`Store` holds every query; a backend only connects, runs statements and opens
transactions. :class:`SQLiteStore` (WAL, ``synchronous=NORMAL``) is the embedded default
for one master; ``examples.master.pgstore.PostgresStore`` (psycopg 3) serves several
masters on one database. :func:`open_store` picks one from ``--db``: a path or
``sqlite:///path``, or ``postgresql://...``.

Every state change is one transaction: a write commits at once unless it runs inside
:meth:`Store.batch`, which groups many writes (a scheduling pass placing hundreds of jobs
commits once). The store is used from the event-loop thread only; a SQLite commit costs
tens of microseconds and a loopback PostgreSQL round trip a fraction of a millisecond, so
the scheduler calls it directly instead of through a thread pool.

Schema changes are numbered :data:`MIGRATIONS`, recorded in ``schema_migrations`` and
applied at open, under a lock, by whichever master starts first. A master refuses a
database migrated past the newest version it knows (:class:`SchemaTooNew`).
"""

from __future__ import annotations

import abc
import contextlib
import json
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from examples.master.errors import SchemaTooNew, StoreUnavailable
from ffrtmp_infra.tracing import redact_url

__all__ = [
    "ACTIVE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TERMINAL",
    "AttemptRecord",
    "JobRecord",
    "NodeRecord",
    "SQLiteStore",
    "Store",
    "check_db",
    "open_store",
]

#: Statuses a job moves through; ``queued`` also covers "waiting for a retry".
ACTIVE = ("assigned", "running")
TERMINAL = ("completed", "failed", "canceled")

#: a job's sequence number as given in a URL (str.isdigit also takes "³", any length)
_SEQ = re.compile(r"[0-9]{1,18}")

#: ``(version, description, statements)``; ``{real}``, ``{bigint}`` and ``{job_seq}`` are
#: filled in per backend (an empty statement is skipped). Append, never edit.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "jobs, attempts, nodes and node tokens",
        (
            """CREATE TABLE IF NOT EXISTS nodes (
                id TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                capacity TEXT NOT NULL,
                labels TEXT NOT NULL,
                encoders TEXT NOT NULL,
                version TEXT NOT NULL,
                registered_at {real} NOT NULL,
                last_heartbeat {real} NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS node_tokens (
                node_id TEXT PRIMARY KEY,
                token_hash TEXT NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY,
                seq {bigint} NOT NULL UNIQUE,
                status TEXT NOT NULL,
                scenario TEXT NOT NULL,
                queue TEXT NOT NULL,
                priority TEXT NOT NULL,
                spec TEXT NOT NULL,
                created_at {real} NOT NULL,
                queued_at {real} NOT NULL,
                assigned_at {real},
                started_at {real},
                finished_at {real},
                last_activity {real},
                node_id TEXT,
                attempt INTEGER NOT NULL DEFAULT 0,
                failures INTEGER NOT NULL DEFAULT 0,
                retry_at {real},
                progress TEXT,
                result TEXT,
                error TEXT,
                dead_letter INTEGER NOT NULL DEFAULT 0,
                trace TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS idx_jobs_status ON jobs(status, seq)",
            "CREATE INDEX IF NOT EXISTS idx_jobs_node ON jobs(node_id, status)",
            """CREATE TABLE IF NOT EXISTS attempts (
                job_id TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                node_id TEXT NOT NULL,
                assigned_at {real} NOT NULL,
                started_at {real},
                finished_at {real},
                outcome TEXT,
                error TEXT,
                PRIMARY KEY (job_id, attempt)
            )""",
            "{job_seq}",
        ),
    ),
)
#: The newest schema this master knows.
SCHEMA_VERSION = MIGRATIONS[-1][0]


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


def _job_from_row(row: dict[str, Any]) -> JobRecord:
    values = dict(row)
    for name in _JSON_JOB_FIELDS:
        raw = values[name]
        values[name] = json.loads(raw) if raw is not None else None
    values["trace"] = values["trace"] or {}
    values["dead_letter"] = bool(values["dead_letter"])
    return JobRecord(**values)


def _node_from_row(row: dict[str, Any]) -> NodeRecord:
    values = dict(row)
    for name in ("capacity", "labels", "encoders"):
        values[name] = json.loads(values[name])
    return NodeRecord(**values)


def check_db(db: str) -> str:
    """``db`` if :func:`open_store` understands it, else a ``ValueError`` naming the rule."""
    if not isinstance(db, str) or not db.strip():
        raise ValueError(f"db must be a file path, sqlite:///path or postgresql://..., got {db!r}")
    scheme, sep, _ = db.partition("://")
    if sep and scheme not in ("sqlite", "postgresql", "postgres"):
        raise ValueError(
            f"db must be a file path, sqlite:///path or postgresql://..., got {redact_url(db)!r}"
        )
    if scheme == "sqlite" and not db.startswith("sqlite:///"):
        raise ValueError(f"a SQLite URL is sqlite:///relative/path or sqlite:////abs, got {db!r}")
    return db


def open_store(db: str) -> Store:
    """The store ``db`` names: ``postgresql://...``, ``sqlite:///path`` or a file path."""
    check_db(db)
    if db.startswith(("postgresql://", "postgres://")):
        from examples.master.pgstore import PostgresStore  # psycopg only when asked for

        return PostgresStore(db)
    return SQLiteStore(db.removeprefix("sqlite:///"))


class Store(abc.ABC):
    """Jobs, attempts, nodes and node tokens, whatever database holds them.

    Queries are written once, with ``?`` placeholders; a backend implements the five
    primitives below. Database failures surface as :class:`StoreUnavailable`.
    """

    #: appended to the claim's row lookup (PostgreSQL: skip rows another master holds)
    _claim_lock = ""
    #: per-backend parts of the migrations' statements
    _ddl: ClassVar[Mapping[str, str]] = {}

    def __init__(self, display: str) -> None:
        #: where the data lives, credentials redacted (for logs and errors)
        self.display = display
        self._depth = 0

    # -- backend primitives --------------------------------------------------------------

    @abc.abstractmethod
    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one statement; its rows as dicts (none for most writes)."""

    @abc.abstractmethod
    def _run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""

    @abc.abstractmethod
    def _begin(self, *, exclusive: bool = False) -> None:
        """Open a transaction (``exclusive``: also serialise against other masters)."""

    @abc.abstractmethod
    def _end(self, *, commit: bool) -> None:
        """Commit or roll back the open transaction."""

    @abc.abstractmethod
    def next_seq(self) -> int:
        """A fresh, human-friendly job sequence number."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection (idempotent)."""

    # -- transactions and schema -----------------------------------------------------------

    @contextlib.contextmanager
    def batch(self, *, exclusive: bool = False) -> Iterator[None]:
        """Group the writes inside in one transaction (nests; the outermost commits)."""
        if self._depth == 0:
            self._begin(exclusive=exclusive)
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                with contextlib.suppress(StoreUnavailable):
                    self._end(commit=False)
            raise
        self._depth -= 1
        if self._depth == 0:
            self._end(commit=True)

    def _write(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.batch():
            return self._run(sql, params)

    def migrate(self) -> int:
        """Bring the schema to :data:`SCHEMA_VERSION`; returns the version found before.

        Raises :class:`SchemaTooNew` when a newer master already migrated the database.
        """
        with self.batch(exclusive=True):
            self._run(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " description TEXT NOT NULL, applied_at {real} NOT NULL)".format(**self._ddl)
            )
            rows = self._run("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
            found = int(rows[0]["v"])
            if found > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"the database {self.display} has schema version {found}, newer than "
                    f"version {SCHEMA_VERSION} this master knows: run a newer master",
                    {"found": found, "known": SCHEMA_VERSION},
                )
            for version, description, statements in MIGRATIONS:
                if version <= found:
                    continue
                for statement in statements:
                    sql = statement.format(**self._ddl)
                    if sql:
                        self._run(sql)
                self._run(
                    "INSERT INTO schema_migrations (version, description, applied_at)"
                    " VALUES (?, ?, ?)",
                    (version, description, time.time()),
                )
        return found

    def schema_version(self) -> int:
        """The newest migration applied to this database."""
        rows = self._run("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        return int(rows[0]["v"])

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers a trivial query."""
        self._run("SELECT 1 AS one")

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
        rows = self._run("SELECT token_hash FROM node_tokens WHERE node_id=?", (node_id,))
        return str(rows[0]["token_hash"]) if rows else None

    def prune_nodes(self, silent_since: float) -> list[str]:
        """Delete offline nodes (and their tokens) silent since before ``silent_since``."""
        with self.batch():
            rows = self._run(
                "DELETE FROM nodes WHERE status='offline' AND last_heartbeat < ? RETURNING id",
                (silent_since,),
            )
            pruned = sorted(str(r["id"]) for r in rows)
            self._run_many("DELETE FROM node_tokens WHERE node_id=?", [(n,) for n in pruned])
        return pruned

    def count_nodes(self) -> int:
        """Nodes not removed (online or offline)."""
        rows = self._run("SELECT COUNT(*) AS n FROM nodes WHERE status != 'removed'")
        return int(rows[0]["n"])

    def set_node_status(self, node_id: str, status: str) -> None:
        """Change a node's status (``online``, ``offline``, ``removed``)."""
        self._write("UPDATE nodes SET status=? WHERE id=?", (status, node_id))

    def save_heartbeats(self, beats: Iterable[tuple[str, float]]) -> None:
        """Persist last-heartbeat times in one transaction (called periodically, not per beat)."""
        with self.batch():
            self._run_many(
                "UPDATE nodes SET last_heartbeat=? WHERE id=?", [(t, n) for n, t in beats]
            )

    def get_node(self, node_id: str) -> NodeRecord | None:
        """The node with this id, or ``None``."""
        rows = self._run("SELECT * FROM nodes WHERE id=?", (node_id,))
        return _node_from_row(rows[0]) if rows else None

    def list_nodes(self, *, after: str = "", limit: int | None = None) -> list[NodeRecord]:
        """Nodes in id order, those with an id after ``after`` (up to ``limit``)."""
        sql = "SELECT * FROM nodes WHERE id > ? ORDER BY id"
        params: tuple[Any, ...] = (after,)
        if limit is not None:
            sql, params = sql + " LIMIT ?", (after, limit)
        return [_node_from_row(r) for r in self._run(sql, params)]

    # -- jobs ----------------------------------------------------------------------------

    def insert_job(self, job: JobRecord) -> None:
        """Store a new job."""
        names = [name.strip() for name in _JOB_COLUMNS.split(",")]
        values = [_column_value(n, getattr(job, n)) for n in names]
        placeholders = ", ".join("?" for _ in values)
        self._write(f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({placeholders})", values)  # noqa: S608

    def update_job(self, job_id: str, **changes: Any) -> None:
        """Set the given columns of one job (JSON columns are encoded here)."""
        assignments, values = _assignments(changes)
        self._write(f"UPDATE jobs SET {assignments} WHERE id=?", [*values, job_id])  # noqa: S608

    def claim_job(self, job_id: str, **changes: Any) -> bool:
        """Apply ``changes`` to a job only if it is still queued; True if this call did.

        The guard makes a placement safe against a cancel, and, on PostgreSQL, against
        another master placing the same job: the row is locked ``FOR UPDATE SKIP LOCKED``,
        so of two masters racing for it one wins and the other moves on without waiting.
        """
        assignments, values = _assignments(changes)
        sql = (
            f"UPDATE jobs SET {assignments} WHERE id IN"  # noqa: S608
            f" (SELECT id FROM jobs WHERE id=? AND status='queued'{self._claim_lock})"
            " RETURNING id"
        )
        return bool(self._write(sql, [*values, job_id]))

    def get_job(self, job_id: str) -> JobRecord | None:
        """The job with this id (or this sequence number, given as digits), or ``None``."""
        column, key = ("seq", int(job_id)) if _SEQ.fullmatch(job_id) else ("id", job_id)
        rows = self._run(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {column}=?", (key,))  # noqa: S608
        return _job_from_row(rows[0]) if rows else None

    def jobs_with_status(self, statuses: Iterable[str]) -> list[JobRecord]:
        """Every job in one of ``statuses``, oldest first (used by recovery)."""
        wanted = tuple(statuses)
        marks = ", ".join("?" for _ in wanted)
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status IN ({marks}) ORDER BY seq"  # noqa: S608
        return [_job_from_row(r) for r in self._run(sql, wanted)]

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
        return [_job_from_row(r) for r in self._run(sql, (*params, limit))]

    def count_jobs_by_status(self) -> dict[str, int]:
        """``{status: count}`` over all jobs."""
        rows = self._run("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
        return {str(r["status"]): int(r["n"]) for r in rows}

    def job_counters(self) -> dict[str, dict[str, int]]:
        """Jobs submitted and attempts placed per queue, attempts ended per outcome, dead
        letters: counted from the records, so they survive restarts (see metrics.py)."""
        queries = {
            "submitted": "SELECT queue AS k, COUNT(*) AS n FROM jobs GROUP BY queue",
            "placed": "SELECT j.queue AS k, COUNT(*) AS n FROM attempts a"
            " JOIN jobs j ON j.id = a.job_id GROUP BY j.queue",
            "finished": "SELECT outcome AS k, COUNT(*) AS n FROM attempts"
            " WHERE outcome IS NOT NULL GROUP BY outcome",
            "dead_letters": "SELECT '' AS k, COUNT(*) AS n FROM jobs WHERE dead_letter=1",
        }
        return {
            name: {str(r["k"]): int(r["n"]) for r in self._run(sql)}
            for name, sql in queries.items()
        }

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
        assignments, values = _assignments(changes)
        self._write(
            f"UPDATE attempts SET {assignments} WHERE job_id=? AND attempt=?",  # noqa: S608
            [*values, job_id, attempt],
        )

    def attempts(self, job_id: str) -> list[AttemptRecord]:
        """A job's attempt history, first attempt first."""
        rows = self._run("SELECT * FROM attempts WHERE job_id=? ORDER BY attempt", (job_id,))
        return [AttemptRecord(**r) for r in rows]


def _assignments(changes: dict[str, Any]) -> tuple[str, list[Any]]:
    """``"a=?, b=?"`` and the values as stored."""
    names = list(changes)
    return ", ".join(f"{n}=?" for n in names), [_column_value(n, changes[n]) for n in names]


def _column_value(name: str, value: Any) -> Any:
    """A value as stored: JSON columns encoded, booleans as 0/1 (PostgreSQL will not cast)."""
    if name in _JSON_JOB_FIELDS:
        return _dumps(value)
    return int(value) if isinstance(value, bool) else value


class SQLiteStore(Store):
    """One SQLite file in WAL mode (``":memory:"`` for throwaway runs): one master."""

    _ddl: ClassVar[Mapping[str, str]] = {"real": "REAL", "bigint": "INTEGER", "job_seq": ""}

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {path!r}: {exc}") from None
        self._db.row_factory = sqlite3.Row
        if path != ":memory:":
            mode = self._run("PRAGMA journal_mode=WAL")[0]["journal_mode"]
            if mode.lower() != "wal":
                raise StoreUnavailable(f"SQLite at {path!r} refused WAL mode (got {mode!r})")
        self._run("PRAGMA synchronous=NORMAL")
        self._run("PRAGMA busy_timeout=10000")
        self.migrate()
        rows = self._run("SELECT COALESCE(MAX(seq), 0) AS s FROM jobs")
        self._next_seq = int(rows[0]["s"]) + 1

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            return [dict(row) for row in self._db.execute(sql, tuple(params)).fetchall()]
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite at {self.path!r}: {exc}") from None

    def _run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self._db.executemany(sql, rows)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite at {self.path!r}: {exc}") from None

    def _begin(self, *, exclusive: bool = False) -> None:
        self._run("BEGIN IMMEDIATE")  # one writer at a time: take the lock up front

    def _end(self, *, commit: bool) -> None:
        self._run("COMMIT" if commit else "ROLLBACK")

    def next_seq(self) -> int:
        """A fresh sequence number (one master per SQLite file: counted in memory)."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with contextlib.suppress(sqlite3.ProgrammingError):
            self._db.close()
