"""The PostgreSQL store: one shared ledger for a fleet that spans machines.

- psycopg 3, one connection per store object (a :class:`~leasehold.ledger.Ledger` reuses it for
  every call; :meth:`PostgresStore.clone` opens another for a heartbeat thread). A lost connection
  is dropped and the next call reconnects.
- Time is the SERVER's clock, never the client's, read AFTER the row locks a decision depends on:
  ``lock_task`` returns ``clock_timestamp()`` read once the row is locked, and a transaction binds
  that instant as ``:now`` for its decision and its timestamps; the single-statement paths
  (``claim`` of a free task, ``next``, ``release``, ``done``) read it inside the statement after
  their lock. A claim that waited behind another transaction's row lock never returns a lease
  that is already expired. Two clients with skewed clocks agree on who holds what.
- Lost acknowledgements: a mutating call carries an operation id recorded in the same
  transaction as its effect. When the connection is lost after COMMIT (or the single statement)
  was sent, the store reconnects, waits until the old backend is gone, and looks the id up:
  recorded -> the call applied (:class:`~leasehold.errors.OpRecorded`, replayed by the Ledger);
  absent -> it did not (``StoreUnavailable``, 75); the ledger unreachable ->
  :class:`~leasehold.errors.OutcomeUnknown` (76) carrying the id.
- Race-freedom by row locks: ``lock_task`` is ``SELECT ... FOR UPDATE``; ``next`` is one
  statement that picks the ready tasks ``FOR UPDATE SKIP LOCKED``, grants them and appends their
  events. Two workers never get the same task; a task whose blocker is not done is never handed
  out.
- Driver errors are translated once, here: a lost connection, a terminated backend, a server
  restart or shutdown raise :class:`~leasehold.errors.StoreUnavailable`; ``lock_timeout``
  (the ``busy_timeout``), statement timeouts, serialization failures and deadlocks raise
  :class:`~leasehold.errors.StoreBusy` (both exit 75); a value a column cannot hold (a number
  out of range, NUL in text) raises :class:`~leasehold.errors.InvalidInput` (exit 2). The
  transaction is rolled back by the server: a failed call never leaves a half-applied change.
- Schema: ordered migrations ``sql/postgres/migrations/NNNN_name.sql`` recorded in
  ``schema_migrations``; concurrent first uses serialise on a transaction-scoped advisory lock.
  The ledger lives in the first schema of the connection's ``search_path``
  (``?options=-csearch_path%3Dmyschema`` in the URL picks another).
- Nothing is created unless asked (``create=True``: ``leasehold init``): a URL without a
  database name, an unknown database, role or URL parameter, a ``search_path`` naming no
  existing schema, a database without a ledger and a ledger with a newer schema than this code
  knows raise :class:`~leasehold.errors.ConfigError` (exit 78), which retrying cannot fix.
  Messages never show the URL's password.
"""

from __future__ import annotations

import os
import re
import select
from contextlib import contextmanager

