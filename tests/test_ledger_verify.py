"""Ledger verification: hash chains, checkpoints, anchors and the tamper matrix, on SQLite and
PostgreSQL. Each tampering is done the way an owner of the file or tables would: around the
append-only triggers (dropped, or disabled, then put back so only the data is wrong)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager

import pytest

from leasehold import Ledger
from leasehold.chain import TABLES, format_anchor, parse_anchor, row_hash
from leasehold.verify import verify_ledger
from tests.conftest import CLI

ALICE, BOB, MALLORY = "alice:s1", "bob:s2", "mallory:s9"


def make_history(ledger: Ledger) -> None:
    """Every kind of append: grants, extends, releases, completion, reopen, forced release,
    ready-queue grants, dependencies, a reservation with its namespace, feed posts, a bypass."""
    ledger.claim("t1", ALICE, 60)
    ledger.extend("t1", ALICE, 120)
    ledger.complete("t1", ALICE)
    ledger.reopen("t1", BOB)
    ledger.claim("t1", BOB, 60)
    ledger.force_release("t1", "stuck", by=ALICE)
    ledger.claim("t2", ALICE, 60)
    ledger.release("t2", ALICE)
    ledger.add("t3", title="third")
    ledger.add_blocked("t4", "t3", title="fourth")
    ledger.next(BOB, 60)
    ledger.claim("t5", BOB, 60)
    ledger.feed.post("actionable", "fix it", ALICE, reserve="TK")
    ledger.feed.post("info", "hello", BOB)
    ledger.record_bypass([], ALICE, {"reason": "test"})


@contextmanager
def owner_sql(url: str):
    """``execute(sql)`` as the owner, with the append-only (and chain) triggers out of the way;
    they are put back afterwards, as a careful tamperer would."""
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            tables = ("events", "feed_posts", "reservations", "namespaces", "chain_checkpoints")
            for table in tables:
                conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            try:
                yield conn.execute
            finally:
                for table in tables:
                    conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    else:
        import sqlite3

        conn = sqlite3.connect(url, isolation_level=None)
        saved = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
        for name, _ in saved:
            conn.execute(f'DROP TRIGGER "{name}"')
        try:
            yield conn.execute
        finally:
            for _, sql in saved:
                conn.execute(sql)
            conn.close()


def first(report) -> str:  # type: ignore[no-untyped-def]
    assert not report.ok, "verify found nothing"
    return str(report.breaks[0])


def everything(report) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(str(b) for b in report.breaks)


def event_id(ledger: Ledger, task_id: str, kind: str, nth: int = 0) -> int:
    return [e.id for e in ledger.events(task_id) if e.kind == kind][nth]


@pytest.fixture
def history(db_url: str):  # type: ignore[no-untyped-def]
    with Ledger.open(db_url) as ledger:
        make_history(ledger)
        ledger.store.checkpoint()
        yield ledger


def test_an_honest_ledger_verifies_clean(history: Ledger) -> None:
    history.claim("t6", ALICE, 60)  # rows after the last checkpoint are checked by the chains
    report = verify_ledger(history.store)
    assert report.ok, everything(report)
    assert report.rows["events"] > 20 and report.rows["feed_posts"] == 2
    assert report.rows["reservations"] == 1 and report.rows["namespaces"] == 1
    assert report.tasks >= 5


def test_every_chained_row_carries_its_predecessors_hash(history: Ledger) -> None:
    """The stored hashes are the ones chain.py computes (on PostgreSQL the trigger computes
    them: this pins the two encodings together)."""
    with history.store.audit() as reader:
        for table in TABLES:
            previous: dict[object, str | None] = {}
            for row in reader.rows_by_id(table):
                key = row[TABLES[table][0]]
                assert row["prev_hash"] == previous.get(key)
                assert row["hash"] == row_hash(table, row["prev_hash"], row)
                previous[key] = row["hash"]


def test_edit_an_event(history: Ledger, db_url: str) -> None:
    target = event_id(history, "t2", "claimed")
    with owner_sql(db_url) as sql:
        sql(f"UPDATE events SET actor = 'mallory' WHERE id = {target}")
    assert first(verify_ledger(history.store)) == (
        f"events #{target}: hash does not match the row: the row was changed")


def test_delete_one_event(history: Ledger, db_url: str) -> None:
    target = event_id(history, "t1", "extended")
    after = event_id(history, "t1", "completed")
    with owner_sql(db_url) as sql:
        sql(f"DELETE FROM events WHERE id = {target}")
    text = first(verify_ledger(history.store))
    assert text.startswith(f"events #{after}: prev_hash does not match the previous row")


def test_delete_the_last_event_of_a_chain(history: Ledger, db_url: str) -> None:
    """No successor sees it: the checkpoint's count and the task row do."""
    target = event_id(history, "t5", "claimed")
    with owner_sql(db_url) as sql:
        sql(f"DELETE FROM events WHERE id = {target}")
    text = everything(verify_ledger(history.store))
    assert "tasks #t5: task row disagrees with its events" in text
    assert "rows were deleted" in text


