"""The clock is read after the lock: a call that waited for a row (PostgreSQL) or for the write
lock (SQLite) decides and stamps with an instant read once the lock is held.

The shape: a second real connection holds the task's row (``SELECT ... FOR UPDATE``) or the
SQLite write lock (``BEGIN IMMEDIATE``) for longer than the TTL while a ``claim(ttl=1s)`` or an
``extend`` waits, then lets go. Then the lease returned is valid at return, an extend never
returns an expiry in the past, and the task's event timestamps never decrease in event order.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from leasehold import Ledger
from leasehold.errors import LeaseExpired
from tests.conftest import wait_for
from tests.test_pg_faults import waiting_backend

#: How long the other connection holds the lock: longer than the 1 s TTL.
HOLD = 1.3


def assert_ordered(ledger: Ledger, task_id: str) -> None:
    """Per task, event timestamps never decrease in event (id) order."""
    events = ledger.events(task_id)
    stamps = [(e.id, e.kind, e.ts) for e in events]
    for before, after in zip(stamps, stamps[1:], strict=False):
        assert after[2] >= before[2], f"event {after} stamped before {before}"


class Call:
    """Run ``fn`` in a thread; ``returned_at`` is the wall clock the moment it returned (the
    database and this process share the machine's clock)."""

    def __init__(self, fn) -> None:  # type: ignore[no-untyped-def]
        self.fn = fn
        self.result = None
        self.error: BaseException | None = None
        self.returned_at = 0.0
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.started.set()
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        self.returned_at = time.time()

    def join(self) -> None:
        self.thread.join(60)
        assert not self.thread.is_alive(), "the call never returned"


class PgHolder:
    """Another real connection holding the task's row FOR UPDATE; on ``finish`` it may stamp
    a release of the lease (an event with the server's clock, as the ledger would) first."""

    def __init__(self, url: str, task_id: str) -> None:
        import psycopg

        self.task_id = task_id
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT id FROM tasks WHERE id = %s FOR UPDATE", (task_id,))
        self.pid = self.conn.info.backend_pid
        self.locked_at = time.monotonic()

    def hold_past(self, seconds: float) -> None:
        wait_for(lambda: time.monotonic() - self.locked_at >= seconds, what="the hold")

    def finish(self, release_lease: bool = False) -> float:
        """Commit; returns the server's clock read just before the commit."""
        now = self.conn.execute(
            "SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]
        if release_lease:
            self.conn.execute(
                "UPDATE tasks SET lease_actor = NULL, lease_session = NULL, lease_until = NULL, "
                "lease_acquired_at = NULL, lease_ttl = NULL, status = 'open', updated_at = %s "
                "WHERE id = %s", (now, self.task_id))
            self.conn.execute(
                "INSERT INTO events (ts, kind, task_id, actor, session, fence, details) "
                "SELECT %s, 'released', id, 'h', 'h', fence, '{}' FROM tasks WHERE id = %s",
                (now, self.task_id))
        self.conn.execute("COMMIT")
        self.conn.close()
        return now


# -- PostgreSQL -------------------------------------------------------------------------------
@pytest.mark.postgres
def test_pg_claim_of_a_free_task_after_a_long_row_lock_returns_a_valid_lease(pg_url: str) -> None:
    with Ledger.open(pg_url) as ledger:
        ledger.add("T")
        holder = PgHolder(pg_url, "T")
        call = Call(lambda: ledger.claim("T", "a:1", ttl=1))
        wait_for(lambda: waiting_backend(holder.pid), what="the claim to wait on the row lock")
        holder.hold_past(HOLD)
        released_at = holder.finish()
        call.join()
        assert call.error is None, call.error
        lease = call.result
        assert lease.acquired_at >= released_at
        assert lease.expires_at > call.returned_at, "the lease had expired when it was returned"
        assert ledger.show("T").fence == 1
        assert_ordered(ledger, "T")


@pytest.mark.postgres
def test_pg_takeover_after_a_release_that_held_the_row_is_stamped_after_it(pg_url: str) -> None:
    with Ledger.open(pg_url) as ledger:
        ledger.claim("T", "old:1", ttl=600)
        holder = PgHolder(pg_url, "T")
        call = Call(lambda: ledger.claim("T", "a:1", ttl=1))
        wait_for(lambda: waiting_backend(holder.pid), what="the claim to wait on the row lock")
        holder.hold_past(HOLD)
        released_at = holder.finish(release_lease=True)
        call.join()
        assert call.error is None, call.error
        lease = call.result
        assert lease.fence == 2
        assert lease.acquired_at >= released_at, "the grant is stamped before the release"
        assert lease.expires_at > call.returned_at
        assert_ordered(ledger, "T")


@pytest.mark.postgres
def test_pg_takeover_of_an_expired_lease_after_a_long_row_lock(pg_url: str) -> None:
    with Ledger.open(pg_url) as ledger:
        ledger.claim("T", "old:1", ttl=1)
        wait_for(lambda: ledger.now() > ledger.show("T").lease_until, what="the lease to expire")
        holder = PgHolder(pg_url, "T")
        call = Call(lambda: ledger.claim("T", "a:1", ttl=1))
        wait_for(lambda: waiting_backend(holder.pid), what="the claim to wait on the row lock")
        holder.hold_past(HOLD)
        holder.finish()
        call.join()
        assert call.error is None, call.error
        assert call.result.fence == 2
        assert call.result.expires_at > call.returned_at
        assert_ordered(ledger, "T")


@pytest.mark.postgres
def test_pg_extend_that_waited_past_the_expiry_is_refused(pg_url: str) -> None:
    with Ledger.open(pg_url) as ledger:
        lease = ledger.claim("T", "a:1", ttl=1)
        holder = PgHolder(pg_url, "T")
        call = Call(lambda: ledger.extend("T", "a:1", ttl=1))
        wait_for(lambda: waiting_backend(holder.pid), what="the extend to wait on the row lock")
        holder.hold_past(HOLD)
        wait_for(lambda: time.time() > lease.expires_at, what="the lease to expire")
        holder.finish()
        call.join()
        assert isinstance(call.error, LeaseExpired), call.error
        assert [e.kind for e in ledger.events("T")][-1] == "claimed"


@pytest.mark.postgres
def test_pg_extend_after_a_long_row_lock_returns_an_expiry_in_the_future(pg_url: str) -> None:
    with Ledger.open(pg_url) as ledger:
        ledger.claim("T", "a:1", ttl=30)
        holder = PgHolder(pg_url, "T")
        call = Call(lambda: ledger.extend("T", "a:1", ttl=1))
        wait_for(lambda: waiting_backend(holder.pid), what="the extend to wait on the row lock")
        holder.hold_past(HOLD)
        released_at = holder.finish()
        call.join()
        assert call.error is None, call.error
        assert call.result.expires_at > call.returned_at
        assert call.result.expires_at >= released_at + 1
        assert_ordered(ledger, "T")


@pytest.mark.postgres
@pytest.mark.parametrize("operation", ["release", "done", "reopen"])
def test_pg_release_done_reopen_after_a_long_row_lock_are_stamped_after_it(
        pg_url: str, operation: str) -> None:
    with Ledger.open(pg_url) as ledger:
        ledger.claim("T", "a:1", ttl=600)
        holder = PgHolder(pg_url, "T")
        run = {
            "release": lambda: ledger.release("T", "a:1"),
            "done": lambda: ledger.complete("T", "a:1"),
            "reopen": lambda: ledger.reopen("T", by="a:1"),
        }[operation]
        call = Call(run)
        wait_for(lambda: waiting_backend(holder.pid), what=f"{operation} to wait on the row lock")
        holder.hold_past(HOLD)
        released_at = holder.finish()
        call.join()
        assert call.error is None, call.error
        last = ledger.events("T")[-1]
        assert last.ts >= released_at
        assert_ordered(ledger, "T")


# -- SQLite -----------------------------------------------------------------------------------
class SqliteHolder:
    """Another real connection holding the SQLite write lock (``BEGIN IMMEDIATE``)."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")
        self.locked_at = time.monotonic()

    def finish(self) -> float:
        wait_for(lambda: time.monotonic() - self.locked_at >= HOLD, what="the hold")
        now = time.time()
        self.conn.execute("COMMIT")
        self.conn.close()
        return now


def test_sqlite_claim_that_waited_for_the_write_lock_returns_a_valid_lease(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url) as ledger:
        ledger.claim("T", "old:1", ttl=1)
        wait_for(lambda: time.time() > ledger.show("T").lease_until, what="the lease to expire")
        holder = SqliteHolder(sqlite_url)
        call = Call(lambda: ledger.claim("T", "a:1", ttl=1))
        call.started.wait(10)
        released_at = holder.finish()
        call.join()
        assert call.error is None, call.error
        assert call.result.fence == 2
        assert call.result.acquired_at >= released_at
        assert call.result.expires_at > call.returned_at
        assert_ordered(ledger, "T")


def test_sqlite_extend_that_waited_for_the_write_lock(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url) as ledger:
        ledger.claim("T", "a:1", ttl=30)
        holder = SqliteHolder(sqlite_url)
        call = Call(lambda: ledger.extend("T", "a:1", ttl=1))
        call.started.wait(10)
        released_at = holder.finish()
        call.join()
        assert call.error is None, call.error
        assert call.result.expires_at >= released_at + 1
        assert call.result.expires_at > call.returned_at
        assert_ordered(ledger, "T")
