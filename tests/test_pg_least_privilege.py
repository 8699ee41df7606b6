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
        ledger.share("t1", ALICE, ["s7"])
        assert ledger.shared_among(["t1"]) == {"t1": ["s7"]}
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
    # bearer tokens of `leasehold serve`: an admin token or an un-revoked one would escalate
    ("INSERT INTO tokens (id, hash, actor, role, created_at) VALUES ('x', 'h', 'mallory', "
     "'admin', 0)", "permission denied for table tokens"),
    ("UPDATE tokens SET revoked_at = NULL", "permission denied for table tokens"),
    ("DELETE FROM lease_shares", "permission denied for table lease_shares"),
    ("UPDATE lease_shares SET session = 's9'", "permission denied for table lease_shares"),
    ("INSERT INTO lease_shares (task_id, fence, session, shared_by, shared_at) "
     "VALUES ('t1', 1, 's9', 'alice:s1', 0)",
     "share of task t1 with s9 written without its shared event"),
    ("CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
     "$$ BEGIN RETURN OLD; END $$", "permission denied for schema"),
    # the feed's reduced state: read-only to the role, written by the SECURITY DEFINER functions
    # of migration 0013 only beside a post of the item in the same transaction
    ("UPDATE feed_items SET state = 'DONE'", "permission denied for table feed_items"),
    ("DELETE FROM feed_items", "permission denied for table feed_items"),
    ("INSERT INTO feed_items (item, state, subject, post, seat, filed_at, filed_key) "
     "VALUES ('G-1', 'AWAITING_CLAIM', 'x', 1, 'm:s', 0, '0')", "permission denied for table feed_items"),
    ("TRUNCATE feed_items", "permission denied for table feed_items"),
    ("UPDATE feed_state SET rebuilt = 0", "permission denied for table feed_state"),
    ("SELECT leasehold_feed_item_put(1, 'TK-0001', 'DONE', NULL, 0, 'x', 1, 'm:s', 0, '0', NULL, 0, '[]')",
     "feed item TK-0001 written without a post of it in the same transaction"),
    ("SELECT leasehold_feed_item_put(NULL, 'TK-0001', NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
     "NULL, NULL, NULL, NULL)", "feed item TK-0001 written without a post of it in the same transaction"),
    ("SELECT leasehold_feed_items_clear()", "feed_items is rebuilt only once"),
]