def test_delete_a_whole_tasks_history(history: Ledger, db_url: str) -> None:
    with owner_sql(db_url) as sql:
        sql("DELETE FROM events WHERE task_id = 't2'")
    report = verify_ledger(history.store)
    assert first(report) == "tasks #t2: task has no events: its history was deleted"
    assert "rows were deleted" in everything(report)


def test_change_a_tasks_holder_in_place(history: Ledger, db_url: str) -> None:
    with owner_sql(db_url) as sql:
        sql("UPDATE tasks SET lease_actor = 'mallory' WHERE id = 't5'")
    text = first(verify_ledger(history.store))
    assert text.startswith("tasks #t5: task row disagrees with its events")
    assert "held by mallory:s2 but its events give it to bob:s2" in text


def test_insert_a_forged_event_with_a_valid_hash(history: Ledger, db_url: str) -> None:
    """A forger who computes the hash (or, on PostgreSQL, lets the trigger do it) still
    writes history the invariants refuse: a grant while bob's lease is valid, same fence."""
    task = history.status("t5")
    assert task is not None
    columns = "ts, kind, task_id, actor, session, fence, details"
    values = (history.now(), "claimed", "t5", "mallory", "s9", task.fence,
              json.dumps({"expires_at": history.now() + 600, "ttl": 600}))
    if db_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as conn:  # triggers on: hashed for us
            conn.execute(f"INSERT INTO events ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s)", values)
    else:
        with owner_sql(db_url) as sql:
            prev = sql("SELECT hash FROM events WHERE task_id = 't5' ORDER BY id DESC").fetchone()[0]
            new_id = sql("SELECT MAX(id) + 1 FROM events").fetchone()[0]
            row = dict(zip(columns.split(", "), values, strict=True), id=new_id)
            sql(f"INSERT INTO events (id, prev_hash, hash, {columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (new_id, prev, row_hash("events", prev, row), *values))
    text = everything(verify_ledger(history.store))
    assert "t5 granted to mallory:s9 while the lease of bob:s2" in text
    assert "fence of t5 went from 1 to 1, not +1" in text
    assert "tasks #t5: task row disagrees with its events" in text


def test_abandon_a_reservation_in_place(history: Ledger, db_url: str) -> None:
    with owner_sql(db_url) as sql:
        sql("UPDATE reservations SET status = 'abandoned', abandoned_at = 1")
    text = first(verify_ledger(history.store))
    assert text.startswith("reservations #1: TK-") and "is abandoned but its events never abandon it" in text


def test_delete_a_namespace_after_the_last_checkpoint(history: Ledger, db_url: str) -> None:
    """A namespace is a chain of one row: after the last checkpoint no chain and no checkpoint
    sees its deletion (and on SQLite its rowid is reused), but its reservations still name it.
    (On PostgreSQL a foreign key, which disabling the user triggers leaves on, refuses it.)"""
    history.tickets.reserve("ZZ", ALICE)
    if db_url.startswith("postgresql"):
        import psycopg

        with pytest.raises(psycopg.errors.ForeignKeyViolation), owner_sql(db_url) as sql:
            sql("DELETE FROM namespaces WHERE prefix = 'ZZ'")
        return
    with owner_sql(db_url) as sql:
        sql("DELETE FROM namespaces WHERE prefix = 'ZZ'")
    text = first(verify_ledger(history.store))
    assert text.startswith("reservations #") and "namespace ZZ is missing" in text


def test_insert_a_forged_event_without_a_hash(history: Ledger, db_url: str) -> None:
    with owner_sql(db_url) as sql:  # chain trigger off on PostgreSQL
        sql("INSERT INTO events (ts, kind, task_id, actor, session, details) "
            "VALUES (1, 'bypass', 'zz', 'mallory', 's9', '{}')")
    assert "row has no hash" in first(verify_ledger(history.store))


def test_a_dropped_trigger_is_reported_and_migrate_restores_it(cli: CLI, db_url: str) -> None:
    assert cli("claim", "t1", "--actor", "alice", "--session", "s1").returncode == 0
    if db_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER events_append_only_delete ON events")
            conn.execute("ALTER TABLE events DISABLE TRIGGER events_chain")
    else:
        import sqlite3

        with sqlite3.connect(db_url) as conn:
            conn.execute("DROP TRIGGER events_append_only_delete")
    broken = cli("verify", "--json")
    assert broken.returncode == 1, broken.stderr
    data = json.loads(broken.stdout)
    assert data["first_break"] == {
        "table": "events", "id": None,
        "what": "trigger events_append_only_delete is missing (run 'leasehold migrate' to restore it)"}
    text = cli("verify")
    assert text.returncode == 1 and text.stdout.startswith("BROKEN: events: trigger "
                                                           "events_append_only_delete is missing")
    repaired = cli("migrate")
    assert repaired.returncode == 0, repaired.stderr
    assert "restored trigger events_append_only_delete on events" in repaired.stdout
    if db_url.startswith("postgresql"):
        assert "re-enabled trigger events_chain on events" in repaired.stdout
    clean = cli("verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert cli("migrate").stdout.strip() == "schema up to date"


def test_the_operations_guards_are_checked_and_restored(cli: CLI, db_url: str) -> None:
    """operations (the idempotency keys) is append-only: a rewritten record would make a retry
    return a forged outcome. Its triggers are checked by verify and restored by migrate."""
    assert cli("claim", "t1", "--actor", "alice", "--session", "s1", "--op-id", "op-1").returncode == 0
    if db_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER operations_append_only ON operations")
            conn.execute("ALTER TABLE operations DISABLE TRIGGER operations_no_truncate")
        names = ("operations_append_only", "operations_no_truncate")
    else:
        import sqlite3

        with sqlite3.connect(db_url) as conn:
            conn.execute("DROP TRIGGER operations_append_only_delete")
            conn.execute("DROP TRIGGER operations_append_only_update")
            conn.execute("CREATE TRIGGER operations_append_only_update BEFORE UPDATE ON operations "
                         "WHEN 0 BEGIN SELECT 1; END")
        names = ("operations_append_only_delete", "operations_append_only_update")
    broken = cli("verify")
    assert broken.returncode == 1
    assert f"operations: trigger {names[0]} is missing" in broken.stdout, broken.stdout
    assert f"operations: trigger {names[1]} is disabled or altered" in broken.stdout, broken.stdout
    repaired = cli("migrate")
    assert repaired.returncode == 0, repaired.stderr
    assert f"restored trigger {names[0]} on operations" in repaired.stdout, repaired.stdout
    clean = cli("verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    if db_url.startswith("postgresql"):
        with psycopg.connect(db_url, autocommit=True) as conn:
            for statement in ("DELETE FROM operations", "TRUNCATE operations",
                              "UPDATE operations SET result = '{}'"):
                with pytest.raises(psycopg.Error, match="append-only"):
                    conn.execute(statement)
    else:
        with sqlite3.connect(db_url) as conn:
            for statement in ("DELETE FROM operations", "UPDATE operations SET result = '{}'"):
                with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                    conn.execute(statement)


def test_a_neutered_trigger_of_the_same_name_is_reported_and_restored(sqlite_url: str, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SQLite: a trigger replaced by one of the same name that never fires is as good as
    dropped; verify must not call it "in place", and migrate must put the real one back."""
    import sqlite3

    cli = CLI(sqlite_url, base_env, tmp_path)
    assert cli("claim", "t1", "--actor", "alice", "--session", "s1").returncode == 0
    with sqlite3.connect(sqlite_url) as conn:
        conn.execute("DROP TRIGGER events_append_only_update")
        conn.execute("CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events WHEN 0 "
                     "BEGIN SELECT 1; END")
    broken = cli("verify")
    assert broken.returncode == 1
    assert broken.stdout.startswith("BROKEN: events: trigger events_append_only_update is "
                                    "disabled or altered"), broken.stdout
    repaired = cli("migrate")
    assert repaired.returncode == 0, repaired.stderr
    assert cli("verify").returncode == 0
    with sqlite3.connect(sqlite_url) as conn, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE events SET actor = 'mallory'")


def test_a_replica_only_trigger_is_reported_and_re_enabled(pg_url: str, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL: ENABLE REPLICA TRIGGER leaves it enabled in the catalogue but it never fires
    in an ordinary session: as good as disabled."""
    import psycopg

    cli = CLI(pg_url, base_env, tmp_path)
    assert cli("claim", "t1", "--actor", "alice", "--session", "s1").returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE events ENABLE REPLICA TRIGGER events_append_only_delete")
    broken = cli("verify")
    assert broken.returncode == 1
    assert broken.stdout.startswith("BROKEN: events: trigger events_append_only_delete is "
                                    "disabled"), broken.stdout
    assert cli("migrate").returncode == 0
    assert cli("verify").returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as conn, pytest.raises(psycopg.Error, match="append-only"):
        conn.execute("DELETE FROM events")


def test_truncated_tail_past_an_anchor(history: Ledger, db_url: str) -> None:
    """The tail (a whole task, its checkpoint) removed cleanly enough that nothing inside the
    database disagrees any more: only the anchor kept elsewhere shows it."""
    history.claim("late", ALICE, 60)
    anchor = format_anchor(history.store.checkpoint())
    first_late = event_id(history, "late", "created")
    with owner_sql(db_url) as sql:
        sql(f"DELETE FROM events WHERE id >= {first_late}")
        sql("DELETE FROM tasks WHERE id = 'late'")
        top = sql("SELECT MAX(id) FROM chain_checkpoints WHERE tbl = 'events'").fetchone()[0]
        sql(f"DELETE FROM chain_checkpoints WHERE id = {top}")
        if not db_url.startswith("postgresql"):  # SQLite remembers the ids it drew
            sql("UPDATE sqlite_sequence SET seq = (SELECT MAX(id) FROM events) WHERE name = 'events'")
            sql("UPDATE sqlite_sequence SET seq = (SELECT MAX(id) FROM chain_checkpoints) "
                "WHERE name = 'chain_checkpoints'")
    assert verify_ledger(history.store).ok  # consistent without the anchor
    report = verify_ledger(history.store, parse_anchor(anchor))
    assert first(report).startswith("events: the anchor covers ids up to")
    assert "its tail was truncated" in first(report)


def test_sqlite_finds_a_deleted_tail_without_an_anchor(sqlite_url: str) -> None:
    """SQLite ids are dense and sqlite_sequence remembers the last one drawn: a tail deleted
    after the last checkpoint is found unless the tamperer also rewinds the sequence."""
    with Ledger.open(sqlite_url) as ledger:
        ledger.claim("a", ALICE, 60)
        ledger.store.checkpoint()
        ledger.claim("b", ALICE, 60)
        with owner_sql(sqlite_url) as sql:
            sql("DELETE FROM events WHERE task_id = 'b'")
            sql("DELETE FROM tasks WHERE id = 'b'")
        report = verify_ledger(ledger.store)
        assert first(report) == "events: ids 3..4 were drawn but are missing: the tail was deleted"


def test_rewritten_and_rehashed_history_is_caught_only_by_the_anchor(history: Ledger,
                                                                      db_url: str) -> None:
    """The owner rewrites an event and recomputes every hash after it and every checkpoint:
    the database is self-consistent again, the anchor is not."""
    anchor = parse_anchor(format_anchor(history.store.checkpoint()))
    target = event_id(history, "t2", "released")
    with owner_sql(db_url) as sql:
        sql(f"UPDATE events SET actor = 'mallory', session = 's9' WHERE id = {target}")
        # recompute the chain of t2 from the edited row, then every checkpoint of events
        with history.store.audit() as reader:
            rows = [dict(r) for r in reader.rows_by_chain("events") if r["task_id"] == "t2"]
        prev = None
        for row in rows:
            new = row_hash("events", prev, row)
            sql(f"UPDATE events SET prev_hash = {_lit(prev)}, hash = '{new}' WHERE id = {row['id']}")
            prev = new
        sql("DELETE FROM chain_checkpoints WHERE tbl = 'events'")
    _retake_events_checkpoints(history, db_url)
    assert verify_ledger(history.store).ok
    report = verify_ledger(history.store, anchor)
    assert "history up to id" in first(report) and "differs from the anchor" in first(report)


def _lit(value: str | None) -> str:
    return "NULL" if value is None else f"'{value}'"


def _retake_events_checkpoints(ledger: Ledger, db_url: str) -> None:
    """A genesis over ids 0..0 then one checkpoint over everything, as the tamperer would."""
    from leasehold.chain import RangeDigest, checkpoint_hash

    with ledger.store.audit() as reader:
        digest = RangeDigest()
        for row in reader.rows_by_id("events"):
            digest.add(int(row["id"]), row["hash"])
    empty = RangeDigest()
    g = checkpoint_hash("events", None, 0, 0, 0, empty.hexdigest(), "genesis")
    c = checkpoint_hash("events", g, 0, digest.last_id, digest.count, digest.hexdigest(), "checkpoint")
    with owner_sql(db_url) as sql:
        sql("INSERT INTO chain_checkpoints (tbl, kind, from_id, upto_id, row_count, digest, "
            f"prev_hash, hash, created_at) VALUES ('events', 'genesis', 0, 0, 0, "
            f"'{empty.hexdigest()}', NULL, '{g}', 0)")
        sql("INSERT INTO chain_checkpoints (tbl, kind, from_id, upto_id, row_count, digest, "
            f"prev_hash, hash, created_at) VALUES ('events', 'checkpoint', 0, {digest.last_id}, "
            f"{digest.count}, '{digest.hexdigest()}', '{g}', '{c}', 0)")


def test_malformed_hashes_are_reported_not_raised(history: Ledger, db_url: str) -> None:
    """A hash column holding something that is not hex (a checkpoint the least-privilege role
    may INSERT on PostgreSQL, or an owner's edit) is a break verify reports; anchor still runs."""
    with owner_sql(db_url) as sql:
        sql("INSERT INTO chain_checkpoints (tbl, kind, from_id, upto_id, row_count, digest, "
            "prev_hash, hash, created_at) VALUES ('feed_posts', 'checkpoint', 999, 1000, 0, "
            "'junk', 'junk', 'junk', 0)")
        sql(f"UPDATE events SET prev_hash = 'zz' WHERE id = {event_id(history, 't5', 'claimed')}")
    text = everything(verify_ledger(history.store))
    assert "checkpoint of feed_posts does not chain to the previous checkpoint" in text
    assert "prev_hash does not match the previous row of its chain" in text
    history.store.checkpoint()
    assert not verify_ledger(history.store).ok


def test_an_anchor_naming_a_table_twice_is_refused() -> None:
    """Otherwise the last entry wins: a wrong head before a right one would pass unchecked."""
    zero, good = "0" * 64, "c" * 64
    with pytest.raises(ValueError, match="events.*twice"):
        parse_anchor(f"leasehold-anchor/1 events=1:{zero} events=0:{good}")


def test_verify_and_anchor_cli(cli: CLI) -> None:
    for args in (("claim", "a"), ("claim", "b"), ("done", "a")):
        assert cli(*args, "--actor", "alice", "--session", "s1").returncode == 0
    anchor = cli("anchor")
    assert anchor.returncode == 0, anchor.stderr
    line = anchor.stdout.strip()
    assert line.startswith("leasehold-anchor/1 events=") and "\n" not in line
    ok = cli("verify", "--anchor", line)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("ledger verified:") and "matches the anchor" in ok.stdout
    data = json.loads(cli("verify", "--json").stdout)
    assert data["ok"] is True and data["first_break"] is None and data["rows"]["events"] == 5
    bad = cli("verify", "--anchor", "not an anchor")
    assert bad.returncode == 2 and "--anchor" in bad.stderr and "Traceback" not in bad.stderr
    assert "ledger verification" in cli("verify", "--help").stdout.lower()


def _older_ledger(db_url: str) -> None:
    """A ledger with the migrations before 0009 only, and history written then: a task with
    its event, a namespace, a reservation and a feed post."""
    from leasehold.store.sqlbase import migration_files

    postgres = db_url.startswith("postgresql")
    old = [m for m in migration_files("postgres" if postgres else "sqlite") if m[0] < 9]
    rows = [
        "INSERT INTO tasks (id, status, created_at, updated_at) VALUES ('old', 'open', 1, 1)",
        "INSERT INTO events (ts, kind, task_id, details) VALUES (1, 'created', 'old', '{}')",
        "INSERT INTO namespaces (prefix, format, created_at) VALUES ('OLD', '{prefix}-{seq:04d}', 1)",
        "INSERT INTO reservations (ticket_id, prefix, seq, actor, session, reserved_at) "
        "VALUES ('OLD-0001', 'OLD', 1, 'a', 's', 1)",
        "INSERT INTO feed_posts (ts, recorded_at, seat, kind, subject) VALUES (1, 1, 'a:s', 'info', 'hi')",
    ]
    create = ("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
              "applied_at DOUBLE PRECISION NOT NULL)")
    if postgres:
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(create)
            for version, name, file in old:
                conn.execute(open(file).read())
                conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, 0)", (version, name))
            for row in rows:
                conn.execute(row)
        return
    import sqlite3

    from leasehold.store.sqlite import split_statements

    conn = sqlite3.connect(db_url, isolation_level=None)
    conn.execute(create)
    for version, name, file in old:
        for statement in split_statements(open(file).read()):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
    for row in rows:
        conn.execute(row)
    conn.execute(f"PRAGMA user_version = {len(old)}")
    conn.close()


@pytest.fixture
def old_url(db_url: str, tmp_path):  # type: ignore[no-untyped-def]
    """A fresh, empty location on ``db_url``'s backend (``db_url`` itself is already a ledger)."""
    if not db_url.startswith("postgresql"):
        yield str(tmp_path / "old.db")
        return
    from tests import pg

    schema = pg.create_schema()
    try:
        yield pg.url_for_schema(schema)
    finally:
        pg.drop_schema(schema)


def test_migration_0009_covers_older_history_with_a_genesis_checkpoint(old_url: str) -> None:
    """A ledger written before the chains: its rows keep no hash, the genesis checkpoint taken
    when 0009 is applied covers them, new rows chain after them, and editing an old one is
    found."""
    db_url = old_url
    _older_ledger(db_url)
    with Ledger.open(db_url) as ledger:
        assert "0009_chains" in ledger.store.applied_on_open
        ledger.claim("old", ALICE, 60)
        ledger.tickets.reserve("OLD", ALICE)
        ledger.feed.post("info", "again", ALICE)
        report = verify_ledger(ledger.store)
        assert report.ok, everything(report)
        with ledger.store.audit() as reader:
            genesis = reader.first_checkpoints()
        assert {t: (g["kind"], g["upto_id"], g["row_count"]) for t, g in genesis.items()} == {
            t: ("genesis", 1, 1) for t in TABLES}
        with owner_sql(db_url) as sql:
            sql("UPDATE events SET ts = 2 WHERE id = 1")
            sql("UPDATE reservations SET actor = 'mallory' WHERE id = 1")
        text = everything(verify_ledger(ledger.store))
        assert "events: rows in ids 1..1 changed since checkpoint" in text
        assert "reservations: rows in ids 1..1 changed since checkpoint" in text


@pytest.mark.slow
def test_concurrent_writers_keep_every_chain_linear(db_url: str, tmp_path) -> None:
    """Real processes released together append to shared and private chains (claims on one
    task, claims on their own, audit events with no task, posts) while another takes
    checkpoints: no chain forks, and no checkpoint misses a row committed after it looked."""
    with Ledger.open(db_url) as ledger:
        ledger.add("shared")
    from tests.racers import Gate

    go = Gate(tmp_path / "go")
    script = (
        "import os, sys, time\n"
        "from leasehold import Ledger\n"
        "from leasehold.errors import LeaseholdError\n"
        "db, name, go = sys.argv[1], sys.argv[2], sys.argv[3]\n"
        "with Ledger.open(db, busy_timeout=60) as led:\n"
        "    from tests.racers import barrier\n"
        "    barrier(go, go + '.' + name)\n"  # ready, then wait at the test's Gate
        "    if name == 'anchor':\n"
        "        for i in range(8):\n"
        "            led.store.checkpoint()\n"
        "            time.sleep(0.05)\n"
        "        sys.exit(0)\n"
        "    for i in range(15):\n"
        "        who = name + ':s'\n"
        "        try:\n"
        "            led.claim('shared', who, 60)\n"
        "            led.release('shared', who)\n"
        "        except LeaseholdError:\n"
        "            pass\n"
        "        led.claim(name + str(i), who, 60)\n"
        "        led.record_bypass([], who, {'i': i})\n"
        "        if i % 5 == 0:\n"
        "            led.feed.post('info', 'hi', who)\n"
    )
    names = [f"w{i}" for i in range(6)] + ["anchor"]
    from tests.conftest import REPO

    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", script, db_url, n, str(go)], env=env) for n in names]
    from tests.conftest import wait_for

    wait_for(lambda: all(os.path.exists(f"{go}.{n}") for n in names), what="racers ready")
    go.release()
    assert all(p.wait(timeout=120) == 0 for p in procs)
    with Ledger.open(db_url) as ledger:
        report = verify_ledger(ledger.store)
        assert report.ok, everything(report)
        assert report.rows["events"] >= 6 * 15 * 3
        assert report.checkpoints > 4  # beyond the genesis ones


def test_demo_run_verifies_clean(cli: CLI) -> None:
    result = cli("demo", "--workers", "3", "--tasks", "8", "--ttl", "1s", "--json",
                 "--db", cli.db, db=False, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    verified = cli("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_replaced_trigger_function_is_reported_and_restored(pg_url: str, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL: CREATE OR REPLACE FUNCTION events_append_only() ... RETURN OLD leaves every
    trigger in place and enabled but lets UPDATE and DELETE through: verify compares each trigger
    function's body with the migrations' and migrate puts it back."""
    import psycopg

    cli = CLI(pg_url, base_env, tmp_path)
    assert cli("claim", "t1", "--actor", "alice", "--session", "s1").returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger "
                     "LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$")
        conn.execute("CREATE OR REPLACE FUNCTION leasehold_chain_events() RETURNS trigger "
                     "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$")
    broken = cli("verify")
    assert broken.returncode == 1
    assert "events: trigger events_append_only_delete is disabled or altered" in broken.stdout, broken.stdout
    assert "events: trigger events_chain is disabled or altered" in broken.stdout, broken.stdout
    repaired = cli("migrate")
    assert repaired.returncode == 0, repaired.stderr
    assert "restored function events_append_only() of trigger" in repaired.stdout, repaired.stdout
    assert "restored function leasehold_chain_events() of trigger events_chain" in repaired.stdout
    clean = cli("verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error, match="append-only"):
            conn.execute("DELETE FROM events")
        pinned = conn.execute("SELECT proconfig FROM pg_proc WHERE proname = 'events_append_only' "
                              "AND pronamespace = current_schema()::regnamespace").fetchone()[0]
        assert pinned is not None and pinned[0].endswith(", pg_temp"), pinned
