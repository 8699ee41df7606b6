"""The store contract, run against every backend (SQLite, and PostgreSQL when reachable):
the same calls give the same outcomes, errors and events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leasehold import Ledger
from leasehold.errors import (
    InvalidInput,
    LeaseHeld,
    NotFound,
    NotHolder,
    Refused,
    StaleFence,
    TaskDone,
)
from tests.conftest import REMOTE_BACKENDS, _backend_params, make_db_url, sql_only


@pytest.fixture(params=[*_backend_params(), *REMOTE_BACKENDS])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every backend, and a ``leasehold serve`` server over SQLite and over PostgreSQL."""
    return make_db_url(request, tmp_path)



def kinds(ledger: Ledger, task_id: str | None = None) -> list[str]:
    return [e.kind for e in ledger.events(task_id)]


def test_claim_grants_once_and_reports_the_holder(ledger: Ledger) -> None:
    lease = ledger.claim("99927", "john:abc", ttl=60, title="Fix it", priority=3)
    assert (lease.fence, str(lease.holder)) == (1, "john:abc")
    assert lease.expires_at == pytest.approx(lease.acquired_at + 60)
    with pytest.raises(LeaseHeld) as info:
        ledger.claim("99927", "mary:def", ttl=60)
    assert info.value.holder == "john:abc" and info.value.fence == 1
    again = ledger.claim("99927", "john:abc", ttl=60)
    assert again.fence == 1  # a renewal keeps the fence
    task = ledger.show("99927")
    assert (task.title, task.priority, task.status) == ("Fix it", 3, "in_progress")
    assert kinds(ledger, "99927") == ["created", "claimed", "claimed"]
    assert ledger.events("99927")[-1].details.get("renewed") is True


def test_extend_release_complete_and_fences(ledger: Ledger) -> None:
    lease = ledger.claim("t1", "a:1", ttl=30)
    extended = ledger.extend("t1", "a:1", ttl=120, fence=lease.fence)
    assert extended.fence == lease.fence and extended.expires_at > lease.expires_at
    with pytest.raises(StaleFence):
        ledger.extend("t1", "a:1", fence=lease.fence + 5)
    with pytest.raises(LeaseHeld):
        ledger.extend("t1", "b:2")
    with pytest.raises(LeaseHeld):
        ledger.release("t1", "b:2")
    result = ledger.release("t1", "a:1")
    assert result.released and result.task.status == "open" and result.task.lease_actor is None
    assert not ledger.release("t1", "a:1").released
    second = ledger.claim("t1", "b:2", ttl=30)
    assert second.fence == 2
    with pytest.raises(LeaseHeld):
        ledger.complete("t1", "c:3")
    done = ledger.complete("t1", "b:2", fence=2)
    assert done.status == "done" and done.lease_actor is None
    with pytest.raises(TaskDone):
        ledger.claim("t1", "a:1")
    assert ledger.reopen("t1").status == "open"
    assert ledger.claim("t1", "a:1").fence == 3
    assert kinds(ledger, "t1") == ["created", "claimed", "extended", "released", "claimed",
                                   "completed", "reopened", "claimed"]


def test_complete_without_a_lease_is_not_holder(ledger: Ledger) -> None:
    ledger.add("free")
    with pytest.raises(NotHolder):
        ledger.complete("free", "a:1")


def test_unknown_tasks(ledger: Ledger) -> None:
    assert ledger.status("nope") is None
    with pytest.raises(NotFound):
        ledger.show("nope")
    with pytest.raises(NotFound):
        ledger.extend("nope", "a:1")
    with pytest.raises(NotFound):
        ledger.complete("nope", "a:1")
    with pytest.raises(NotFound):
        ledger.reopen("nope")


