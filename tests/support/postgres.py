"""A PostgreSQL server for the tests: the machine's own on 127.0.0.1:5432, else a private one.

Each test session gets a database of its own (created here, dropped at the end); each test
gets it empty (``reset``), so every test also runs the store's migrations from scratch.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.services import free_port

#: where a running server is looked for first (trust auth, as the CI machines run it)
LOCAL = "postgresql://postgres@127.0.0.1:5432"


def find_pg_bin() -> str | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (PATH, then the Debian layout)."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return str(Path(initdb).parent)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return str(Path(found[-1]).parent) if found else None


def _answers(base: str) -> bool:
    import psycopg

    try:
        psycopg.connect(f"{base}/postgres", connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


class PostgresServer:
    """Owns one session database on a local or private server; ``url`` points at it."""

    def __init__(self) -> None:
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._bin: str | None = None
        self.base = LOCAL
        self.database = f"ffrtmp_test_{uuid.uuid4().hex[:12]}"

    @property
    def url(self) -> str:
        return f"{self.base}/{self.database}"

    def start(self) -> None:
        """Use the local server if it answers, else initdb and start a private one."""
        if not _answers(LOCAL):
            self._start_private()
        self._admin(f'CREATE DATABASE "{self.database}"')

    def _start_private(self) -> None:
        self._bin = find_pg_bin()
        if self._bin is None:
            raise FileNotFoundError("no PostgreSQL on 127.0.0.1:5432 and no initdb/pg_ctl")
        self._dir = tempfile.TemporaryDirectory(prefix="ffrtmp-pg-")
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as "postgres"
            account = pwd.getpwnam("postgres")
            os.chown(self._dir.name, account.pw_uid, account.pw_gid)
        data = Path(self._dir.name) / "data"
        port = free_port()
        self._pg("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {self._dir.name} -c fsync=off"
        self._pg("pg_ctl", "-D", str(data), "-o", options, "-w", "-t", "60", "start")
        self.base = f"postgresql://postgres@127.0.0.1:{port}"

    def _pg(self, tool: str, *args: str, check: bool = True) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*as_postgres, f"{self._bin}/{tool}", *args],
            check=check,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _admin(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(f"{self.base}/{database}", autocommit=True) as db:
            db.execute(sql)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Empty the session database (every table, sequence and migration record)."""
        self._admin(
            "SET lock_timeout = '10s'; DROP SCHEMA public CASCADE; CREATE SCHEMA public",
            self.database,
        )

    @contextlib.contextmanager
    def refusing_connections(self) -> Iterator[None]:
        """Make the session database unreachable (connections cut and refused) for a while."""
        name = self.database
        self._admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        try:
            yield
        finally:
            self._admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    def connect(self, **options: Any) -> Any:
        """A new psycopg connection to the session database."""
        import psycopg

        return psycopg.connect(self.url, autocommit=True, **options)

    def stop(self) -> None:
        """Drop the session database; stop the private server if one was started."""
        try:
            self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            if self._dir is not None and self._bin is not None:
                data = Path(self._dir.name) / "data"
                self._pg("pg_ctl", "-D", str(data), "-m", "immediate", "stop", check=False)
                self._dir.cleanup()
