"""The SQL implementation of the store contract shared by every dialect.

A dialect subclass supplies a connection, write/read transactions, the clock and driver error
translation; this class supplies the lease logic as short transactions over named queries
(``sql/queries.sql``, overridable per dialect in ``sql/<dialect>/queries.sql``).

Race-freedom: every write runs in a transaction that holds the task's row lock (SQLite:
``BEGIN IMMEDIATE`` takes the database write lock; PostgreSQL: ``SELECT ... FOR UPDATE``)
from the read that decides to the write that grants, so two claimers can never both win.
"""

from __future__ import annotations

import os

from leasehold.model import Event, Task
from leasehold.store.sql_chain import ChainSQL
from leasehold.store.sql_deps import DependenciesSQL, task_row
from leasehold.store.sql_paths import PathsSQL
from leasehold.store.sql_shares import SharesSQL
from leasehold.store.sql_tickets import TicketsSQL
from leasehold.store.sql_tokens import TokensSQL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from contextlib import AbstractContextManager
    from typing import Any

    from leasehold.store.base import ClaimOutcome

SQL_DIR = os.path.join(os.path.dirname(__file__), "sql")
_QUERY_CACHE: dict[str, dict[str, str]] = {}


def parse_named_queries(text: str) -> dict[str, str]:
    """Split a file of ``-- name: NAME`` sections into ``{NAME: SQL}``."""
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("-- name:"):
            if name:
                queries[name] = "\n".join(lines).strip().rstrip(";")
            name, lines = line[len("-- name:"):].strip(), []
        elif name is not None and not line.startswith("--"):
            lines.append(line)
    if name:
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries


def load_queries(dialect: str, rewrite: Callable[[str], str] | None = None) -> dict[str, str]:
    """The named queries for ``dialect``: every ``sql/*.sql`` file (one per feature), then the
    dialect's overrides in ``sql/<dialect>/*.sql``."""
    cached = _QUERY_CACHE.get(dialect)
    if cached is not None:
        return cached
    queries: dict[str, str] = {}
    for folder in (SQL_DIR, os.path.join(SQL_DIR, dialect)):
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            if entry.endswith(".sql"):
                with open(os.path.join(folder, entry), encoding="utf-8") as fh:
                    queries.update(parse_named_queries(fh.read()))
    if rewrite:
        queries = {name: rewrite(sql) for name, sql in queries.items()}
    _QUERY_CACHE[dialect] = queries
    return queries


def migration_files(dialect: str) -> list[tuple[int, str, str]]:
    """``[(version, name, path)]`` of ``sql/<dialect>/migrations/NNNN_name.sql``, in order."""
    folder = os.path.join(SQL_DIR, dialect, "migrations")
    found = []
    for entry in sorted(os.listdir(folder)):
        if entry.endswith(".sql") and entry[:4].isdigit():
            found.append((int(entry[:4]), entry[5:-4], os.path.join(folder, entry)))
    return found


_ENCODER = None


def decode_operation(row: Any) -> dict[str, Any]:
    """An ``operations`` row as a dict with its ``result`` decoded."""
    import json

    record = {name: row[name] for name in ("op_id", "kind", "task_id", "actor", "session", "ts")}
    record["digest"] = row["digest"] if "digest" in row.keys() else None
    record["ts"] = float(record["ts"])
    result = row["result"]
    record["result"] = json.loads(result) if isinstance(result, str) else (result or {})
    return record


def encode_details(details: dict[str, Any]) -> str:
    """Event details as compact JSON with sorted keys (one encoder, built on first use)."""
    global _ENCODER
    if _ENCODER is None:
        import json

        _ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
    return _ENCODER.encode(details)


