"""`leasehold db grant ROLE`: a PostgreSQL role that runs every ledger operation but cannot
rewrite history. The tests connect as that role and try each forbidden statement."""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from leasehold import Ledger
from leasehold.verify import verify_ledger
from tests import pg
from tests.conftest import CLI

ALICE, BOB = "alice:s1", "bob:s2"


def _as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(role)}@{host}"))


@pytest.fixture
def app_role(pg_url: str):  # type: ignore[no-untyped-def]
    role = "lh_app_" + uuid.uuid4().hex[:10]
    with pg.admin() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield role, _as_role(pg_url, role)
    finally:
        with pg.admin() as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def test_the_role_runs_every_operation(pg_url: str, app_role, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    role, url = app_role
    with Ledger.open(pg_url):
        pass  # the owner creates the schema
    granted = CLI(pg_url, base_env, tmp_path)("db", "grant", role)
    assert granted.returncode == 0, granted.stderr
    with Ledger.open(url) as ledger:
        ledger.claim("t1", ALICE, 60)
        ledger.extend("t1", ALICE, 120)
        ledger.complete("t1", ALICE)
        ledger.reopen("t1", BOB)
        ledger.claim("t1", BOB, 60)
        ledger.force_release("t1", "stuck", by=ALICE)
        ledger.add("t3", title="third")
        ledger.add_blocked("t4", "t3", title="fourth")
        ledger.undepend("t4", "t3")
        ledger.next(BOB, 60)
        ledger.heartbeat_session("s2")
        ledger.release_session("s2")
        ticket = ledger.tickets.reserve("TK", ALICE)[0].ticket_id
        ledger.tickets.abandon(ticket, ALICE, "not needed")
        ledger.feed.post("actionable", "fix it", ALICE, reserve="TK")
        ledger.feed.post("info", "hello", BOB)
        ledger.record_bypass([], ALICE, {"reason": "test"})
        ledger.store.checkpoint()
        report = verify_ledger(ledger.store)
        assert report.ok, [str(b) for b in report.breaks]


FORBIDDEN = [
    ("UPDATE events SET actor = 'mallory'", "permission denied for table events"),
    ("DELETE FROM events", "permission denied for table events"),
    ("TRUNCATE events", "permission denied for table events"),
    ("ALTER TABLE events DISABLE TRIGGER USER", "must be owner of table events"),
    ("DROP TRIGGER events_append_only_delete ON events", "must be owner of"),
    ("ALTER TABLE events DISABLE TRIGGER events_chain", "must be owner of table events"),
    ("UPDATE feed_posts SET subject = 'x'", "permission denied for table feed_posts"),
    ("DELETE FROM feed_posts", "permission denied for table feed_posts"),
    ("DELETE FROM namespaces", "permission denied for table namespaces"),
    ("UPDATE namespaces SET prefix = prefix", "namespaces are immutable"),
    ("UPDATE reservations SET actor = 'mallory'", "permission denied for table reservations"),
    ("DELETE FROM reservations", "permission denied for table reservations"),
    ("DELETE FROM chain_checkpoints", "permission denied for table chain_checkpoints"),
    ("DELETE FROM operations", "permission denied for table operations"),
    ("ALTER TABLE tasks DISABLE TRIGGER tasks_explained", "must be owner of table tasks"),
    ("UPDATE tasks SET lease_actor = 'mallory' WHERE id = 't1'",
     "task t1 changed without its event in the same transaction"),
    ("UPDATE tasks SET fence = fence + 1 WHERE id = 't1'",
     "task t1 changed without its event in the same transaction"),
    ("INSERT INTO tasks (id, status, created_at, updated_at) VALUES ('x', 'done', 0, 0)",
     "task x changed without its event in the same transaction"),
    ("CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
     "$$ BEGIN RETURN OLD; END $$", "permission denied for schema"),
]


def test_the_role_cannot_rewrite_history(pg_url: str, app_role, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    role, url = app_role
    with Ledger.open(pg_url) as owner:
        owner.claim("t1", ALICE, 60)
        owner.tickets.reserve("TK", ALICE)
        owner.feed.post("info", "hello", BOB)
        owner.store.checkpoint()
    assert CLI(pg_url, base_env, tmp_path)("db", "grant", role).returncode == 0
    refused = []
    with psycopg.connect(url, autocommit=True) as conn:
        for statement, message in FORBIDDEN:
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(statement)
            assert message in str(caught.value), (statement, str(caught.value))
            refused.append(statement)
        # a forged task change with a forged event passes the trigger, and verify finds it
        with conn.transaction():
            conn.execute("INSERT INTO events (ts, kind, task_id, actor, session, fence, details) "
                         "VALUES (extract(epoch FROM now()), 'claimed', 't1', 'mallory', 's9', 1, "
                         "'{\"expires_at\": 9999999999}')")
            conn.execute("UPDATE tasks SET lease_actor = 'mallory', lease_session = 's9' WHERE id = 't1'")
    assert len(refused) == len(FORBIDDEN)
    with Ledger.open(url) as ledger:
        report = verify_ledger(ledger.store)
        text = "\n".join(str(b) for b in report.breaks)
        assert "t1 granted to mallory:s9 while the lease of alice:s1" in text


def test_grant_refuses_an_owner_and_sqlite(pg_url: str, cli: CLI, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    owner = CLI(pg_url, base_env, tmp_path)("db", "grant", "postgres")
    assert owner.returncode == 2 and "superuser" in owner.stderr
    missing = CLI(pg_url, base_env, tmp_path)("db", "grant", "no_such_role_x")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    if not cli.db.startswith("postgresql"):
        lite = cli("db", "grant", "someone")
        assert lite.returncode == 2 and "PostgreSQL" in lite.stderr


def test_a_temporary_table_does_not_shadow_the_trigger_s_tables(pg_url: str, app_role, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """pg_temp comes first in the search_path for tables: a temporary ``tasks`` (or ``events``)
    of the role's own must not answer the ``tasks_explained`` trigger's queries."""
    import psycopg

    role, url = app_role
    with Ledger.open(pg_url) as owner:
        owner.claim("t1", ALICE, 60)
    assert CLI(pg_url, base_env, tmp_path)("db", "grant", role).returncode == 0
    with psycopg.connect(url, autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        conn.execute(f'CREATE TEMP TABLE tasks (LIKE "{schema}".tasks)')
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(f"UPDATE \"{schema}\".tasks SET lease_actor = 'mallory' WHERE id = 't1'")
        assert "task t1 changed without its event" in str(caught.value)
        conn.execute("DROP TABLE pg_temp.tasks")
        conn.execute("CREATE TEMP TABLE events (id bigint, task_id text, kind text, actor text, "
                     "session text, fence bigint)")
        with pytest.raises(psycopg.Error) as caught:
            with conn.transaction():
                conn.execute("INSERT INTO pg_temp.events VALUES (1, 't1', 'claimed', 'mallory', 's9', 1)")
                conn.execute(f"UPDATE \"{schema}\".tasks SET lease_actor = 'mallory', "
                             "lease_session = 's9' WHERE id = 't1'")
        assert "task t1 changed without its event" in str(caught.value)