def test_the_role_cannot_rewrite_history(pg_url: str, app_role, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    role, url = app_role
    with Ledger.open(pg_url) as owner:
        owner.claim("t1", ALICE, 60)
        owner.share("t1", ALICE, ["s8"])
        owner.tickets.reserve("TK", ALICE)
        owner.feed.post("info", "hello", BOB)
        assert owner.feed.post("actionable", "fix it", ALICE, reserve="TK").item == "TK-0002"
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
        # so does a forged feed state written beside a genuine post of the item
        with conn.transaction():
            post = conn.execute("INSERT INTO feed_posts (ts, recorded_at, seat, kind, item, subject) "
                                "VALUES (extract(epoch FROM now()), extract(epoch FROM now()), "
                                "'mallory:s9', 'info', 'TK-0002', 'hi') "
                                "RETURNING id").fetchone()[0]
            conn.execute("SELECT leasehold_feed_item_put(%s, 'TK-0002', 'DONE', NULL, 0, 'x', 1, "
                         "'m:s', 0, '0', NULL, 0, '[]')", (post,))
    assert len(refused) == len(FORBIDDEN)
    made = CLI(url, base_env, tmp_path)("token", "create", "--actor", "mallory", "--role", "admin")
    assert made.returncode == 78 and "permission denied" in made.stderr, made.stderr
    assert "Traceback" not in made.stderr
    with Ledger.open(url) as ledger:
        report = verify_ledger(ledger.store)
        text = "\n".join(str(b) for b in report.breaks)
        assert "t1 granted to mallory:s9 while the lease of alice:s1" in text
        assert "feed_items #TK-0002: the state of TK-0002 differs from what its posts reduce to " \
            "(state 'DONE' not 'AWAITING_CLAIM'" in text, text


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



def test_the_role_cannot_insert_a_forged_checkpoint(pg_url: str, app_role, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A checkpoint claiming ids the table does not have (upto_id = 10^12) would leave every later
    checkpoint and anchor covering nothing: the role's checkpoints are checked against the table."""
    import psycopg

    role, url = app_role
    with Ledger.open(pg_url) as owner:
        owner.claim("t1", ALICE, 60)
    assert CLI(pg_url, base_env, tmp_path)("db", "grant", role).returncode == 0
    last = ("FROM chain_checkpoints WHERE tbl = 'events' ORDER BY id DESC LIMIT 1")
    forged = {
        "far upto_id": "SELECT 'events', 'checkpoint', upto_id, 1000000000000, 0, digest, hash, hash, 0 ",
        "wrong count": "SELECT 'events', 'checkpoint', upto_id, upto_id + 1, 5, digest, hash, hash, 0 ",
        "not after the last": "SELECT 'events', 'checkpoint', 0, 1000000000000, 0, digest, NULL, hash, 0 ",
        "a second genesis": "SELECT 'events', 'genesis', upto_id, upto_id, 0, digest, hash, hash, 0 ",
    }
    with psycopg.connect(url, autocommit=True) as conn:
        for why, select in forged.items():
            with pytest.raises(psycopg.Error) as caught:
                conn.execute("INSERT INTO chain_checkpoints (tbl, kind, from_id, upto_id, row_count, "
                             "digest, prev_hash, hash, created_at) " + select + last)
            assert "checkpoint of events" in str(caught.value), (why, str(caught.value))
    with Ledger.open(url) as ledger:
        ledger.claim("t2", BOB, 60)
        heads = ledger.store.checkpoint()  # the ledger's own checkpoints pass the check
        assert heads["events"][0] == max(e.id for e in ledger.store.events())
        report = verify_ledger(ledger.store)
        assert report.ok, [str(b) for b in report.breaks]


def test_a_temporary_events_table_does_not_feed_the_chain_trigger(pg_url: str, app_role, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The chain trigger reads the previous row's hash: a temporary ``events`` of the role's own
    must not supply it (db grant pins the chain functions' search_path, pg_temp last)."""
    import psycopg

    role, url = app_role
    with Ledger.open(pg_url) as owner:
        owner.claim("t1", ALICE, 60)
    assert CLI(pg_url, base_env, tmp_path)("db", "grant", role).returncode == 0
    with psycopg.connect(url, autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        real = conn.execute(f"SELECT hash FROM \"{schema}\".events WHERE task_id = 't1' "
                            "ORDER BY id DESC LIMIT 1").fetchone()[0]
        conn.execute("CREATE TEMP TABLE events (id bigint, task_id text, hash text)")
        conn.execute("INSERT INTO pg_temp.events VALUES (999999, 't1', repeat('ab', 32))")
        prev = conn.execute(f"INSERT INTO \"{schema}\".events (ts, kind, task_id, actor, session, "
                            "details) VALUES (0, 'note', 't1', 'alice', 's1', '{}') "
                            "RETURNING prev_hash").fetchone()[0]
        assert prev == real
        pinned = conn.execute("SELECT proconfig FROM pg_proc WHERE proname = 'leasehold_chain_events' "
                              "AND pronamespace = current_schema()::regnamespace").fetchone()[0]
        assert pinned == [f"search_path={schema}, pg_temp"], pinned


@pytest.fixture
def bare_role(pg_schema_url: str):  # type: ignore[no-untyped-def]
    role = "lh_old_" + uuid.uuid4().hex[:10]
    with pg.admin() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield role
    finally:
        with pg.admin() as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def test_migration_0013_takes_the_feed_state_writes_from_roles_granted_before(pg_schema_url: str, bare_role: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A ledger whose role was granted before migration 0013 (full DML on feed_items and
    feed_state, as `db grant` gave then): applying 0013 leaves that role SELECT only."""
    import psycopg

    from leasehold.store import postgres

    pg_url, role = pg_schema_url, bare_role
    every = postgres.migration_files
    with monkeypatch.context() as patch:  # a ledger of the code before 0013
        patch.setattr(postgres, "migration_files", lambda d: [m for m in every(d) if m[0] < 13])
        with Ledger.open(pg_url, create=True) as old:
            assert "0013_tamper_checks" not in old.store.applied_on_open
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'GRANT USAGE ON SCHEMA "{conn.execute("SELECT current_schema()").fetchone()[0]}" TO "{role}"')
        conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON feed_items, feed_state TO "{role}"')
    with Ledger.open(pg_url) as ledger:
        assert "0013_tamper_checks" in ledger.store.applied_on_open
        assert verify_ledger(ledger.store).ok
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for table in ("feed_items", "feed_state"):
            can = {p: conn.execute("SELECT has_table_privilege(%s, %s, %s)", (role, table, p)).fetchone()[0]
                   for p in ("SELECT", "INSERT", "UPDATE", "DELETE")}
            assert can == {"SELECT": True, "INSERT": False, "UPDATE": False, "DELETE": False}, (table, can)


def test_the_role_cannot_take_an_id_the_ledger_never_drew(pg_url: str, app_role, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An INSERT ... OVERRIDING SYSTEM VALUE with an id above every id the sequence handed out
    would sit at the head of its chain for good: each later row of that chain draws a lower id
    (verify reports a break on every honest row), and on events the task's later operations are
    refused by tasks_explained (its latest event by id is never the transaction's own). The
    chain triggers refuse such an id (migration 0014); the task stays usable."""
    import psycopg

    role, url = app_role
    with Ledger.open(pg_url) as owner:
        owner.claim("t1", ALICE, 60)
        owner.tickets.add_namespace("TK")
        owner.feed.post("actionable", "fix it", ALICE, reserve="TK")
    assert CLI(pg_url, base_env, tmp_path)("db", "grant", role).returncode == 0
    forged = [
        "INSERT INTO events (id, ts, kind, task_id, actor, session, details) OVERRIDING SYSTEM VALUE "
        "VALUES (9223372036854775807, extract(epoch FROM now()), 'note', 't1', 'mallory', 's9', '{}')",
        "INSERT INTO feed_posts (id, ts, recorded_at, seat, kind, item, subject) OVERRIDING SYSTEM VALUE "
        "VALUES (1000000, extract(epoch FROM now()), extract(epoch FROM now()), 'mallory:s9', 'info', "
        "'TK-0001', 'hi')",
        "INSERT INTO reservations (id, ticket_id, prefix, period, seq, actor, session, reserved_at) "
        "OVERRIDING SYSTEM VALUE VALUES (1000000, 'TK-9999', 'TK', '', 9999, 'mallory', 's9', 0)",
        "INSERT INTO namespaces (id, prefix, format, created_at) OVERRIDING SYSTEM VALUE "
        "VALUES (1000000, 'ZZ', '{prefix}-{seq:04d}', 0)",
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in forged:
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(statement)
            assert "was not drawn" in str(caught.value), (statement, str(caught.value))
    with Ledger.open(url) as ledger:
        ledger.complete("t1", ALICE)
        ledger.feed.post("claimed", "mine", BOB, item="TK-0001")
        ledger.tickets.reserve("TK", BOB)
        report = verify_ledger(ledger.store)
        assert report.ok, "\n".join(str(b) for b in report.breaks)


def test_the_owner_functions_run_only_for_the_granted_role(pg_schema_url: str, bare_role: str, base_env, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The SECURITY DEFINER functions run with the owner's rights. PostgreSQL lets PUBLIC
    execute a new function, so any role that could reach the schema (every role reaches
    `public`) could hold a SHARE lock on events (every write of the ledger waits) or mark the
    feed's rebuild done. Migration 0014 takes EXECUTE from PUBLIC and gives it to the roles
    granted before it; `db grant` gives it with the rest."""
    import psycopg

    from leasehold.store import postgres

    pg_url, role = pg_schema_url, bare_role
    every = postgres.migration_files
    with monkeypatch.context() as patch:  # a ledger, and a role granted, before 0014
        patch.setattr(postgres, "migration_files", lambda d: [m for m in every(d) if m[0] < 14])
        with Ledger.open(pg_url, create=True) as old:
            old.claim("t1", ALICE, 60)
            old.store.grant_role(role)
    outsider = "lh_out_" + uuid.uuid4().hex[:10]
    with pg.admin() as conn:
        conn.execute(f'CREATE ROLE "{outsider}" LOGIN')
    try:
        with Ledger.open(pg_url) as ledger:
            assert "0014_drawn_ids" in ledger.store.applied_on_open
        with psycopg.connect(pg_url, autocommit=True) as conn:
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
            conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{outsider}"')  # as on `public`
        with psycopg.connect(_as_role(pg_url, outsider), autocommit=True) as conn:
            for call in ("leasehold_checkpoint_lock('events')", "leasehold_feed_state_rebuilt()",
                         "leasehold_feed_items_clear()",
                         "leasehold_feed_item_put(1, 'X-1', 'DONE', NULL, 0, 'x', 1, 'm:s', 0, '0', "
                         "NULL, 0, '[]')"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"SELECT {call}")
        with Ledger.open(_as_role(pg_url, role)) as ledger:  # the role granted before 0014
            ledger.feed.post("actionable", "fix it", BOB, item="FX-1")
            ledger.complete("t1", ALICE)
            ledger.store.checkpoint()
            assert verify_ledger(ledger.store).ok
    finally:
        with pg.admin() as conn:
            conn.execute(f'DROP OWNED BY "{outsider}"')
            conn.execute(f'DROP ROLE "{outsider}"')
