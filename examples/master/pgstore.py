"""The PostgreSQL job store (psycopg 3): several masters on one database.

Same queries as SQLite (see :class:`~examples.master.store.Store`); what differs is here:
``?`` placeholders become ``%s``, a database sequence numbers jobs (masters never hand
out the same number), a claim locks its row ``FOR UPDATE SKIP LOCKED``, and migrations
run under a transaction-scoped advisory lock so two masters starting together migrate
once. A lost connection raises :class:`StoreUnavailable` for the operation under way and
is reopened by the next one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from examples.master.errors import StoreUnavailable
from examples.master.store import Store
from ffrtmp_infra.tracing import redact_url

__all__ = ["PostgresStore"]

#: the advisory lock key migrations hold (any constant shared by every master)
_MIGRATION_LOCK = 0x6666_726D_7470  # "ffrmtp"
#: seconds to wait for a connection before calling the database unreachable
CONNECT_TIMEOUT = 5

_Connection = psycopg.Connection[dict[str, Any]]


class PostgresStore(Store):
    """Jobs, attempts and nodes in PostgreSQL (``postgresql://user@host:port/db``)."""

    _claim_lock = " FOR UPDATE SKIP LOCKED"
    _ddl: ClassVar[Mapping[str, str]] = {
        "real": "DOUBLE PRECISION",
        "bigint": "BIGINT",
        "job_seq": "CREATE SEQUENCE IF NOT EXISTS job_seq",
    }

    def __init__(self, url: str) -> None:
        super().__init__(redact_url(url))
        self._url = url
        self._options: dict[str, Any] = {}
        if "connect_timeout" not in conninfo_to_dict(url):
            self._options["connect_timeout"] = CONNECT_TIMEOUT
        self._db: _Connection | None = None
        self._in_transaction = False
        self.migrate()

    def _connection(self) -> _Connection:
        if self._db is not None and not self._db.closed:
            return self._db
        if self._in_transaction:  # it died with the old connection: never commit half of it
            self._in_transaction = False
            raise StoreUnavailable(f"lost the connection to PostgreSQL at {self.display}")
        try:
            self._db = psycopg.connect(
                self._url, autocommit=True, row_factory=dict_row, **self._options
            )
        except psycopg.Error as exc:
            message = f"cannot connect to PostgreSQL at {self.display}: {exc}"
            raise StoreUnavailable(message) from None
        return self._db

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        if self._db is not None and self._db.broken:
            self._db.close()  # reopened by the next operation
        first_line = str(exc).strip().splitlines()[:1] or [type(exc).__name__]
        return StoreUnavailable(f"PostgreSQL at {self.display}: {first_line[0]}")

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        db = self._connection()
        try:
            cursor = db.execute(sql.replace("?", "%s"), tuple(params))
            return cursor.fetchall() if cursor.description is not None else []
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._unavailable(exc) from None

    def _run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        db = self._connection()
        try:
            with db.cursor() as cursor:
                cursor.executemany(sql.replace("?", "%s"), list(rows))
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._unavailable(exc) from None

    def _begin(self, *, exclusive: bool = False) -> None:
        self._run("BEGIN")
        self._in_transaction = True
        if exclusive:
            self._run("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def _end(self, *, commit: bool) -> None:
        try:
            self._run("COMMIT" if commit else "ROLLBACK")
        finally:
            self._in_transaction = False

    def next_seq(self) -> int:
        """The next value of the database's ``job_seq`` (unique across masters)."""
        return int(self._run("SELECT nextval('job_seq') AS s")[0]["s"])

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._db is not None:
            self._db.close()
