"""The embedded SQLite store: zero set-up, one file, safe across processes on one machine.

- WAL journal (readers never block the writer), ``synchronous=NORMAL``.
- Every write runs in ``BEGIN IMMEDIATE``: the write lock is taken before the read that decides,
  so two processes can never both see a task free and both grant it (the snapshot trap of
  deferred transactions).
- ``busy_timeout``: a writer waits up to this long for the lock, then the operation fails with
  :class:`~leasehold.errors.StoreBusy` (exit 75). There is no fallback path.
- Schema: ordered migrations ``sql/sqlite/migrations/NNNN_name.sql``, each applied once and
  recorded in ``schema_migrations``. A ledger is marked with ``PRAGMA application_id``
  (:data:`APPLICATION_ID`) and ``PRAGMA user_version`` holds the set of migrations applied (bit N
  for migration N), so a connection recognises an up-to-date ledger with one cheap read.
- Nothing is created unless asked (``create=True``: ``leasehold init``, the per-user default
  ledger): a missing file, a directory, a file that is not SQLite, another application's database
  and a ledger with a newer schema than this code knows are refused with
  :class:`~leasehold.errors.ConfigError` (exit 78) and left byte-for-byte untouched. Ledgers made
  before the mark existed are recognised by their ``schema_migrations`` table and marked.
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

from leasehold.errors import (
    ConfigError,
    InvalidInput,
    LeaseholdError,
    Refused,
    StoreBusy,
    StoreUnavailable,
)
from leasehold.store.sql_chain import chain_insert_params, rewrite_chain_inserts
from leasehold.store.sqlbase import SQLStore, Tx, load_queries, migration_files
from leasehold.store.sqlite_files import APPLICATION_ID as _FILE_MARK
from leasehold.store.sqlite_files import refuse_foreign

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

#: Seconds a writer waits for the database lock before StoreBusy.
DEFAULT_BUSY_TIMEOUT = 10.0
#: ``PRAGMA application_id`` of a leasehold ledger ("LHLD"): how a file is recognised as one
#: (the SQLite file format's field for this, offset 68 of the header).
APPLICATION_ID = _FILE_MARK
#: The columns of leasehold's schema_migrations (a table of that name alone proves nothing:
#: Rails and other tools make one too).
_MIGRATION_COLUMNS = {"version", "name", "applied_at"}
_SCHEMA: dict[int, str] | None = None


def known_migrations() -> dict[int, str]:
    """``{version: name}`` of the migrations this code ships (cached)."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = {version: name for version, name, _ in migration_files(SQLiteStore.dialect)}
        if max(_SCHEMA, default=0) > 30:
            raise RuntimeError("migration numbers above 30 do not fit the user_version bit set")
    return _SCHEMA


def schema_mask(versions: Iterable[int]) -> int:
    """The ``user_version`` of a ledger with exactly these migrations applied: bit N set for
    migration N (migrations are numbered 1-30; 0 is never used)."""
    mask = 0
    for version in versions:
        mask |= 1 << version
    return mask


def _uri(path: str, create: bool) -> str:
    """A SQLite URI filename for the absolute ``path``: ``mode=rw`` never creates the file."""
    escaped = path.replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    return "file://" + escaped + ("?mode=rwc" if create else "?mode=rw")


#: Single-row ``UPDATE tasks ... WHERE id = :id ... RETURNING *`` queries that this store runs
#: as the UPDATE followed by a SELECT by primary key: through the sqlite3 module a RETURNING
#: statement costs about 50 µs more than that pair (the claim+release figures in
#: benchmarks/RESULTS.md), and these run on every claim, extend and release.
SPLIT_RETURNING = ("grant_free", "grant_lease", "release_own", "extend_lease", "clear_lease")
_SELECT_TASK = "SELECT * FROM tasks WHERE id = ?"
#: The chained inserts (see :mod:`leasehold.store.sql_chain`): query name -> (table, columns).
_CHAIN_SPECS: dict[str, tuple[str, dict[str, Any]]] = {}


