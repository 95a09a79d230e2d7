"""Connections and transactions for the SQL engines Vigil runs on: SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vigil.config import private_directory, private_file
from vigil.errors import InvalidInput

AUDIT_LOCK = 4243  # PostgreSQL advisory lock id of the audit chain (4242 guards schema creation)


class SqliteDialect:
    """SQLite in WAL mode with full fsync, one writer at a time, a connection per thread. The database file is the
    owner's only (0600; SQLite gives its WAL and shared-memory files the same mode), in a directory made 0700."""

    placeholder = "?"
    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT"
    stages_batches = False  # row-by-row inserts beat staging in-process
    unavailable_errors: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)  # locked, disk full, I/O

    def __init__(self, path: str):
        self.path = path
        if path != ":memory:":
            private_directory(Path(path).parent)
            private_file(Path(path))
        self._write_lock = threading.Lock()
        self._nesting = threading.local()  # this thread's transaction depth

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextmanager
    def transaction(self, conn: sqlite3.Connection) -> Iterator[Any]:
        """BEGIN IMMEDIATE ... COMMIT; inside another transaction of this thread, a savepoint of it (as psycopg
        nests them)."""
        depth = getattr(self._nesting, "depth", 0)
        if depth:
            with self._savepoint(conn, depth):
                yield conn
            return
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            self._nesting.depth = 1
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                self._nesting.depth = 0
            conn.execute("COMMIT")

    @contextmanager
    def _savepoint(self, conn: sqlite3.Connection, depth: int) -> Iterator[None]:
        name = f"nested_{depth}"
        conn.execute(f"SAVEPOINT {name}")
        self._nesting.depth = depth + 1
        try:
            yield
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        finally:
            self._nesting.depth = depth
        conn.execute(f"RELEASE {name}")

    def run_script(self, conn: sqlite3.Connection, script: str) -> None:
        conn.executescript(script)

    def stage(self, conn: sqlite3.Connection, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        """Load rows into this connection's empty staging table (created on first use) with one executemany."""
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({', '.join(columns)})")
        conn.execute(f"DELETE FROM {table}")
        conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows)

    def columns(self, conn: sqlite3.Connection, table: str) -> set[str]:
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}

    def is_broken(self, conn: sqlite3.Connection) -> bool:
        """An embedded connection does not break."""
        return False

    def serialise_audit(self, conn: sqlite3.Connection) -> None:
        """Nothing to do: BEGIN IMMEDIATE already holds the database's one write lock, across processes."""


class PostgresDialect:
    """PostgreSQL through psycopg 3, a connection per thread."""

    placeholder = "%s"
    id_column = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    stages_batches = True  # COPY into a staging table, then one INSERT ... SELECT

    def __init__(self, url: str):
        import psycopg

        self.url = url
        self.unavailable_errors: tuple[type[BaseException], ...] = (psycopg.OperationalError,)  # connection lost

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    @contextmanager
    def transaction(self, conn: Any) -> Iterator[Any]:
        with conn.transaction():
            yield conn

    def stage(self, conn: Any, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        """Load rows into this connection's staging table (emptied at each commit) with one COPY; inside a
        transaction."""
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({_pg_staging_columns(columns)}) ON COMMIT DELETE ROWS")
        with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def run_script(self, conn: Any, script: str) -> None:
        with conn.transaction():
            # Serialise concurrent schema creation by several workers.
            conn.execute("SELECT pg_advisory_xact_lock(4242)")
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)

    def columns(self, conn: Any, table: str) -> set[str]:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        )
        return {row[0] for row in rows}

    def is_broken(self, conn: Any) -> bool:
        """True once the server has closed or lost this connection (a restart, a terminated backend)."""
        return bool(conn.closed or conn.broken)

    def serialise_audit(self, conn: Any) -> None:
        """Hold the audit chain's lock until this transaction ends, so concurrent appends cannot fork it."""
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))


PG_STAGING_TYPES = {"n": "INTEGER", "value": "DOUBLE PRECISION", "seq": "BIGINT"}


def _pg_staging_columns(columns: Sequence[str]) -> str:
    return ", ".join(f"{column} {PG_STAGING_TYPES.get(column, 'TEXT')}" for column in columns)


def dialect_for(url: str) -> SqliteDialect | PostgresDialect:
    """Pick the engine from a store URL: sqlite:///path.db or postgresql://..."""
    if url.startswith("sqlite:///"):
        return SqliteDialect(url.removeprefix("sqlite:///") or ":memory:")
    if url == "sqlite://":
        return SqliteDialect(":memory:")
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDialect(url)
    raise InvalidInput(f"unsupported store URL {url!r}: use sqlite:///path.db or postgresql://...")