def test_expiry_is_decided_by_the_store_clock(ledger: Ledger) -> None:
    ledger.claim("e1", "a:1", ttl=1)
    import time

    deadline = time.monotonic() + 10
    while ledger.show("e1").lease_valid(ledger.now()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    taken = ledger.claim("e1", "b:2", ttl=60)
    assert taken.fence == 2
    event = ledger.events("e1")[-1]
    assert event.details["previous_holder"] == "a:1"


def test_sweep_lists_and_clears_expired(ledger: Ledger) -> None:
    ledger.claim("s1", "a:1", ttl=1)
    ledger.claim("s2", "a:1", ttl=600)
    import time

    deadline = time.monotonic() + 10
    while not ledger.sweep():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [t.id for t in ledger.sweep()] == ["s1"]
    assert [t.id for t in ledger.sweep(auto_release=True)] == ["s1"]
    assert ledger.sweep() == []
    assert ledger.show("s1").status == "open"
    assert kinds(ledger, "s1")[-1] == "expired"


def test_next_takes_priority_then_age_and_batches(ledger: Ledger) -> None:
    ledger.add("low", priority=0)
    ledger.add("high", priority=5)
    ledger.add("low2", priority=0)
    first = ledger.next("w:1", ttl=60)
    assert [lease.task_id for lease in first] == ["high"]
    batch = ledger.next("w:2", ttl=60, count=10)
    assert [lease.task_id for lease in batch] == ["low", "low2"]
    assert all(lease.fence == 1 for lease in batch)
    assert ledger.next("w:3", ttl=60) == []
    claimed = [e for e in ledger.events() if e.kind == "claimed"]
    assert [e.details["via"] for e in claimed] == ["next"] * 3


def test_who_list_and_leases_of(ledger: Ledger) -> None:
    ledger.claim("a", "x:1", ttl=60)
    ledger.claim("b", "x:1", ttl=60)
    ledger.claim("c", "y:2", ttl=60)
    ledger.add("d")
    groups = dict(ledger.who())
    assert sorted(t.id for t in groups["x:1"]) == ["a", "b"]
    assert [lease.task_id for lease in ledger.leases_of("y:2")] == ["c"]
    assert [t.id for t in ledger.tasks(held=False)] == ["d"]
    assert [t.id for t in ledger.tasks(status="in_progress")] == ["a", "b", "c"]


def test_events_are_append_only(ledger: Ledger) -> None:
    sql_only(ledger.client.url if hasattr(ledger, "client") else "")
    ledger.claim("x", "a:1", ttl=60)
    store = ledger.store
    for statement in ("UPDATE events SET kind = 'forged'", "DELETE FROM events"):
        with pytest.raises(Refused, match="append-only"):
            with store._write() as tx:
                tx.cursor.execute(statement)
    assert kinds(ledger, "x") == ["created", "claimed"]
    assert ledger.events(limit=1)[0].kind == "claimed"


def test_hold_heartbeats_on_a_clone(ledger: Ledger) -> None:
    with ledger.hold("h1", "a:1", ttl=3, interval=0.2) as lease:
        import time

        deadline = time.monotonic() + 10
        while not any(e.kind == "extended" for e in ledger.events("h1")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert not lease.lost
    assert ledger.show("h1").lease_actor is None


def test_migrate_is_idempotent(db_url: str) -> None:
    with Ledger.open(db_url) as first:
        assert first.store.migrate() == []
    with Ledger.open(db_url) as second:
        second.claim("m", "a:1")
        assert second.store.migrate() == []


# -- the CLI on every backend ------------------------------------------------------------------
def test_cli_claim_conflict_status_done(cli) -> None:
    ok = cli("claim", "99927", "--actor", "john", "--session", "abc", "--ttl", "10m", "--json")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["lease_holder"] == "john:abc" and data["fence"] == 1 and data["lease_valid"]
    busy = cli("claim", "99927", "--actor", "mary", "--session", "def")
    assert busy.returncode == 1
    assert busy.stderr.startswith("Task 99927 held by john:abc until ")
    status = cli("status", "99927", "--json")
    assert json.loads(status.stdout)["lease_holder"] == "john:abc"
    gate = cli("check", "99927", "--actor", "mary", "--session", "def")
    assert gate.returncode == 1 and "BLOCKED" in gate.stdout
    done = cli("done", "99927", "--actor", "john", "--session", "abc")
    assert done.returncode == 0, done.stderr
    assert cli("show", "nope").returncode == 3
    log = cli("log", "99927", "--json")
    assert [e["kind"] for e in json.loads(log.stdout)] == ["created", "claimed", "completed"]


def test_cli_next_count_json(cli) -> None:
    for i in range(3):
        assert cli("add", f"n{i}", "--priority", str(i)).returncode == 0
    out = cli("next", "--count", "2", "--json", "--actor", "w", "--session", "1")
    assert out.returncode == 0, out.stderr
    assert [t["id"] for t in json.loads(out.stdout)] == ["n2", "n1"]
    one = cli("next", "--json", "--actor", "w", "--session", "2")
    assert json.loads(one.stdout)["id"] == "n0"
    none = cli("next", "--actor", "w", "--session", "3")
    assert none.returncode == 1 and "no task available" in none.stderr


def test_cli_migrate(cli, tmp_path) -> None:
    """migrate never creates a ledger (exit 78); init creates it and reports every migration it
    applied; then migrate has nothing to do."""
    sql_only(cli.db)
    from leasehold.store.sqlbase import migration_files
    from tests import pg

    dialect = "postgres" if cli.db.startswith("postgresql") else "sqlite"
    names = [f"{version:04d}_{name}" for version, name, _ in migration_files(dialect)]
    schema = pg.create_schema() if dialect == "postgres" else None
    cli.db = pg.url_for_schema(schema) if schema else str(tmp_path / "new" / "ledger.db")
    try:
        missing = cli("migrate", "--json")
        assert missing.returncode == 78 and "leasehold init" in missing.stderr
        assert dialect == "postgres" or not (tmp_path / "new").exists()
        first = cli("init", "--json")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["applied"] == names
        again = cli("migrate")
        assert again.returncode == 0 and again.stdout == "schema up to date\n"
        assert json.loads(cli("migrate", "--json").stdout) == {"applied": [], "repaired": []}
    finally:
        if schema:
            pg.drop_schema(schema)


def test_cli_migrate_text_names_each_migration(sqlite_cli, tmp_path) -> None:
    """A ledger made by an earlier version (unmarked, only its first migration applied) is
    recognised, and migrate names each migration it applies."""
    import sqlite3

    from leasehold.store.sqlbase import migration_files
    from leasehold.store.sqlite import split_statements

    files = migration_files("sqlite")
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "applied_at REAL NOT NULL)")
    version, name, sql = files[0]
    for statement in split_statements(open(sql, encoding="utf-8").read()):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    sqlite_cli.db = str(path)
    first = sqlite_cli("migrate")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "".join(f"applied {v:04d}_{n}\n" for v, n, _ in files[1:])


def test_lease_board_groups_by_holder_most_recently_active_first_and_pages(ledger: Ledger) -> None:
    import time

    ledger.claim("b1", "old:1", ttl=600)
    ledger.claim("b2", "old:1", ttl=600)
    ledger.claim("gone", "late:1", ttl=1)
    ledger.claim("c1", "new:1", ttl=600)
    ledger.claim("idle", "x:1", ttl=600)
    ledger.release("idle", "x:1")
    deadline = time.monotonic() + 10
    while ledger.show("gone").lease_valid(ledger.now()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ledger.extend("b1", "old:1")  # old:1 is now the most recently active holder
    tasks, counts = ledger.lease_board(100)
    assert [(t.lease_holder, t.id) for t in tasks] == [
        ("old:1", "b1"), ("old:1", "b2"), ("new:1", "c1"), ("late:1", "gone")]
    assert counts == {"leases": 4, "expired": 1, "holders": 3}
    assert not tasks[-1].lease_valid(ledger.now())  # past expiry, not swept: still on the board
    page, again = ledger.lease_board(2, offset=2)
    assert [t.id for t in page] == ["c1", "gone"] and again == counts
    ledger.sweep(auto_release=True)
    assert ledger.lease_board(100)[1] == {"leases": 3, "expired": 0, "holders": 2}
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
        with pytest.raises(InvalidInput):
            ledger.lease_board(**bad)  # type: ignore[arg-type]


def test_namespaces_name_the_next_ticket(ledger: Ledger) -> None:
    tickets = ledger.tickets
    tickets.add_namespace("NXT", "{prefix}-{seq}", by="a:1")
    assert dict((ns.prefix, c["next_ticket"]) for ns, c in tickets.namespaces()) == {"NXT": "NXT-1"}
    tickets.reserve("NXT", "a:1", count=2)
    tickets.abandon("NXT-2", "a:1")
    assert dict((ns.prefix, c["next_ticket"]) for ns, c in tickets.namespaces()) == {"NXT": "NXT-3"}