def _sqlite_queries() -> dict[str, str]:
    queries = load_queries(SQLiteStore.dialect)
    if not _CHAIN_SPECS:
        _CHAIN_SPECS.update(rewrite_chain_inserts(queries))
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

    def execute(self, name: str, params: dict[str, Any]) -> Any:
        spec = _CHAIN_SPECS.get(name)
        if spec is not None:
            params.setdefault("now", self.now)
            chain_insert_params(self.cursor, spec[0], spec[1], params)
        return super().execute(name, params)

    def one(self, name: str, **params: Any) -> Any:
        if name not in SPLIT_RETURNING:
            return super().one(name, **params)
        if self.execute(name + "/update", params).rowcount != 1:
            return None
        return self.cursor.execute(_SELECT_TASK, (params["id"],)).fetchone()


class SQLiteStore(SQLStore):
    """The store on one SQLite file.

    ``path``: the database file. ``create``: make the file (and its folder) and the schema if
    it does not exist yet; otherwise a missing file is a :class:`ConfigError`. ``clock``:
    returns UTC seconds since the epoch (default ``time.time``; tests inject one).
    ``busy_timeout``: seconds. Raises :class:`ConfigError` (exit 78) if the file is missing (and
    not ``create``), a directory, unreadable, not SQLite, not a leasehold ledger, or a ledger
    with a newer schema than this code knows; nothing is written to such a file.
    """

    dialect = "sqlite"

    def __init__(self, path: str, *, clock: Callable[[], float] | None = None,
                 busy_timeout: float | None = None, create: bool = False) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self.clock = clock or time.time
        self.busy_timeout = DEFAULT_BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        self.queries = _sqlite_queries()
        self.applied_on_open: list[str] = []
        self.created = False
        self.conn = self._connect(create)

    def _connect(self, create: bool) -> sqlite3.Connection:
        if create:
            folder = os.path.dirname(self.path)
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the folder {folder} of the SQLite ledger "
                                  f"{self.path}: {exc.strerror}") from None
        # Another application's database is refused from its bytes, before any connection:
        # closing a read-write one would checkpoint its pending -wal into it. Only before this
        # process has opened the file as a ledger: closing ANY descriptor of the file releases
        # every POSIX lock the process holds on it, the locks by which its open connections
        # tell other processes they are there (a closing connection that believed itself the
        # last would checkpoint and delete the -wal under them: their later commits lost to
        # every new reader).
        key = _file_key(self.path)
        if key is None or key not in _LEDGER_FILES:
            refuse_foreign(self.path, _not_a_ledger)
        try:
            conn = sqlite3.connect(_uri(self.path, create), uri=True, timeout=self.busy_timeout,
                                   isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._open_error(exc) from exc
        conn.row_factory = sqlite3.Row
        self.conn = conn
        #: The identity of the file this store opened, checked in each transaction.
        self.file_key = _file_key(self.path)
        try:
            with self._guard():
                conn.execute("PRAGMA synchronous=NORMAL")
                # Two header reads; a SELECT over the pragma functions would load the schema.
                app_id = conn.execute("PRAGMA application_id").fetchone()[0]
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            if app_id != APPLICATION_ID or version != schema_mask(known_migrations()):
                self.applied_on_open = self._reconcile(app_id, version, create)
        except BaseException:
            conn.close()
            raise
        key = key or self.file_key
        if key is not None:
            _LEDGER_FILES.add(key)
        return conn

    def _open_error(self, exc: sqlite3.Error) -> ConfigError | LeaseholdError:
        """Why the file could not be opened, in one line (off the hot path)."""
        path = self.path
        if os.path.isdir(path):
            return ConfigError(f"{path} is a directory, not a leasehold ledger: name the ledger "
                               f"file (e.g. {os.path.join(path, 'ledger.db')})")
        if not os.path.exists(path):
            return ConfigError(
                f"no leasehold ledger at {path}: the file does not exist (leasehold never "
                f"creates one silently). Create it with `leasehold init --db {path}`, or point "
                "--db / LEASEHOLD_DB / db in leasehold.toml at the existing ledger")
        if not os.access(path, os.R_OK):
            return ConfigError(f"cannot open the SQLite ledger {path}: permission denied")
        return _translate(self, exc)

    def _reconcile(self, app_id: int, version: int, create: bool) -> list[str]:
        """The slow path of opening: the file is not an up-to-date ledger. Recognise it (a new
        empty file, a ledger made by an earlier version, a ledger needing migrations) and
        migrate, or refuse it untouched."""
        path = self.path
        conn = self.conn
        known = known_migrations()
        with self._guard():
            if app_id not in (0, APPLICATION_ID):
                raise ConfigError(
                    f"{path} is not a leasehold ledger (SQLite application_id {app_id:#x} belongs "
                    "to another application); it was left untouched")
            tables = [row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            if app_id == 0 and not tables:
                if not create:
                    raise ConfigError(
                        f"{path} is an empty file, not a leasehold ledger: create the ledger with "
                        f"`leasehold init --db {path}`")
                self.created = True
                return self.migrate()
            columns = {row[1] for row in conn.execute("PRAGMA table_info(schema_migrations)")}
            if not _MIGRATION_COLUMNS <= columns:
                shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
                raise ConfigError(
                    f"{path} is not a leasehold ledger (a SQLite database with tables {shown}); "
                    "it was left untouched: point --db / LEASEHOLD_DB / db in leasehold.toml at a "
                    "ledger, or create one elsewhere with `leasehold init --db PATH`")
            rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
            if app_id == 0 and (1, known.get(1)) not in {(v, n) for v, n in rows}:
                # every ledger, however old, has its first migration recorded (migrations are
                # applied in the transaction that creates schema_migrations): without it, the
                # table is another tool's with the same columns
                raise ConfigError(
                    f"{path} is not a leasehold ledger (its schema_migrations table does not "
                    f"record leasehold's first migration); it was left untouched: point --db / "
                    "LEASEHOLD_DB / db in leasehold.toml at a ledger, or create one elsewhere "
                    "with `leasehold init --db PATH`")
        newer = sorted(f"{v:04d}_{n}" for v, n in rows if known.get(v) != n)
        # user_version is the set of migrations (bit N for migration N) in a marked ledger, or
        # their count in one made (or since opened) by a version before the mark: a count up to
        # the number of migrations known is such a version's, a larger value must be a set of
        # known migrations. schema_migrations is the record either way.
        beyond = version > len(known) and (app_id == 0 or version & ~schema_mask(known))
        if newer or beyond:
            what = ("migration(s) " + ", ".join(newer)) if newer else f"user_version {version}"
            raise ConfigError(
                f"the ledger {path} has a newer schema than this leasehold knows ({what}): "
                "upgrade leasehold; nothing was changed")
        return self.migrate()

    def _guard(self) -> _Guard:
        """Translate sqlite3 errors into leasehold errors (see :func:`_translate`)."""
        return _Guard(self)

    def now(self) -> float:
        return self.clock()

    def _write(self, op: str | None = None) -> _Transaction:
        """``BEGIN IMMEDIATE``: the write lock is held before the clock is read (``op`` is
        recorded by the caller; a local COMMIT either returns or fails having applied nothing)."""
        return _Transaction(self, "BEGIN IMMEDIATE", write=True, op=op)

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
        uses apply them once), and mark the file as a ledger (``application_id``, and the set of
        migrations in ``user_version``). Returns the names applied. Raises
        :class:`ConfigError`, changing nothing, if the ledger has a migration this code does
        not know."""
        conn = self.conn
        applied: list[str] = []
        known = known_migrations()
        with self._guard():
            self._enable_wal()
            conn.execute("BEGIN IMMEDIATE")
            try:
                tables = {row[0] for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                if tables and "schema_migrations" not in tables:  # written since it was checked
                    raise ConfigError(f"{self.path} is not a leasehold ledger (another program "
                                      "wrote tables into it); it was left untouched")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
                )
                done = {row[0]: row[1] for row in
                        conn.execute("SELECT version, name FROM schema_migrations")}
                newer = sorted(f"{v:04d}_{n}" for v, n in done.items() if known.get(v) != n)
                if newer:
                    raise ConfigError(
                        f"the ledger {self.path} has a newer schema than this leasehold knows "
                        f"(migration(s) {', '.join(newer)}): upgrade leasehold; nothing was changed")
                for version, name, path in migration_files(self.dialect):
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
                    if version == 9:  # before any later migration checks checkpoints (0013)
                        self._genesis(SQLiteTx(conn.cursor(), self.queries, self.clock()))
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {schema_mask(known)}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            # Put the mark into the main file's header at once (it lives in the -wal until a
            # checkpoint): another process then recognises the ledger by the cheap header test
            # instead of examining it as a possibly foreign WAL database. PASSIVE: never waits.
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                pass
        return applied


    # -- chains (see leasehold.store.sql_chain) ------------------------------------------------
    def _audit_tx(self) -> _Transaction:
        return self._read()

    def _stream(self, tx: Tx, sql: str, params: dict[str, Any]) -> Any:
        cursor = self.conn.cursor()
        try:
            yield from cursor.execute(sql, params)
        finally:
            cursor.close()

    def triggers(self, tx: Tx) -> dict[str, tuple[str, bool]]:
        """SQLite cannot disable a trigger, but a trigger of the same name can be replaced by
        one that never fires: a guard whose SQL differs from its definition counts as disabled
        (whitespace aside)."""
        from leasehold.store.sql_chain import guard_definitions

        def norm(text: str) -> str:
            return " ".join(text.split()).rstrip(";").rstrip()

        guards = guard_definitions("sqlite")
        rows = tx.cursor.execute(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
        out = {}
        for row in rows:
            guard = guards.get(row["name"])
            same = guard is None or (guard[0] == row["tbl_name"]
                                     and norm(guard[1]) == norm(row["sql"] or ""))
            out[row["name"]] = (row["tbl_name"], same)
        return out

    def _restore_guard(self, tx: Tx, name: str, ddl: str, present: bool) -> None:
        if present:  # altered: replace it by its definition
            tx.cursor.execute(f'DROP TRIGGER "{name}"')
        for statement in split_statements(ddl):
            tx.cursor.execute(statement)


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

    __slots__ = ("store", "begin", "write", "op")

    def __init__(self, store: SQLiteStore, begin: str, write: bool, op: str | None = None) -> None:
        self.store = store
        self.begin = begin
        self.write = write
        self.op = op

    def __enter__(self) -> Tx:
        store = self.store
        try:
            store.conn.execute(self.begin)
        except sqlite3.Error as exc:
            raise _translate(store, exc) from exc
        key = _file_key(store.path)
        if key != store.file_key and store.file_key is None:
            store.file_key = key  # created by this connection after it was opened
        elif key != store.file_key:
            # The path names another file now (moved, replaced, removed while open): this
            # connection would read and write the old one, which no other process sees.
            store.conn.execute("ROLLBACK")
            raise ConfigError(
                f"the SQLite ledger {store.path} was moved, replaced or removed while this "
                "process had it open; nothing was applied. Stop every program using it before "
                "moving or replacing a ledger file, then start them again")
        return SQLiteTx(store.conn.cursor(), store.queries, store.clock(), self.op)

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


#: ``(st_dev, st_ino)`` of the files this process has opened as ledgers: never probed again
#: (see :meth:`SQLiteStore._connect`).
_LEDGER_FILES: set[tuple[int, int]] = set()


def _file_key(path: str) -> tuple[int, int] | None:
    """The identity of the file at ``path`` (a ``stat``, which opens no descriptor)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _not_a_ledger(copy: str) -> str | None:
    """None when the database at ``copy`` (a private copy of an unmarked database with pending
    writes) is a ledger made before the mark existed (leasehold's ``schema_migrations`` with its
    first migration recorded) or has no table yet; else why it is not a ledger."""
    try:
        conn = sqlite3.connect(copy, isolation_level=None)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        if not tables:
            # nothing committed yet (a ledger being created by another process, whose first
            # transaction is still open): the caller's checks under the write lock decide
            return None
        columns = {row[1] for row in conn.execute("PRAGMA table_info(schema_migrations)")}
        first = known_migrations().get(1)
        if _MIGRATION_COLUMNS <= columns and conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = 1 AND name = ?",
                (first,)).fetchone():
            return None
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        return f"a SQLite database with tables {shown}"
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        conn.close()


def _translate(store: SQLiteStore, exc: sqlite3.Error | OverflowError) -> LeaseholdError:
    """The one place sqlite3 errors become leasehold errors. An integer too large to bind
    (sqlite3 raises OverflowError) is bad input, as PostgreSQL's out-of-range error is."""
    text = str(exc)
    if isinstance(exc, OverflowError):
        return InvalidInput(f"the ledger cannot hold a value given: {text}")
    code = getattr(exc, "sqlite_errorname", "") or ""
    if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return ConfigError(f"{store.path} is not a usable SQLite ledger ({text}); it was left "
                           "untouched: point --db / LEASEHOLD_DB / db in leasehold.toml at a ledger")
    if code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return ConfigError(f"cannot use the SQLite ledger {store.path}: {text} (check the "
                           "permissions of the file and its folder)")
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