def json_array(strings: Sequence[str]) -> str:
    """A JSON array of strings, encoded by the C encoder ``json.dumps`` uses, without importing
    the ``json`` package (which imports ``re``: milliseconds on the hook path)."""
    try:
        from _json import encode_basestring_ascii
    except ImportError:  # pragma: no cover - an interpreter without the C accelerator
        import json

        return json.dumps(list(strings))
    return "[" + ",".join(encode_basestring_ascii(s) for s in strings) + "]"


class Tx:
    """One open transaction: run named queries with the transaction's instant ``now`` bound.

    ``now`` is read after the transaction holds the locks its decision depends on (SQLite: the
    database write lock taken by ``BEGIN IMMEDIATE``; PostgreSQL: see ``PgTx``), never before a
    lock wait: a lease granted with a stale instant could be dead when it is returned.
    """

    __slots__ = ("cursor", "queries", "now", "op")

    def __init__(self, cursor: Any, queries: dict[str, str], now: float,
                 op: str | None = None) -> None:
        self.cursor = cursor
        self.queries = queries
        self.now = now
        #: The operation id of the call this transaction carries (recorded in its events'
        #: details as ``op`` and in ``operations``), or None.
        self.op = op

    def execute(self, name: str, params: dict[str, Any]) -> Any:
        params.setdefault("now", self.now)
        self.cursor.execute(self.queries[name], params)
        return self.cursor

    def one(self, name: str, **params: Any) -> Any:
        return self.execute(name, params).fetchone()

    def all(self, name: str, **params: Any) -> list[Any]:
        return list(self.execute(name, params).fetchall())

    def run(self, name: str, **params: Any) -> int:
        return int(self.execute(name, params).rowcount)

    def stream(self, name: str, **params: Any) -> Any:
        """The rows of a query one at a time, without building the whole result in memory."""
        return iter(self.execute(name, params))

    def after_locks(self) -> None:
        """Re-read the clock now that the rows just locked are held (a no-op where the whole
        transaction's lock was taken before ``now`` was read)."""

    def record_op(self, op: str | None, kind: str, task_id: str | None, actor: str | None,
                  session: str | None, result: dict[str, Any]) -> None:
        """Record operation ``op`` with its outcome in this transaction (nothing when None),
        and the digest of its call's kind and arguments when ``op`` carries one
        (:class:`leasehold.ops.OpKey`).
        Raises :class:`~leasehold.errors.OpRecorded` when the id is already recorded: the
        caller's transaction then rolls back and the recorded outcome is replayed."""
        if op is None:
            return
        if self.run("insert_operation", op=str(op), kind=kind, task_id=task_id, actor=actor,
                    session=session, result=encode_details(result),
                    digest=getattr(op, "digest", None)) != 1:
            from leasehold.errors import OpRecorded

            raise OpRecorded(op)

    def event(self, kind: str, task_id: str | None, actor: str | None = None,
              session: str | None = None, fence: int | None = None, **details: Any) -> None:
        """Append one row to ``events`` in this transaction (with the transaction's operation id
        in the details as ``op``)."""
        if self.op is not None:
            details["op"] = str(self.op)
        self.run(
            "insert_event", kind=kind, task_id=task_id, actor=actor, session=session,
            fence=fence, details=encode_details(details),
        )


