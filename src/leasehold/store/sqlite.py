"""The embedded SQLite store: zero set-up, one file, safe across processes on one machine.

- WAL journal (readers never block the writer), ``synchronous=NORMAL``.
- Every write runs in ``BEGIN IMMEDIATE``: the write lock is taken before the read that decides,
  so two processes can never both see a task free and both grant it (the snapshot trap of
  deferred transactions).
- ``busy_timeout``: a writer waits up to this long for the lock, then the operation fails with
  :class:`~leasehold.errors.StoreBusy` (exit 75). There is no fallback path.
- Schema: ordered migrations ``sql/sqlite/migrations/NNNN_name.sql``, each applied once and
  recorded in ``schema_migrations``; ``PRAGMA user_version`` holds how many are applied, so a
  connection checks the schema with one cheap read.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager

from leasehold.errors import StoreBusy, StoreError, StoreUnavailable
from leasehold.store.sqlbase import SQLStore, Tx, load_queries, migration_files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: Seconds a writer waits for the database lock before StoreBusy.
DEFAULT_BUSY_TIMEOUT = 10.0


class SQLiteStore(SQLStore):
    """The store on one SQLite file.

    ``path``: the database file (created, with its folder, on first use). ``clock``: returns UTC
    seconds since the epoch (default ``time.time``; tests inject one). ``busy_timeout``: seconds.
    Raises :class:`StoreUnavailable` if the file cannot be opened or is not a ledger.
    """

    dialect = "sqlite"

    def __init__(self, path: str, *, clock: Callable[[], float] | None = None,
                 busy_timeout: float | None = None) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self.clock = clock or time.time
        self.busy_timeout = DEFAULT_BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        self.queries = load_queries(self.dialect)
        self.conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        folder = os.path.dirname(self.path)
        try:
            if folder and not os.path.isdir(folder):
                os.makedirs(folder, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the SQLite ledger {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        try:
            with self._guard():
                conn.execute("PRAGMA synchronous=NORMAL")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
        except StoreError:
            conn.close()
            raise
        self.conn = conn
        if version != len(migration_files(self.dialect)):
            self.migrate()
        return conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Translate sqlite3 errors into store errors, once, here."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise StoreBusy(
                    f"the SQLite ledger {self.path} stayed locked for {self.busy_timeout:g}s "
                    f"({text}); retry later"
                ) from exc
            raise StoreUnavailable(f"SQLite ledger {self.path}: {text}") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"SQLite ledger {self.path}: {exc}") from exc

    def now(self) -> float:
        return self.clock()

    @contextmanager
    def _write(self) -> Iterator[Tx]:
        conn = self.conn
        with self._guard():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(conn.cursor(), self.queries, self.clock())
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[Tx]:
        conn = self.conn
        with self._guard():
            conn.execute("BEGIN")
            try:
                yield Tx(conn.cursor(), self.queries, self.clock())
            finally:
                conn.execute("COMMIT")

    def _limit(self, limit: int) -> int | None:
        return limit  # SQLite reads LIMIT -1 as "no limit"

    def close(self) -> None:
        self.conn.close()

    def clone(self) -> SQLiteStore:
        return SQLiteStore(self.path, clock=self.clock, busy_timeout=self.busy_timeout)

    def migrate(self) -> list[str]:
        """Apply pending migrations in one ``BEGIN IMMEDIATE`` transaction (so concurrent first
        uses apply them once). Returns the names applied."""
        conn = self.conn
        applied: list[str] = []
        with self._guard():
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
                )
                done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
                files = migration_files(self.dialect)
                for version, name, path in files:
                    if version in done:
                        continue
                    with open(path, encoding="utf-8") as fh:
                        for statement in split_statements(fh.read()):
                            conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (version, name, self.clock()),
                    )
                    applied.append(f"{version:04d}_{name}")
                conn.execute(f"PRAGMA user_version = {len(files)}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return applied


def split_statements(script: str) -> list[str]:
    """Split an SQL script into statements with SQLite's own completeness test (so trigger
    bodies with inner ``;`` stay whole)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        if not buffer and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