import psycopg
import psycopg.sql
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from leasehold.errors import (
    ConfigError,
    InvalidInput,
    LeaseholdError,
    OpRecorded,
    OutcomeUnknown,
    Refused,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from leasehold.model import Task
from leasehold.store.sqlbase import (
    SQL_DIR,
    SQLStore,
    Tx,
    decode_operation,
    encode_details,
    load_queries,
    migration_files,
)
from leasehold.urls import redact, scrub

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

#: Seconds a statement waits for a row lock before StoreBusy (``lock_timeout``).
DEFAULT_BUSY_TIMEOUT = 10.0
#: Seconds to wait for the server to accept a connection.
CONNECT_TIMEOUT = 10
#: Seconds a leasehold session may sit idle inside a transaction before the server ends it
#: (``idle_in_transaction_session_timeout``), releasing the row locks of a vanished client;
#: set only where nothing else set it (URL ``options``, PGOPTIONS, ALTER ROLE/DATABASE, server).
IDLE_IN_TRANSACTION_TIMEOUT = 60

_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|(?<![:\w]):([A-Za-z_]\w*)")
_SERVER_NOW = "SELECT extract(epoch FROM clock_timestamp())::float8 AS now"

#: SQLSTATE classes / codes that mean "the store is busy: retry".
_BUSY = (pg_errors.LockNotAvailable, pg_errors.QueryCanceled, pg_errors.SerializationFailure,
         pg_errors.DeadlockDetected)
#: SQLSTATEs that mean "the configuration is wrong": retrying cannot help.
_CONFIG = (pg_errors.InsufficientPrivilege, pg_errors.InvalidSchemaName, pg_errors.UndefinedTable,
           pg_errors.InvalidCatalogName, pg_errors.InvalidAuthorizationSpecification)
#: Connection failures (libpq reports no SQLSTATE for them) that retrying cannot fix.
_CONFIG_CONNECT = ("does not exist", "password authentication failed", "no pg_hba.conf entry",
                   "invalid port number", "invalid integer value", "invalid value for parameter",
                   "invalid sslmode", "unrecognized configuration parameter",
                   "is not permitted to log in", "permission denied", "invalid connection option",
                   "invalid URI", "server does not support SSL", "root certificate file")


def rewrite_placeholders(sql: str) -> str:
    """``:name`` -> ``%(name)s`` for psycopg; ``%`` -> ``%%``; ``::casts`` and quoted strings
    are left alone."""
    sql = sql.replace("%", "%%")

    def sub(match: re.Match[str]) -> str:
        return match.group(0) if match.group(1) is None else f"%({match.group(1)})s"

    return _PLACEHOLDER.sub(sub, sql)


#: The least time, in seconds, the store spends finding out whether an operation whose
#: acknowledgement was lost applied (it tries for ``busy_timeout``, at least this long; beyond
#: it: OutcomeUnknown).
RESOLVE_MIN = 1.0


class _Call:
    """One guarded call: its operation id and, once a statement that may commit was sent, the
    backend pid it was sent to (the lost-acknowledgement resolution needs both)."""

    __slots__ = ("op", "pid")

    def __init__(self, op: str | None) -> None:
        self.op = op
        self.pid: int | None = None


class PgTx(Tx):
    """A transaction whose ``now`` (the server's clock) is read after the locks: ``lock_task``
    carries the instant read once its row is locked; otherwise ``now`` is read on first use, and
    :meth:`after_locks` makes the next use read it again."""

    __slots__ = ("_now",)

    def __init__(self, cursor: Any, queries: dict[str, str], now: float | None,
                 op: str | None = None) -> None:
        self.cursor = cursor
        self.queries = queries
        self._now = now
        self.op = op

    def one(self, name: str, **params: Any) -> Any:
        row = self.execute(name, params).fetchone()
        if name == "lock_task" and row is not None:
            self._now = float(row["now"])
        return row

    def after_locks(self) -> None:
        self._now = None

    @property
    def now(self) -> float:  # type: ignore[override]
        if self._now is None:
            row = self.cursor.execute(_SERVER_NOW).fetchone()
            self._now = float(row["now"])
        return self._now

    def execute(self, name: str, params: dict[str, Any]) -> Any:
        sql = self.queries[name]
        if "now" not in params and "%(now)s" in sql:
            params["now"] = self.now
        self.cursor.execute(sql, params)
        return self.cursor

    def stream(self, name: str, **params: Any) -> Any:
        """Rows one at a time from the server (psycopg's single-row mode), not a whole result."""
        sql = self.queries[name]
        if "now" not in params and "%(now)s" in sql:
            params["now"] = self.now
        return self.cursor.stream(sql, params)


class PostgresStore(SQLStore):
    """The store on a PostgreSQL database.

    ``url``: a libpq URL naming its database, ``postgresql://user@host:port/dbname?options=...``.
    ``busy_timeout``: seconds a statement waits for a row lock (``lock_timeout``) before
    :class:`StoreBusy`. ``create``: apply the schema if the database holds no ledger yet (the
    database itself must exist). Raises :class:`StoreUnavailable` if the server cannot be
    reached, :class:`ConfigError` for a permanent problem (see the module docstring).
    """

    dialect = "postgres"
    can_listen = True

    def __init__(self, url: str, *, busy_timeout: float | None = None, create: bool = False) -> None:
        self.url = url
        self.busy_timeout = DEFAULT_BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        self.queries = load_queries(self.dialect, rewrite_placeholders)
        self.conn: psycopg.Connection[Any] | None = None
        self._checked = False
        self._create_ledger = create
        self.created = False
        self.applied_on_open: list[str] = []
        try:
            info = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ConfigError(self._scrub(f"bad PostgreSQL URL: {_first_line(exc)}")) from None
        if not info.get("dbname"):
            raise ConfigError(
                f"the PostgreSQL URL {redact(url)} names no database: add it "
                "(postgresql://user@host:port/DBNAME); leasehold never uses a default database")
        #: Calls whose acknowledgement was lost and that a lookup found applied (a counter).
        self.lost_acks_resolved = 0
        self._connect()

    def _scrub(self, text: str) -> str:
        """``text`` without the URL's password (messages may quote the URL)."""
        return scrub(text, self.url)

    # -- connection and error translation ----------------------------------------------------
    def _where(self) -> str:
        """``host:port/db`` for messages (never the password)."""
        try:
            info = psycopg.conninfo.conninfo_to_dict(self.url)
        except psycopg.Error:
            return "the configured server"
        host = info.get("host") or "localhost"
        port = info.get("port") or "5432"
        return f"{host}:{port}/{info.get('dbname') or info.get('user') or ''}"

    def _connect(self) -> psycopg.Connection[Any]:
        kwargs: dict[str, Any] = {}
        if "connect_timeout" not in self.url:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT
        try:
            conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                   application_name="leasehold", **kwargs)
        except psycopg.Error as exc:
            reason = _first_line(exc)
            if isinstance(exc, psycopg.ProgrammingError) or any(
                    marker in reason for marker in _CONFIG_CONNECT):
                raise ConfigError(self._scrub(
                    f"cannot use the PostgreSQL ledger at {self._where()}: {reason} (fix the URL "
                    "or the server's configuration; retrying will not help)")) from exc
            raise StoreUnavailable(self._scrub(
                f"cannot reach the PostgreSQL ledger at {self._where()}: {reason}; retry later"
            )) from exc
        self.conn = conn
        try:
            with self._guard():
                conn.execute(f"SET lock_timeout = {int(self.busy_timeout * 1000)}")
                # Every statement here reads a handful of rows through an index: a parallel
                # worker's start-up (~10 ms) would cost more than the query (on a big table the
                # planner offers one for the ready queue's expired-lease walk). JIT compilation
                # likewise (hundreds of ms): a plan's cost estimate summed over branches that
                # never run (feed_head_claimed_done) can pass jit_above_cost.
                # A client that vanished mid-transaction (a network partition, a half-open
                # connection) would otherwise hold its row locks until the server's TCP timeout
                # (hours): every claim of that task would answer 75 meanwhile. leasehold's
                # transactions last milliseconds; the server ends one left idle for
                # IDLE_IN_TRANSACTION_TIMEOUT seconds, which rolls it back. A value set anywhere
                # else (URL options, PGOPTIONS, ALTER ROLE / DATABASE, the server) is kept.
                conn.execute(
                    "SET max_parallel_workers_per_gather = 0; SET jit = off; "
                    "SELECT set_config('idle_in_transaction_session_timeout', "
                    f"'{int(IDLE_IN_TRANSACTION_TIMEOUT * 1000)}', false) "
                    "WHERE current_setting('idle_in_transaction_session_timeout') = '0'")
                if not self._checked:
                    self._check_schema(conn)
        except LeaseholdError:
            self._drop()
            raise
        return conn

    def _check_schema(self, conn: psycopg.Connection[Any]) -> None:
        """Recognise the ledger (or create it, with ``create``); refuse anything else."""
        row = conn.execute("SELECT current_schema() AS schema, "
                           "to_regclass('schema_migrations') IS NOT NULL AS ok").fetchone()
        assert row is not None
        if row["schema"] is None:
            shown = conn.execute("SHOW search_path").fetchone()
            raise ConfigError(self._scrub(
                f"the PostgreSQL ledger at {self._where()}: no schema of the search_path exists "
                f"({shown['search_path'] if shown else '?'}); create the schema "
                "(CREATE SCHEMA name) or fix options=-csearch_path in the URL"))
        if not row["ok"]:
            if not self._create_ledger:
                raise ConfigError(self._scrub(
                    f"no leasehold ledger in the PostgreSQL database at {self._where()} (schema "
                    f"{row['schema']}): create it with `leasehold init --db {redact(self.url)}`"))
            self.created = True
            self.applied_on_open = self.migrate()
            return
        done = self._applied(conn)
        if set(done) != set(self._known()):
            self.applied_on_open = self.migrate()
        self._checked = True

    def _known(self) -> dict[int, str]:
        return {version: name for version, name, _ in migration_files(self.dialect)}

    def _applied(self, conn: psycopg.Connection[Any]) -> dict[int, str]:
        """The migrations recorded in this ledger; :class:`ConfigError` if a table of that
        name is not leasehold's, or names a migration this code does not know."""
        try:
            rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
        except (pg_errors.UndefinedColumn, pg_errors.DatatypeMismatch) as exc:
            raise ConfigError(self._scrub(
                f"the PostgreSQL database at {self._where()} is not a leasehold ledger (its "
                f"schema_migrations table is another tool's: {_first_line(exc)}); it was left "
                "untouched: point the URL at another database or schema")) from exc
        done = {row["version"]: row["name"] for row in rows}
        known = self._known()
        newer = sorted(f"{v:04d}_{n}" for v, n in done.items() if known.get(v) != n)
        if newer:
            raise ConfigError(self._scrub(
                f"the PostgreSQL ledger at {self._where()} has a newer schema than this leasehold "
                f"knows (migration(s) {', '.join(newer)}): upgrade leasehold; nothing was changed"))
        return done

    def _conn(self) -> psycopg.Connection[Any]:
        """The live connection, reconnecting if the last one was lost. An idle connection
        with bytes waiting was ended by the server (a terminated backend, a restart: it sends
        its FATAL message and closes), so it is replaced before use rather than failing the
        call."""
        conn = self.conn
        if conn is not None and not conn.closed:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                readable, _, _ = select.select([conn.fileno()], [], [], 0)
                if readable:
                    self._drop()
                    conn = None
        else:
            conn = None
        if conn is None:
            conn = self._connect()
        return conn

    def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    @contextmanager
    def _guard(self, op: str | None = None) -> Iterator[_Call]:
        """Translate psycopg errors into store errors, once, here. ``op``: the operation id of
        a mutating call; a connection lost after the call's commit was sent (``call.pid`` set)
        is resolved by looking it up (:meth:`_resolve`)."""
        call = _Call(op)
        try:
            yield call
        except _BUSY as exc:
            raise StoreBusy(self._scrub(
                f"the PostgreSQL ledger at {self._where()} stayed busy ({_first_line(exc)}); "
                "retry later"
            )) from exc
        except _CONFIG as exc:
            raise ConfigError(self._scrub(
                f"cannot use the PostgreSQL ledger at {self._where()}: {_first_line(exc)} "
                "(fix the configuration; retrying will not help)")) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # Connection lost, backend terminated, server shut down or restarting. This
            # connection is unusable: drop it so the next call reconnects. Before the commit was
            # sent, the server rolls back whatever was in flight; after, the id tells.
            self._drop()
            if call.op is not None and call.pid is not None:
                self._resolve(call, exc)
            if call.pid is not None:
                # A write without an operation id (namespace definitions, abandoning a
                # reservation, feed imports, audit events, tokens) lost after its commit was
                # sent: nothing to look up, so whether it applied is unknown; "not applied"
                # could be a lie.
                raise OutcomeUnknown(self._scrub(
                    f"lost the PostgreSQL ledger at {self._where()} after sending the commit "
                    f"({_first_line(exc)}) and could not find out whether it applied; check "
                    "before retrying"
                )) from exc
            raise StoreUnavailable(self._scrub(
                f"lost the PostgreSQL ledger at {self._where()} ({_first_line(exc)}); "
                "the operation was not applied — retry later"
            )) from exc
        except psycopg.IntegrityError as exc:
            if call.op is not None and exc.diag.constraint_name == "operations_pkey":
                raise OpRecorded(call.op) from exc
            raise Refused(f"the ledger refused the change: {_first_line(exc)}") from exc
        except psycopg.DataError as exc:
            # A value the column cannot hold (a number out of range, NUL in text): bad input,
            # not a store outage.
            raise InvalidInput(f"the ledger cannot hold a value given: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StoreUnavailable(self._scrub(
                f"PostgreSQL ledger at {self._where()}: {_first_line(exc)}"
            )) from exc

    @contextmanager
    def _tx(self, write: bool, op: str | None = None) -> Iterator[Tx]:
        with self._guard(op) as call:
            conn = self._conn()
            cur = conn.cursor()
            if not write:
                # Reads are single statements in autocommit: one round trip each.
                yield PgTx(cur, self.queries, None)
                return
            cur.execute("BEGIN")
            try:
                yield PgTx(cur, self.queries, None, op)
            except BaseException:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.UNKNOWN:
                    try:
                        conn.execute("ROLLBACK")
                    except psycopg.Error:
                        self._drop()
                raise
            call.pid = conn.info.backend_pid
            conn.execute("COMMIT")

    def _write(self, op: str | None = None) -> Any:
        return self._tx(True, op)

    def _resolve(self, call: _Call, exc: BaseException) -> None:
        """The connection was lost after ``call``'s commit was sent: find out whether operation
        ``call.op`` applied. Reconnect, wait until the old backend (``call.pid``) has ended
        (a backend that still runs could yet commit), then look the id up.

        Raises :class:`OpRecorded` (it applied: the record), :class:`StoreUnavailable` (it did
        not: retrying is safe) or :class:`OutcomeUnknown` (the ledger could not be asked within
        ``busy_timeout`` seconds, at least :data:`RESOLVE_MIN`)."""
        import time

        op, pid = call.op, call.pid
        assert op is not None
        deadline = time.monotonic() + max(self.busy_timeout, RESOLVE_MIN)
        why = _first_line(exc)
        while True:
            record: dict[str, Any] | None = None
            settled = False
            try:
                with self._guard():
                    conn = self._conn()
                    alive = conn.execute(
                        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity "
                        "WHERE pid = %s AND pid <> pg_backend_pid()) AS alive",
                        (pid,)).fetchone()
                    if alive is not None and not alive["alive"]:
                        # The old backend has ended: its transaction committed or never will.
                        row = conn.execute(self.queries["get_operation"], {"op": str(op)}).fetchone()
                        record = decode_operation(row) if row else None
                        settled = True
            except StoreError as error:
                why = error.message
            if settled:
                if record is not None:
                    self.lost_acks_resolved += 1
                    raise OpRecorded(op, record) from exc
                raise StoreUnavailable(
                    f"lost the PostgreSQL ledger at {self._where()} ({_first_line(exc)}); "
                    f"operation {op} was checked and not applied — retry later"
                ) from exc
            if time.monotonic() >= deadline:
                raise OutcomeUnknown(
                    f"lost the PostgreSQL ledger at {self._where()} after sending the commit of "
                    f"operation {op} and could not find out whether it applied ({why}); look it "
                    f"up with 'leasehold op {op}' or retry with --op-id {op}",
                    op_id=op,
                ) from exc
            time.sleep(0.05)

    def _read(self) -> Any:
        return self._tx(False)

    def now(self) -> float:
        """The server's clock: UTC seconds since the epoch."""
        with self._guard():
            row = self._conn().execute(_SERVER_NOW).fetchone()
            assert row is not None
            return float(row["now"])

    def feed_queue_head(self, page: int, cap: int = 2000) -> tuple[bool, float, list[dict[str, Any]],
                                                                   list[dict[str, Any]]]:
        """:meth:`SQLStore.feed_queue_head` in one round trip: its three statements sent as a
        pipeline inside one transaction, whose timestamp is the clock all three use."""
        with self._guard():
            conn = self._conn()
            with conn.pipeline(), conn.transaction():
                state = conn.execute(self.queries["feed_head_state"])
                claimed = conn.execute(self.queries["feed_head_claimed_done"], {"cap": cap})
                opened = conn.execute(self.queries["feed_queue_open"],
                                      {"after_key": "", "after_item": "", "limit": page})
            row = state.fetchone()
            assert row is not None
            if not row["rebuilt"]:
                return False, 0.0, [], []
            return (True, float(row["now"]), [dict(r) for r in claimed.fetchall()],
                    [dict(r) for r in opened.fetchall()])

    def _limit(self, limit: int) -> int | None:
        return None if limit < 0 else limit

    def close(self) -> None:
        self._drop()

    def clone(self) -> PostgresStore:
        return PostgresStore(self.url, busy_timeout=self.busy_timeout)

    # -- notifications (waits and watches across server processes) ----------------------------
    def notify(self, channel: str, payload: str = "") -> None:
        """``pg_notify(channel, payload)``: wakes every connection listening on ``channel``
        (delivered at once; the caller's change is already committed)."""
        with self._guard():
            self._conn().execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def listen(self, channel: str, on_notify: Callable[[str], None], stop: Any,
               poll: float = 0.5) -> None:
        """Block, calling ``on_notify(payload)`` for every notification on ``channel`` on a
        dedicated connection, until ``stop`` (a :class:`threading.Event`) is set. A lost
        connection is reopened (``on_notify("")`` then, since notifications may have been
        missed)."""
        while not stop.is_set():
            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                       application_name="leasehold-listen")
            except psycopg.Error:
                stop.wait(1.0)
                continue
            try:
                conn.execute(f"LISTEN {psycopg.sql.Identifier(channel).as_string(conn)}")
                on_notify("")
                while not stop.is_set():
                    for note in conn.notifies(timeout=poll):
                        on_notify(note.payload)
            except psycopg.Error:
                on_notify("")
                stop.wait(0.2)
            finally:
                try:
                    conn.close()
                except Exception:
                    pass

    def backend_pid(self) -> int:
        """The server process id of this store's connection (for operators and tests)."""
        return self._conn().info.backend_pid

    # -- schema ------------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Apply pending migrations in one transaction under an advisory lock (concurrent first
        uses apply them once). Returns the names applied."""
        applied: list[str] = []
        with self._guard():
            conn = self._conn()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('leasehold.migrate:' || "
                             "coalesce(current_schema(), '')))")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                    "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                )
                done = self._applied(conn)
                for version, name, path in migration_files(self.dialect):
                    if version in done:
                        continue
                    with open(path, encoding="utf-8") as fh:
                        conn.execute(fh.read())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) "
                        "VALUES (%s, %s, extract(epoch FROM clock_timestamp()))",
                        (version, name),
                    )
                    applied.append(f"{version:04d}_{name}")
                    if version == 9:  # before 0013 installs the checkpoint check (no genesis)
                        self._genesis(PgTx(conn.cursor(), self.queries, None))
        self._checked = True
        return applied

    # -- least privilege ---------------------------------------------------------------------
    #: Tables whose rows the role may only read and append.
    APPEND_ONLY = ("events", "feed_posts", "namespaces", "chain_checkpoints", "operations")

    def grant_role(self, role: str) -> list[str]:
        """Give the existing ``role`` every ledger operation on this ledger's schema without the
        power to rewrite history (run as the tables' owner; see README "Least privilege"):
        SELECT on every table; INSERT only on the append-only tables; on ``reservations``
        INSERT and UPDATE of the abandonment columns only; on ``tasks`` INSERT and UPDATE,
        checked at commit by the ``tasks_explained`` trigger installed here; INSERT only on
        ``lease_shares``, each share checked at commit against its ``shared`` event
        (``lease_shares_explained``, migration 0013); read-only ``schema_migrations`` and
        ``tokens`` (the bearer tokens of ``leasehold serve``: only the owner creates or revokes
        them); read-only ``feed_items`` and ``feed_state`` (the feed's reduced state, written
        through the SECURITY DEFINER functions of migration 0013, which only the owner and the
        roles granted here may execute); full DML on the other (state) tables. Returns the
        statements run.

        Raises InvalidInput for an unknown role or one that owns the tables or is a superuser
        (ownership carries the power to drop triggers: it cannot be restricted)."""
        from psycopg import sql

        done: list[str] = []
        with self._write() as tx:
            cur = tx.cursor
            found = cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %(r)s",
                                {"r": role}).fetchone()
            if found is None:
                raise InvalidInput(f"role {role!r} does not exist (CREATE ROLE {role} LOGIN first)")
            owner = cur.execute("SELECT pg_has_role(%(r)s, tableowner, 'USAGE') AS owns "
                                "FROM pg_tables WHERE schemaname = current_schema() "
                                "AND tablename = 'events'", {"r": role}).fetchone()
            if found["rolsuper"] or (owner and owner["owns"]):
                raise InvalidInput(f"role {role!r} is a superuser or (a member of) the tables' "
                                   "owner: it can always drop triggers; grant to another role")
            schema = cur.execute("SELECT current_schema() AS s").fetchone()["s"]
            path = os.path.join(SQL_DIR, "postgres", "least_privilege.ddl")
            with open(path, encoding="utf-8") as fh:
                cur.execute(fh.read())
            done.append("install trigger tasks_explained on tasks")
            r, s = sql.Identifier(role), sql.Identifier(schema)
            statements = [sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r)]
            tables = [row["tablename"] for row in cur.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename").fetchall()]
            for table in tables:
                t = sql.Identifier(schema, table)
                statements.append(sql.SQL("REVOKE ALL ON {} FROM {}").format(t, r))
                if table == "namespaces":
                    # UPDATE on one column only for SELECT ... FOR UPDATE (the reservers' row
                    # lock): every UPDATE is refused by namespaces_immutable, which the role
                    # cannot disable or drop.
                    privileges = "SELECT, INSERT, UPDATE (prefix)"
                elif table in self.APPEND_ONLY:
                    privileges = "SELECT, INSERT"
                elif table == "reservations":
                    privileges = ("SELECT, INSERT, UPDATE (status, abandoned_at, abandoned_by, "
                                  "abandon_reason)")
                elif table == "tasks":
                    privileges = "SELECT, INSERT, UPDATE"
                elif table in ("feed_items", "feed_state"):
                    # the feed's reduced state: written only through the SECURITY DEFINER
                    # functions of migration 0013 (an item's row only beside a post of it)
                    privileges = "SELECT"
                elif table in ("schema_migrations", "tokens"):
                    # tokens: bearer tokens of `leasehold serve`; an INSERT (an admin token) or
                    # clearing revoked_at would escalate on the server. Tokens are created and
                    # revoked by the owner (`leasehold token ...` with the owner's URL).
                    privileges = "SELECT"
                elif table == "lease_shares":
                    # append-only; each share explained by its `shared` event at commit
                    # (lease_shares_explained)
                    privileges = "SELECT, INSERT"
                else:
                    privileges = "SELECT, INSERT, UPDATE, DELETE"
                statements.append(sql.SQL("GRANT " + privileges + " ON {} TO {}").format(t, r))
            statements.append(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}")
                              .format(s, r))
            # the owner's SECURITY DEFINER functions: PUBLIC may not call them (migration 0014)
            for fn, args in (("leasehold_checkpoint_lock", "text"), ("leasehold_feed_items_clear", ""),
                             ("leasehold_feed_state_rebuilt", ""),
                             ("leasehold_feed_item_put", "bigint, text, text, text, integer, text, "
                              "bigint, text, double precision, text, double precision, integer, text")):
                statements.append(sql.SQL("GRANT EXECUTE ON FUNCTION {}(" + args + ") TO {}")
                                  .format(sql.Identifier(schema, fn), r))
            for statement in statements:
                cur.execute(statement)
                done.append(statement.as_string(cur))
        return done

    # -- chains (see leasehold.store.sql_chain) ----------------------------------------------
    def _q(self, sql: str) -> str:
        return rewrite_placeholders(sql)

    def _checkpoint_lock(self, tx: Tx, table: str) -> None:
        tx.cursor.execute("SELECT leasehold_checkpoint_lock(%(t)s)", {"t": table})

    @contextmanager
    def _audit_tx(self) -> Iterator[Tx]:
        """A read-only REPEATABLE READ transaction: every stream sees one snapshot."""
        with self._guard():
            conn = self._conn()
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield PgTx(conn.cursor(), self.queries, None)
            finally:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.UNKNOWN:
                    try:
                        conn.execute("ROLLBACK")
                    except psycopg.Error:
                        self._drop()

    def _stream(self, tx: Tx, sql: str, params: dict[str, Any]) -> Iterator[Any]:
        """A server-side cursor (the transaction is open): rows arrive in batches."""
        self._cursors = getattr(self, "_cursors", 0) + 1
        with self._guard():
            cursor = tx.cursor.connection.cursor(name=f"leasehold_stream_{self._cursors}",
                                                 row_factory=dict_row)
            cursor.itersize = 2000
            try:
                cursor.execute(sql, params)
                yield from cursor
            finally:
                cursor.close()

    def _trigger_rows(self, tx: Tx) -> list[Any]:
        return tx.cursor.execute(
            # 'O' (origin) and 'A' (always) fire in an ordinary session; 'R' (ENABLE REPLICA
            # TRIGGER) only under session_replication_role = replica: as good as disabled.
            "SELECT t.tgname AS name, c.relname AS tbl, t.tgenabled IN ('O', 'A') AS enabled, "
            "p.proname AS function, p.prosrc AS body, "
            # the trigger's shape: timing, level and events (tgtype), no WHEN clause, no column
            # list, no arguments, deferral, and a function of the ledger's schema
            "t.tgtype::int AS tgtype, t.tgqual IS NULL AND t.tgnargs = 0 AND t.tgattr::text = '' "
            "AND p.pronamespace = c.relnamespace AS plain, t.tgconstraint <> 0 AS is_constraint, "
            "t.tgdeferrable AS deferrable, t.tginitdeferred AS deferred "
            "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
        ).fetchall()

    @staticmethod
    def _shape_matches(row: Any, ddl: str) -> bool:
        """Whether the trigger ``row`` (of :meth:`_trigger_rows`) has the shape its definition
        ``ddl`` gives: its table, function, timing, level and events, no WHEN clause, no column
        list, no arguments, and the same deferral. A trigger that keeps its name but never
        fires (``WHEN (false)``, another event, statement level) does not match."""
        want = _trigger_shape(ddl)
        if want is None:
            return True
        table, tgtype, function, constraint = want
        return (row["tbl"] == table and row["function"] == function and row["tgtype"] == tgtype
                and bool(row["plain"]) and bool(row["is_constraint"]) == constraint
                and bool(row["deferrable"]) == constraint and bool(row["deferred"]) == constraint)

    def triggers(self, tx: Tx) -> dict[str, tuple[str, bool]]:
        """``{trigger: (table, in force)}``: a trigger counts as disabled when it does not fire
        in an ordinary session, or when its function's body (``pg_proc.prosrc``, whitespace
        aside) differs from the one the migrations create (``CREATE OR REPLACE FUNCTION
        events_append_only() ... RETURN OLD`` would neuter it while the trigger stays)."""
        from leasehold.store.sql_chain import guard_definitions

        functions = trigger_functions()
        guards = guard_definitions("postgres")
        out = {}
        for row in self._trigger_rows(tx):
            guard = guards.get(row["name"])
            if guard is not None and row["tbl"] != guard[0]:
                continue  # a trigger of that name on another table is not the guard
            known = functions.get(row["function"])
            altered = known is not None and _norm(row["body"]) != _norm(known[1])
            if guard is not None and not self._shape_matches(row, guard[1]):
                altered = True
            out[row["name"]] = (row["tbl"], bool(row["enabled"]) and not altered)
        return out

    def _restore_guard(self, tx: Tx, name: str, ddl: str, present: bool) -> str | None:
        """Recreate a missing trigger; re-enable a disabled one; put back its function's body
        (from the migrations) when it was replaced, with ``search_path`` pinned to the ledger's
        schema, ``pg_temp`` last. Returns the line to report, or None for the generic one."""
        if not present:
            tx.cursor.execute(ddl)
            return None
        functions = trigger_functions()
        restored = None
        table = ddl.split(" ON ", 1)[1].split()[0]
        for row in self._trigger_rows(tx):
            if row["name"] != name or row["tbl"] != table:
                continue
            if not self._shape_matches(row, ddl):  # reshaped: recreate it from its definition
                tx.cursor.execute(f'DROP TRIGGER "{name}" ON {table}')
                tx.cursor.execute(ddl)
                return f"recreated trigger {name} on {table}"
            known = functions.get(row["function"])
            if known is not None and _norm(row["body"]) != _norm(known[1]):
                tx.cursor.execute(known[0])
                tx.cursor.execute(psycopg.sql.SQL(
                    "ALTER FUNCTION {}() SET search_path = {}, pg_temp").format(
                        psycopg.sql.Identifier(row["function"]),
                        psycopg.sql.Identifier(tx.cursor.execute(
                            "SELECT current_schema() AS s").fetchone()["s"])))
                restored = f"restored function {row['function']}() of trigger {name}"
        tx.cursor.execute(f'ALTER TABLE {table} ENABLE TRIGGER "{name}"')
        return restored

    # -- hot paths: one statement each ---------------------------------------------------------
    def _statement(self, name: str, params: dict[str, Any], op: str | None) -> list[Any]:
        """Run one mutating statement in autocommit (its own transaction) and fetch its rows;
        ``op`` is recorded by the statement and resolves a lost acknowledgement."""
        with self._guard(op) as call:
            conn = self._conn()
            call.pid = conn.info.backend_pid
            return conn.execute(self.queries[name], params).fetchall()

    def claim(self, task_id: str, actor: str, session: str, ttl: float,
              title: str | None = None, priority: int | None = None, *,
              op: str | None = None, share_with: Sequence[str] = ()) -> Any:
        """:meth:`SQLStore.claim`. A free task (exists, not done, no lease) is granted in ONE
        statement (``claim_free``: lock, then the clock, grant, event, operation); any other
        case, and a claim shared with other sessions (grant and shares in one transaction), is
        decided in a transaction on the instant read under the row lock."""
        from leasehold.store.base import ClaimOutcome

        if share_with:
            return super().claim(task_id, actor, session, ttl, title, priority, op=op,
                                 share_with=share_with)
        rows = self._statement("claim_free", {
            "id": task_id, "actor": actor, "session": session, "ttl": ttl,
            "op": _plain(op), "digest": getattr(op, "digest", None)}, op)
        if rows:
            return ClaimOutcome(Task.from_row(rows[0]), True)
        with self._write(op) as tx:
            outcome = self._claim_locked(tx, task_id, actor, session, ttl, title, priority)
            if outcome.granted:
                self._record_claim(tx, op, actor, session, outcome)
            return outcome

    def next(self, actor: str, session: str, ttl: float, count: int = 1, *,
             op: str | None = None) -> list[Task]:
        """Atomically claim up to ``count`` tasks of the ready queue in ONE statement: pick them
        ``FOR UPDATE SKIP LOCKED``, grant (new fence each), append one ``claimed`` event each.
        Highest priority first, then oldest."""
        rows = self._statement("next_claim", {
            "actor": actor, "session": session, "ttl": ttl, "limit": count,
            "op": _plain(op), "digest": getattr(op, "digest", None)}, op)
        return [Task.from_row(row) for row in rows]

    def release(self, task_id: str, actor: str | None, session: str | None, *,
                status: str | None, kind: str, force: bool = False,
                details: dict[str, Any] | None = None,
                fence: int | None = None, op: str | None = None) -> tuple[Task | None, str]:
        """:meth:`SQLStore.release` (same outcomes and events) in ONE statement; with a
        ``fence`` to check, the generic row-locked transaction."""
        if fence is not None:
            return super().release(task_id, actor, session, status=status, kind=kind,
                                   force=force, details=details, fence=fence, op=op)
        rows = self._statement("release_one", {
            "id": task_id, "actor": actor, "session": session, "status": status,
            "kind": kind, "force": force, "details": encode_details(details or {}),
            "op": _plain(op), "digest": getattr(op, "digest", None),
        }, op)
        if not rows:
            return None, "not_found"
        row = rows[0]
        return Task.from_row(row["new"] or row["old"]), row["outcome"]

    def complete_many(self, task_ids: Sequence[str], actor: str, session: str, *,
                      op: str | None = None) -> list[Task]:
        """:meth:`SQLStore.complete_many` (same rules and events) in ONE statement."""
        rows = self._statement("complete_many", {
            "ids": list(dict.fromkeys(task_ids)), "actor": actor, "session": session,
            "op": _plain(op), "digest": getattr(op, "digest", None),
        }, op)
        return [Task.from_row(row) for row in rows]


_FUNCTION = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(\w+)\s*\(\s*\)\s+RETURNS\s+"
                       r"trigger\b.*?\bAS\s+\$\$(.*?)\$\$\s*;", re.S | re.I)
_FUNCTIONS: dict[str, tuple[str, str]] = {}


def trigger_functions() -> dict[str, tuple[str, str]]:
    """``{function: (CREATE OR REPLACE statement, body)}`` of every trigger function the
    PostgreSQL migrations create, the latest definition of each (read once)."""
    if not _FUNCTIONS:
        for _version, _name, path in migration_files("postgres"):
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            for match in _FUNCTION.finditer(text):
                statement = re.sub(r"^CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION", "CREATE OR REPLACE FUNCTION",
                                   match.group(0), flags=re.I)
                _FUNCTIONS[match.group(1)] = (statement, match.group(2))
    return _FUNCTIONS


_TRIGGER_DDL = re.compile(r"CREATE\s+(CONSTRAINT\s+)?TRIGGER\s+\w+\s+(BEFORE|AFTER)\s+(.+?)\s+ON\s+"
                          r"(\w+)\s+(DEFERRABLE\s+INITIALLY\s+DEFERRED\s+)?FOR\s+EACH\s+(ROW|STATEMENT)"
                          r"\s+EXECUTE\s+FUNCTION\s+(\w+)\(\)", re.S | re.I)
_TRIGGER_EVENTS = {"INSERT": 4, "DELETE": 8, "UPDATE": 16, "TRUNCATE": 32}


def _trigger_shape(ddl: str) -> tuple[str, int, str, bool] | None:
    """``(table, pg_trigger.tgtype, function, constraint trigger)`` of a guards.ddl definition
    (None when it is not a plain CREATE [CONSTRAINT] TRIGGER)."""
    m = _TRIGGER_DDL.search(ddl)
    if m is None:
        return None
    constraint, timing, events, table, _deferred, level, function = m.groups()
    tgtype = (1 if level.upper() == "ROW" else 0) | (2 if timing.upper() == "BEFORE" else 0)
    for event in re.split(r"\s+OR\s+", events.strip(), flags=re.I):
        tgtype |= _TRIGGER_EVENTS[event.upper()]
    return table, tgtype, function, bool(constraint)


def _norm(body: str) -> str:
    return " ".join(body.split())


def _plain(op: str | None) -> str | None:
    """An operation id as a plain string for the driver (an OpKey is a ``str`` subclass)."""
    return None if op is None else str(op)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