class SQLStore(PathsSQL, TicketsSQL, DependenciesSQL, ChainSQL, SharesSQL, TokensSQL):
    """Store logic over named queries. Subclasses implement the ``_``-prefixed hooks."""

    dialect = "sql"
    #: The migrations that opening this store applied (a new or older ledger), by name.
    applied_on_open: list[str]

    # -- dialect hooks -------------------------------------------------------------------
    def _write(self, op: str | None = None) -> AbstractContextManager[Tx]:
        """A write transaction (exclusive against other writers of the same rows). ``op``: the
        operation id the transaction records, to resolve a commit whose answer was lost."""
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Tx]:
        """A read: one consistent snapshot where the dialect offers it."""
        raise NotImplementedError

    def now(self) -> float:
        """The store's clock: UTC seconds since the epoch."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def clone(self) -> SQLStore:
        """A new connection to the same database (for another thread)."""
        raise NotImplementedError

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""
        raise NotImplementedError

    def pending_migrations(self) -> list[str]:
        """The migrations this code has that the database has not applied (read-only: a
        readiness probe, not a migration)."""
        with self._read() as tx:
            done = {int(row["version"]) for row in tx.cursor.execute("SELECT version FROM schema_migrations").fetchall()}
        return [f"{version:04d}_{name}" for version, name, _ in migration_files(self.dialect) if version not in done]

    def notify(self, channel: str, payload: str = "") -> None:
        """Wake listeners of ``channel`` in other processes (PostgreSQL ``pg_notify``); a no-op
        where the dialect has no notifications (SQLite: one server process per file)."""
        return None

    #: Whether :meth:`listen` exists (PostgreSQL LISTEN on a dedicated connection).
    can_listen = False

    def _lock_ready(self, tx: Tx, limit: int) -> list[Any]:
        return tx.all("ready_candidates", limit=limit, unlimited=self._limit(-1))

    # -- tasks ---------------------------------------------------------------------------
    def get_task(self, task_id: str) -> Task | None:
        with self._read() as tx:
            row = tx.one("get_task", id=task_id)
        return Task.from_row(row) if row else None

    def add_task(self, task_id: str, title: str | None, priority: int | None,
                 actor: str | None, session: str | None, *,
                 op: str | None = None) -> tuple[Task, bool]:
        """Create a task; if it exists, update the title/priority given. Returns (task, created)."""
        with self._write(op) as tx:
            created = self._create(tx, task_id, title, priority, actor, session)
            if not created and (title is not None or priority is not None):
                tx.one("lock_task", id=task_id)
                tx.run("update_task_meta", id=task_id, title=title, priority=priority, status=None)
                tx.event("updated", task_id, actor, session, None,
                         **{k: v for k, v in (("title", title), ("priority", priority)) if v is not None})
            task = Task.from_row(tx.one("get_task", id=task_id))
            if created or title is not None or priority is not None:
                tx.record_op(op, "add", task_id, actor, session,
                             {"tasks": [task_row(task)], "created": created})
        return task, created

    def set_status(self, task_id: str, status: str, actor: str | None, session: str | None,
                   kind: str, *, op: str | None = None) -> Task | None:
        with self._write(op) as tx:
            row = tx.one("lock_task", id=task_id)
            if row is None:
                return None
            tx.run("update_task_meta", id=task_id, title=None, priority=None, status=status)
            tx.event(kind, task_id, actor, session, row["fence"], status=status,
                     previous_status=row["status"])
            task = Task.from_row(tx.one("get_task", id=task_id))
            tx.record_op(op, kind, task_id, actor, session, {"tasks": [task_row(task)]})
            return task

    def _create(self, tx: Tx, task_id: str, title: str | None, priority: int | None,
                actor: str | None, session: str | None) -> bool:
        created = tx.run("insert_task", id=task_id, title=title, priority=priority or 0) == 1
        if created:
            tx.event("created", task_id, actor, session, None, title=title, priority=priority or 0)
        return created

    # -- leases --------------------------------------------------------------------------
    def _grant(self, tx: Tx, task: Task, actor: str, session: str, ttl: float,
               **details: Any) -> tuple[Task, bool, str | None]:
        """Grant or renew the lease on ``task`` (already locked and known to be grantable)."""
        renewed = (
            task.lease_valid(tx.now)
            and task.lease_actor == actor
            and task.lease_session == session
        )
        previous = None
        if renewed:
            fence, acquired = task.fence, task.lease_acquired_at
        else:
            fence, acquired = task.fence + 1, tx.now
            if task.lease_actor is not None:
                previous = task.lease_holder
                details["previous_holder"] = previous
                details["previous_until"] = task.lease_until
        until = tx.now + ttl
        row = tx.one("grant_lease", id=task.id, actor=actor, session=session,
                     acquired_at=acquired, until=until, ttl=ttl, fence=fence)
        if renewed:
            details["renewed"] = True
        tx.event("claimed", task.id, actor, session, fence, expires_at=until, ttl=ttl, **details)
        return Task.from_row(row), renewed, previous

    def claim(self, task_id: str, actor: str, session: str, ttl: float,
              title: str | None = None, priority: int | None = None, *,
              op: str | None = None, share_with: Sequence[str] = ()) -> ClaimOutcome:
        """Grant the lease if the task is free, expired, or validly held by the same holder.

        Creates an unknown task first. A done task is never granted. ``op``: the operation id
        recorded with a grant. ``share_with``: sessions the grant is shared with, in the same
        transaction (a refused claim shares nothing).
        """
        from leasehold.store.base import ClaimOutcome

        with self._write(op) as tx:
            row = tx.one("grant_free", id=task_id, actor=actor, session=session,
                         until=tx.now + ttl, ttl=ttl)
            if row is not None:
                tx.event("claimed", task_id, actor, session, row["fence"],
                         expires_at=row["lease_until"], ttl=ttl)
                outcome = ClaimOutcome(Task.from_row(row), True)
            else:
                outcome = self._claim_locked(tx, task_id, actor, session, ttl, title, priority)
            if outcome.granted:
                if share_with:
                    self._insert_shares(tx, outcome.task, actor, session, share_with)  # type: ignore[attr-defined]
                self._record_claim(tx, op, actor, session, outcome)
            return outcome

    def _claim_locked(self, tx: Tx, task_id: str, actor: str, session: str, ttl: float,
                      title: str | None, priority: int | None) -> ClaimOutcome:
        """The claim's general case, in ``tx``: create the task if unknown, lock it, decide on
        the instant read under the lock."""
        from leasehold.store.base import ClaimOutcome

        created = self._create(tx, task_id, title, priority, actor, session)
        task = Task.from_row(tx.one("lock_task", id=task_id))
        if task.status == "done":
            return ClaimOutcome(task, False, created=created)
        if task.lease_valid(tx.now) and (
            task.lease_actor != actor or task.lease_session != session
        ):
            return ClaimOutcome(task, False, created=created)
        granted, renewed, previous = self._grant(tx, task, actor, session, ttl)
        return ClaimOutcome(granted, True, renewed, previous, created)

    @staticmethod
    def _record_claim(tx: Tx, op: str | None, actor: str, session: str,
                      outcome: ClaimOutcome) -> None:
        tx.record_op(op, "claim", outcome.task.id, actor, session, {
            "tasks": [task_row(outcome.task)], "renewed": outcome.renewed,
            "previous": outcome.previous, "created": outcome.created})

    def extend(self, task_id: str, actor: str, session: str, ttl: float | None,
               fence: int | None, *, op: str | None = None) -> tuple[Task | None, bool]:
        """Push a valid lease's expiry to now + ttl (default: its own TTL); same fence. ``now``
        is read under the task's row lock, so the expiry returned is never in the past.

        Returns ``(task, extended)``; ``(None, False)`` for an unknown task.
        """
        with self._write(op) as tx:
            row = tx.one("lock_task", id=task_id)
            if row is None:
                return None, False
            task = Task.from_row(row)
            ttl = ttl or task.lease_ttl
            if ttl is None:
                return task, False
            new = tx.one("extend_lease", id=task_id, actor=actor, session=session,
                         until=tx.now + ttl, ttl=ttl, fence=fence)
            if new is None:
                return task, False
            tx.event("extended", task_id, actor, session, new["fence"],
                     expires_at=new["lease_until"], ttl=ttl)
            extended = Task.from_row(new)
            tx.record_op(op, "extend", task_id, actor, session, {"tasks": [task_row(extended)]})
            return extended, True

    def release(self, task_id: str, actor: str | None, session: str | None, *,
                status: str | None, kind: str, force: bool = False,
                details: dict[str, Any] | None = None,
                fence: int | None = None, op: str | None = None) -> tuple[Task | None, str]:
        """Clear the lease (and set ``status`` unless None), appending a ``kind`` event.

        Returns ``(task, outcome)`` with outcome one of ``released``; ``not_found``;
        ``not_held`` (no lease, or another holder's expired lease: nothing changed);
        ``held_by_other`` (a valid lease of another holder: nothing changed); ``expired`` (the
        caller's own lease is past its expiry: nothing changed). A lease ends at its expiry:
        its holder can no longer complete or release it, as it can no longer extend it.
        ``force`` releases whatever lease there is, valid or not, of any holder; with no lease
        it changes nothing (``not_held``), so a done task stays done.
        ``fence``: when given, a task at another fence is left alone (outcome ``stale_fence``),
        checked under the same lock as the release. ``op``: the operation id recorded with a
        release.
        """
        with self._write(op) as tx:
            task, outcome = self._release(tx, task_id, actor, session, status, kind, force,
                                          details, fence)
            if outcome == "released" and task is not None:
                tx.record_op(op, kind, task_id, actor, session,
                             {"tasks": [task_row(task)], "outcome": outcome})
            return task, outcome

    def complete_many(self, task_ids: Sequence[str], actor: str, session: str, *,
                      op: str | None = None) -> list[Task]:
        """Mark done, in one transaction, each of ``task_ids`` whose lease ``actor:session``
        validly holds (not past its expiry); one ``completed`` event
        each. Returns the tasks completed; the others are left unchanged."""
        with self._write(op) as tx:
            done = []
            for task_id in dict.fromkeys(task_ids):
                task, outcome = self._release(tx, task_id, actor, session, "done", "completed",
                                              False, None)
                if outcome == "released" and task is not None:
                    done.append(task)
            if done:
                tx.record_op(op, "complete_many", None, actor, session,
                             {"tasks": [task_row(task) for task in done]})
            return done

    def _release(self, tx: Tx, task_id: str, actor: str | None, session: str | None,
                 status: str | None, kind: str, force: bool,
                 details: dict[str, Any] | None,
                 fence: int | None = None) -> tuple[Task | None, str]:
        if not force and fence is None:
            row = tx.one("release_own", id=task_id, actor=actor, session=session, status=status)
            if row is not None:
                tx.event(kind, task_id, actor, session, row["fence"], status=row["status"],
                         holder=f"{actor}:{session}", **(details or {}))
                return Task.from_row(row), "released"
        row = tx.one("lock_task", id=task_id)
        if row is None:
            return None, "not_found"
        task = Task.from_row(row)
        if fence is not None and task.fence != fence:
            return task, "stale_fence"
        own = task.lease_actor == actor and task.lease_session == session
        if not force:
            if task.lease_actor is None:
                return task, "not_held"
            if not own:
                return task, "held_by_other" if task.lease_valid(tx.now) else "not_held"
            if not task.lease_valid(tx.now):
                return task, "expired"
        elif task.lease_actor is None:
            # Nothing to clear: a forced release of an unheld task changes nothing (it must not
            # reopen a done task; ``reopen`` does that).
            return task, "not_held"
        extra = dict(details or {}, holder=task.lease_holder)  # a lease is there to clear
        if not task.lease_valid(tx.now):
            extra["after_expiry"] = True
        new = tx.one("clear_lease", id=task_id, status=status)
        tx.event(kind, task_id, actor, session, task.fence, status=new["status"], **extra)
        return Task.from_row(new), "released"

    def next(self, actor: str, session: str, ttl: float, count: int = 1, *,
             op: str | None = None) -> list[Task]:
        """Atomically claim up to ``count`` ready tasks: not done, not validly held; highest
        priority first, then oldest."""
        with self._write(op) as tx:
            rows = self._lock_ready(tx, count)
            tx.after_locks()
            granted = [self._grant(tx, Task.from_row(row), actor, session, ttl, via="next")[0]
                       for row in rows]
            if granted:
                tx.record_op(op, "next", None, actor, session,
                             {"tasks": [task_row(task) for task in granted]})
            return granted

    def sweep(self, auto_release: bool, *, op: str | None = None) -> list[Task]:
        """Leases past expiry; with ``auto_release`` clear each (status back to ``open`` if it
        was ``in_progress``), one ``expired`` event each."""
        if not auto_release:
            with self._read() as tx:
                return [Task.from_row(row) for row in tx.all("expired_leases")]
        with self._write(op) as tx:
            expired = [Task.from_row(row) for row in tx.all("lock_expired_leases")]
            tx.after_locks()
            for task in expired:
                status = "open" if task.status == "in_progress" else None
                tx.one("clear_lease", id=task.id, status=status)
                tx.event("expired", task.id, task.lease_actor, task.lease_session, task.fence,
                         expired_at=task.lease_until)
            if expired:
                tx.record_op(op, "sweep", None, None, None,
                             {"tasks": [task_row(task) for task in expired]})
            return expired

    def lookup_op(self, op: str) -> dict[str, Any] | None:
        """The recorded operation ``op`` (``op_id``, ``kind``, ``task_id``, ``actor``,
        ``session``, ``ts``, ``result`` decoded, and ``read_at``: the store's clock at the
        lookup, UTC seconds), or None when no call with that id applied."""
        with self._read() as tx:
            row = tx.one("get_operation", op=op)
            if not row:
                return None
            record = decode_operation(row)
            record["read_at"] = float(tx.now)
        return record

    # -- reads ---------------------------------------------------------------------------
    def list_tasks(self) -> list[Task]:
        return list(self.iter_tasks())

    def iter_tasks(self, status: str | None = None, held: bool | None = None,
                   limit: int | None = None) -> Iterator[Task]:
        """Tasks by priority, then age, streamed: ``status`` filters; ``held`` True keeps validly
        held tasks, False the available ones (not done, no valid lease); at most ``limit``."""
        lim = self._limit(-1 if limit is None else limit)
        with self._read() as tx:
            if held is False:
                rows = tx.stream("list_tasks_available", limit=lim)
            elif held is True:
                rows = tx.stream("list_tasks_held", limit=lim)
            elif status is not None:
                rows = tx.stream("list_tasks_status", status=status, limit=lim)
            else:
                rows = tx.stream("list_tasks", limit=lim)
            for row in rows:
                task = Task.from_row(row)
                if status is not None and task.status != status:
                    continue
                yield task

    def tasks_page(self, status: str | None, held: bool | None,
                   after: tuple[int, float, str] | None, limit: int) -> list[Task]:
        """Up to ``limit`` tasks in :meth:`iter_tasks` order after the cursor ``after``
        (``(priority, created_at, id)`` of the previous page's last task; None: from the
        start), filtered by ``status`` / ``held`` as :meth:`iter_tasks` does."""
        priority, created, last_id = after if after is not None else (2**62, -1.0e300, "")
        with self._read() as tx:
            rows = tx.all("list_tasks_page", priority=priority, created=created, id=last_id, status=status,
                          held=None if held is None else int(held), limit=limit)
        return [Task.from_row(row) for row in rows]

    def active_leases(self) -> list[Task]:
        with self._read() as tx:
            return [Task.from_row(row) for row in tx.all("active_leases")]

    def who(self, limit: int | None = None) -> list[tuple[str, list[Task]]]:
        """Valid leases grouped by holder, the most recently active holder first (the newest
        ``updated_at`` among its leases), at most ``limit`` holders; each holder's leases by
        acquisition time. With a limit, walks the leases by activity and stops after ``limit``
        holders, then reads each holder's leases through the session index; without one, reads
        every valid lease once."""
        if limit is None:  # every holder: one streamed pass over the valid leases
            groups_all: dict[str, list[Task]] = {}
            with self._read() as tx:
                for row in tx.stream("active_leases"):
                    task = Task.from_row(row)
                    groups_all.setdefault(task.lease_holder or "?", []).append(task)
            return sorted(groups_all.items(),
                          key=lambda item: max(t.updated_at or 0 for t in item[1]), reverse=True)
        order: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        page = max(100, 4 * limit)
        before_ts, before_id = float("inf"), ""
        with self._read() as tx:
            while len(order) < limit:
                rows = tx.all("active_leases_by_activity", before_ts=before_ts,
                              before_id=before_id, limit=page)
                for row in rows:
                    key = (row["lease_actor"], row["lease_session"])
                    if key not in seen and len(order) < limit:
                        seen.add(key)
                        order.append(key)
                if len(rows) < page:
                    break
                before_ts, before_id = rows[-1]["updated_at"], rows[-1]["id"]
        groups = []
        with self._read() as tx:
            for actor, session in order:
                tasks = [Task.from_row(r) for r in
                         tx.all("leases_of_holder", actor=actor, session=session)]
                if tasks:
                    tasks.sort(key=lambda t: (t.lease_acquired_at or 0.0, t.id))
                    groups.append((f"{actor}:{session}", tasks))
        return groups

    def lease_board(self, limit: int, offset: int = 0) -> tuple[list[Task], dict[str, int]]:
        """A page of the recorded leases (valid, or past expiry and not swept yet) grouped by
        holder, the most recently active holder first (the newest ``updated_at`` among its
        leases), each holder's leases by acquisition time: at most ``limit`` from ``offset``.
        Returns ``(tasks, counts)`` with counts ``{"leases", "expired", "holders"}`` over the
        whole board, read in the same snapshot."""
        with self._read() as tx:
            counts = tx.one("lease_board_counts")
            rows = tx.all("lease_board", limit=limit, offset=offset)
            totals = {name: int(counts[name] or 0) for name in ("leases", "expired", "holders")}
        return [Task.from_row(row) for row in rows], totals

    def leases_of(self, actor: str, session: str) -> list[Task]:
        with self._read() as tx:
            return [Task.from_row(row) for row in tx.all("leases_of_holder", actor=actor, session=session)]

    def iter_events(self, task_id: str | None = None, limit: int | None = None,
                    after: int = 0) -> Iterator[Event]:
        """:meth:`events`, streamed: without ``limit``, every event in id order, one row at a
        time."""
        if limit is not None:
            yield from self.events(task_id, limit, after)
            return
        with self._read() as tx:
            if task_id is None:
                rows = tx.stream("events_all_stream", after=after)
            else:
                rows = tx.stream("events_task_stream", task_id=task_id, after=after)
            for row in rows:
                yield Event.from_row(row)

    def events(self, task_id: str | None = None, limit: int | None = None,
               after: int = 0) -> list[Event]:
        """Events, oldest first: the last ``limit`` (all when None) with id > ``after``."""
        limit = -1 if limit is None else limit
        with self._read() as tx:
            if task_id is None:
                rows = tx.all("events_all", after=after, limit=self._limit(limit))
            else:
                rows = tx.all("events_task", task_id=task_id, after=after, limit=self._limit(limit))
        return [Event.from_row(row) for row in rows]

    def _limit(self, limit: int) -> int | None:
        """A LIMIT value: SQLite reads -1 as "no limit"; PostgreSQL needs NULL."""
        return limit

    def append_event(self, kind: str, task_id: str | None, actor: str | None,
                     session: str | None, fence: int | None, details: dict[str, Any]) -> None:
        """Append an audit event that changes no other state (e.g. a gate bypass)."""
        with self._write() as tx:
            tx.event(kind, task_id, actor, session, fence, **details)
