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
import time

try:
    # The driver's C module itself: the sqlite3 package around it adds only date/time adapters
    # (unused here: times are REAL seconds) and imports datetime for them, milliseconds on the
    # start-up of every command. The classes and functions are the same objects.
    import _sqlite3 as sqlite3
except ImportError:  # pragma: no cover - an interpreter without the C module split out
    import sqlite3  # type: ignore[no-redef]

from leasehold.errors import InvalidInput, LeaseholdError, Refused, StoreBusy, StoreUnavailable
from leasehold.store.sqlbase import SQLStore, Tx, load_queries, migration_files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: Seconds a writer waits for the database lock before StoreBusy.
DEFAULT_BUSY_TIMEOUT = 10.0

#: Single-row ``UPDATE tasks ... WHERE id = :id ... RETURNING *`` queries that this store runs
#: as the UPDATE followed by a SELECT by primary key: through the sqlite3 module a RETURNING
#: statement costs about 50 µs more than that pair (the claim+release figures in
#: benchmarks/RESULTS.md), and these run on every claim, extend and release.
SPLIT_RETURNING = ("grant_free", "grant_lease", "release_own", "extend_lease", "clear_lease")
_SELECT_TASK = "SELECT * FROM tasks WHERE id = ?"


def _sqlite_queries() -> dict[str, str]:
    queries = load_queries(SQLiteStore.dialect)
    if SPLIT_RETURNING[0] + "/update" not in queries:
        for name in SPLIT_RETURNING:
            sql = queries[name].rstrip()
            if not sql.endswith("RETURNING *"):
                raise RuntimeError(f"query {name} no longer ends with RETURNING *")
            queries[name + "/update"] = sql[: -len("RETURNING *")].rstrip()
    return queries


class SQLiteTx(Tx):
    """A transaction that runs the :data:`SPLIT_RETURNING` queries as UPDATE + SELECT."""

    __slots__ = ()

    def one(self, name: str, **params: Any) -> Any:
        if name not in SPLIT_RETURNING:
            return super().one(name, **params)
        if self.execute(name + "/update", params).rowcount != 1:
            return None
        return self.cursor.execute(_SELECT_TASK, (params["id"],)).fetchone()


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
        self.queries = _sqlite_queries()
        self.applied_on_open: list[str] = []
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
        except LeaseholdError:
            conn.close()
            raise
        self.conn = conn
        if version != len(migration_files(self.dialect)):
            self.applied_on_open = self.migrate()
        return conn

    def _guard(self) -> _Guard:
        """Translate sqlite3 errors into leasehold errors (see :func:`_translate`)."""
        return _Guard(self)

    def now(self) -> float:
        return self.clock()

    def _write(self) -> _Transaction:
        return _Transaction(self, "BEGIN IMMEDIATE", write=True)

    def _read(self) -> _Transaction:
        return _Transaction(self, "BEGIN", write=False)

    def close(self) -> None:
        self.conn.close()

    def clone(self) -> SQLiteStore:
        return SQLiteStore(self.path, clock=self.clock, busy_timeout=self.busy_timeout)

    def _enable_wal(self) -> None:
        """Switch the file to WAL once. The switch needs an exclusive lock and SQLite does not
        run the busy handler for it, so concurrent first uses wait here, up to busy_timeout."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.001
        while True:
            try:
                if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def migrate(self) -> list[str]:
        """Apply pending migrations in one ``BEGIN IMMEDIATE`` transaction (so concurrent first
        uses apply them once). Returns the names applied."""
        conn = self.conn
        applied: list[str] = []
        with self._guard():
            self._enable_wal()
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


class _Guard:
    """``with store._guard():`` sqlite3 errors leave as leasehold errors (no contextlib import:
    this module is on every command's path)."""

    __slots__ = ("store",)

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if isinstance(exc, (sqlite3.Error, OverflowError)):
            raise _translate(self.store, exc) from exc


class _Transaction:
    """``with store._write() as tx``: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), with
    sqlite3 errors translated to store errors. A class, not a generator: it is on every call."""

    __slots__ = ("store", "begin", "write")

    def __init__(self, store: SQLiteStore, begin: str, write: bool) -> None:
        self.store = store
        self.begin = begin
        self.write = write

    def __enter__(self) -> Tx:
        store = self.store
        try:
            store.conn.execute(self.begin)
        except sqlite3.Error as exc:
            raise _translate(store, exc) from exc
        return SQLiteTx(store.conn.cursor(), store.queries, store.clock())

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        conn = self.store.conn
        try:
            conn.execute("COMMIT" if exc_type is None or not self.write else "ROLLBACK")
        except sqlite3.Error as error:
            if exc_type is None:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise _translate(self.store, error) from error
        if isinstance(exc, (sqlite3.Error, OverflowError)):
            raise _translate(self.store, exc) from exc


def _translate(store: SQLiteStore, exc: sqlite3.Error | OverflowError) -> LeaseholdError:
    """The one place sqlite3 errors become leasehold errors. An integer too large to bind
    (sqlite3 raises OverflowError) is bad input, as PostgreSQL's out-of-range error is."""
    text = str(exc)
    if isinstance(exc, OverflowError):
        return InvalidInput(f"the ledger cannot hold a value given: {text}")
    if isinstance(exc, sqlite3.IntegrityError):
        return Refused(f"the ledger refused the change: {text}")
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return StoreBusy(
            f"the SQLite ledger {store.path} stayed locked for {store.busy_timeout:g}s "
            f"({text}); retry later"
        )
    return StoreUnavailable(f"SQLite ledger {store.path}: {text}")


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
