"""The checks every ledger carries (migration 0013, both stores), whatever its roles: the
checkpoint check, the share check and the tokens' no-delete triggers are required by `verify`
and restored by `migrate`; a forged checkpoint or a share without its event is refused at the
write; a hand-written share, or a rewritten feed state (feed_items), is reported by verify."""

from __future__ import annotations

import json

import pytest

from leasehold import Ledger
from leasehold.verify import verify_ledger
from tests.conftest import CLI
from tests.test_ledger_verify import everything, owner_sql

ALICE, BOB = "alice:s1", "bob:s2"

#: dialect -> the triggers (table, name) of this file's checks
CHECKS = {
    "postgres": [("tokens", "tokens_no_delete"), ("tokens", "tokens_no_truncate"),
                 ("chain_checkpoints", "chain_checkpoints_checked"),
                 ("lease_shares", "lease_shares_explained")],
    "sqlite": [("tokens", "tokens_no_delete"), ("chain_checkpoints", "chain_checkpoints_checked"),
               ("lease_shares", "lease_shares_explained")],
}


def _dialect(url: str) -> str:
    return "postgres" if url.startswith("postgresql") else "sqlite"


def _raw(url: str):  # type: ignore[no-untyped-def]
    if url.startswith("postgresql"):
        import psycopg

        return psycopg.connect(url, autocommit=True), psycopg.Error
    import sqlite3

    return sqlite3.connect(url, isolation_level=None), sqlite3.DatabaseError


@pytest.mark.parametrize("how", ["dropped", "disabled"])
def test_the_checks_are_required_by_verify_and_restored_by_migrate(cli: CLI, db_url: str, how: str) -> None:
    dialect = _dialect(db_url)
    if dialect == "sqlite" and how == "disabled":
        pytest.skip("SQLite cannot disable a trigger (a neutered one counts as altered)")
    assert cli("claim", "t1", "--actor", "alice", "--session", "s1").returncode == 0
    conn, _ = _raw(db_url)
    with conn:
        for table, name in CHECKS[dialect]:
            if how == "dropped":
                conn.execute(f"DROP TRIGGER {name} ON {table}" if dialect == "postgres"
                             else f"DROP TRIGGER {name}")
            else:
                conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {name}")
    broken = cli("verify", "--json")
    assert broken.returncode == 1, broken.stderr
    found = {(b["table"], b["what"]) for b in json.loads(broken.stdout)["breaks"]}
    word = "missing" if how == "dropped" else "disabled or altered"
    for table, name in CHECKS[dialect]:
        assert (table, f"trigger {name} is {word} (run 'leasehold migrate' to restore it)") in found
    repaired = cli("migrate")
    assert repaired.returncode == 0, repaired.stderr
    for table, name in CHECKS[dialect]:
        verb = "restored" if how == "dropped" else "re-enabled"
        assert f"{verb} trigger {name} on {table}" in repaired.stdout, repaired.stdout
    clean = cli("verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    conn, error = _raw(db_url)
    with conn:  # in force again
        conn.execute("INSERT INTO tokens (id, hash, actor, role, created_at) "
                     "VALUES ('tk1', 'h1', 'alice', 'reader', 0)")
        with pytest.raises(error, match="never deleted"):
            conn.execute("DELETE FROM tokens")
        with pytest.raises(error, match="checkpoint"):
            conn.execute("INSERT INTO chain_checkpoints (tbl, kind, from_id, upto_id, row_count, "
                         "digest, prev_hash, hash, created_at) VALUES ('events', 'checkpoint', 0, "
                         "1000000000000, 0, 'x', NULL, 'x', 0)")


def test_a_replaced_check_function_is_reported_and_restored(pg_url: str, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL: the check functions are compared with migration 0013's bodies."""
    import psycopg

    cli = CLI(pg_url, base_env, tmp_path)
    assert cli("claim", "t1", "--actor", "alice", "--session", "s1").returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for fn in ("leasehold_checkpoint_checked", "leasehold_shares_explained",
                   "leasehold_tokens_no_delete"):
            conn.execute(f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql "
                         "AS $$ BEGIN RETURN NEW; END $$")
    broken = cli("verify")
    assert broken.returncode == 1
    for name in ("chain_checkpoints_checked", "lease_shares_explained", "tokens_no_delete"):
        assert f"trigger {name} is disabled or altered" in broken.stdout, broken.stdout
    repaired = cli("migrate")
    assert "restored function leasehold_checkpoint_checked() of trigger chain_checkpoints_checked" \
        in repaired.stdout, repaired.stdout
    assert cli("verify").returncode == 0


def test_a_forged_checkpoint_is_refused_by_the_owner_too(db_url: str) -> None:
    """Without `db grant`: a checkpoint that does not match its table (ids it does not have, a
    wrong count, not after the last one, a second genesis) is refused on every ledger."""
    with Ledger.open(db_url) as ledger:
        ledger.claim("t1", ALICE, 60)
        ledger.store.checkpoint()
        ledger.claim("t2", BOB, 60)
    last = " FROM chain_checkpoints WHERE tbl = 'events' ORDER BY id DESC LIMIT 1"
    forged = {
        "far upto_id": "SELECT 'events', 'checkpoint', upto_id, 1000000000000, 1, digest, hash, hash, 0",
        "wrong count": "SELECT 'events', 'checkpoint', upto_id, upto_id + 1, 5, digest, hash, hash, 0",
        "not after the last": "SELECT 'events', 'checkpoint', 0, upto_id + 1, 1, digest, NULL, hash, 0",
        "a second genesis": "SELECT 'events', 'genesis', upto_id, upto_id + 1, 1, digest, hash, hash, 0",
        "not a chained table": "SELECT 'tasks', 'checkpoint', 0, 0, 0, digest, NULL, hash, 0",
    }
    conn, error = _raw(db_url)
    with conn:
        for why, select in forged.items():
            with pytest.raises(error, match="checkpoint") as caught:
                conn.execute("INSERT INTO chain_checkpoints (tbl, kind, from_id, upto_id, row_count, "
                             "digest, prev_hash, hash, created_at) " + select + last)
            assert caught.value is not None, why
    with Ledger.open(db_url) as ledger:
        heads = ledger.store.checkpoint()  # the ledger's own checkpoint passes
        assert heads["events"][0] == max(e.id for e in ledger.store.events())
        report = verify_ledger(ledger.store)
        assert report.ok, everything(report)


def test_a_share_without_its_event_is_refused_and_reported(db_url: str) -> None:
    with Ledger.open(db_url) as ledger:
        ledger.claim("t1", ALICE, 60)
        ledger.share("t1", ALICE, ["s7", "s8"])
        ledger.share("t1", ALICE, ["s8", "s9"])  # s8 again: only s9 is new
        assert ledger.shared_among(["t1"]) == {"t1": ["s7", "s8", "s9"]}
        shared = [e for e in ledger.events("t1") if e.kind == "shared"]
        assert [e.details["sessions"] for e in shared] == [["s7", "s8"], ["s9"]]
        assert verify_ledger(ledger.store).ok
    insert = ("INSERT INTO lease_shares (task_id, fence, session, shared_by, shared_at) "
              "VALUES ('t1', 1, 'mallory', 'alice:s1', 0)")
    conn, error = _raw(db_url)
    with conn:
        with pytest.raises(error, match="share"):
            conn.execute(insert)
    with owner_sql(db_url) as sql:  # around the check, as an owner can
        if db_url.startswith("postgresql"):
            sql("ALTER TABLE lease_shares DISABLE TRIGGER lease_shares_explained")
            sql(insert)
            sql("ALTER TABLE lease_shares ENABLE TRIGGER lease_shares_explained")
        else:  # (every trigger is dropped meanwhile, and put back after)
            sql(insert)
    with Ledger.open(db_url) as ledger:
        text = everything(verify_ledger(ledger.store))
        assert ("lease_shares #t1/1/mallory: share of t1 (fence 1) with mallory by alice:s1 has no "
                "shared event") in text, text


def test_a_forged_shared_event_outside_a_lease_is_reported(db_url: str) -> None:
    with Ledger.open(db_url) as ledger:
        ledger.claim("t1", ALICE, 60)
        ledger.release("t1", ALICE)
        ledger.store.checkpoint()
    with Ledger.open(db_url) as ledger, ledger.store._write() as tx:
        tx.event("shared", "t1", "alice", "s1", 1, sessions=["mallory"])
        tx.run("insert_share", id="t1", fence=1, session="mallory", by="alice:s1")
    with Ledger.open(db_url) as ledger:
        text = everything(verify_ledger(ledger.store))
        assert "t1 shared without a valid lease of that holder and fence" in text, text


def test_a_rewritten_feed_state_is_reported(db_url: str) -> None:
    """feed_items is derived from the posts: verify recomputes each item's row."""
    with Ledger.open(db_url) as ledger:
        ledger.feed.post("actionable", "fix it", ALICE, reserve="TK")
        ledger.feed.post("actionable", "and this", BOB, item="X-1")
        ledger.feed.post("claimed", "mine", BOB, item="X-1")
        ledger.feed.post("info", "hello", BOB)
        item = ledger.feed.queue()[0]["item"]
        assert verify_ledger(ledger.store).ok
    conn, _ = _raw(db_url)
    with conn:
        conn.execute(f"UPDATE feed_items SET state = 'DONE' WHERE item = '{item}'")
        conn.execute("DELETE FROM feed_items WHERE item = 'X-1'")
        conn.execute("INSERT INTO feed_items (item, state, subject, post, seat, filed_at, filed_key) "
                     "VALUES ('GHOST-1', 'AWAITING', 'x', 1, 'mallory:s9', 0, '0')")
    with Ledger.open(db_url) as ledger:
        text = everything(verify_ledger(ledger.store))
        assert f"feed_items #{item}: the state of {item} differs from what its posts reduce to " \
               "(state 'DONE' not 'AWAITING_CLAIM')" in text, text
        assert "feed_items #X-1: the posts give X-1 the state CLAIMED but feed_items has no row" in text
        assert "feed_items #GHOST-1: feed_items has a row for GHOST-1 but no post gives it a state" in text


def test_a_repeated_import_leaves_no_false_break(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Importing the same posts again appends nothing; on SQLite the skipped INSERT must not
    draw ids either (verify would call the drawn-but-missing ids a deleted tail)."""
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"ts": "2026-04-16T20:04:22Z", "seat": "ORA-01", "kind": "info",
                                "subject": "note"}) + "\n")
    with Ledger.open(db_url) as ledger:
        assert len(ledger.feed.import_file(str(path), ALICE).posts) == 1
        again = ledger.feed.import_file(str(path), ALICE)
        assert again.posts == [] and again.skipped == 1
        ledger.feed.post("info", "after", ALICE)
        report = verify_ledger(ledger.store)
        assert report.ok, everything(report)
        assert [p.id for p in ledger.store.all_posts()] == [1, 2]


def test_a_reshaped_trigger_is_reported_and_recreated(pg_url: str, base_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL: a trigger of the right name, enabled, over the right function can still never
    fire: WHEN (false), another event, statement level instead of row, or moved to another
    table. Each counts as altered, and migrate recreates it from its definition."""
    import psycopg

    cli = CLI(pg_url, base_env, tmp_path)
    assert cli("claim", "t1", "--actor", "alice", "--session", "s1").returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for drop, create in [
            ("events_append_only_delete ON events",
             "events_append_only_delete BEFORE DELETE ON events FOR EACH ROW WHEN (false) "
             "EXECUTE FUNCTION events_append_only()"),
            ("events_append_only_update ON events",
             "events_append_only_update BEFORE INSERT ON events FOR EACH ROW "
             "EXECUTE FUNCTION events_append_only()"),
            ("feed_posts_append_only ON feed_posts",
             "feed_posts_append_only BEFORE UPDATE OR DELETE ON feed_posts FOR EACH STATEMENT "
             "EXECUTE FUNCTION leasehold_feed_posts_append_only()"),
            ("tokens_no_delete ON tokens",
             "tokens_no_delete BEFORE DELETE ON dependencies FOR EACH ROW "
             "EXECUTE FUNCTION leasehold_tokens_no_delete()"),
        ]:
            conn.execute(f"DROP TRIGGER {drop}")
            conn.execute(f"CREATE TRIGGER {create}")
        conn.execute("DROP TRIGGER lease_shares_explained ON lease_shares")
        conn.execute("CREATE CONSTRAINT TRIGGER lease_shares_explained AFTER INSERT ON lease_shares "
                     "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (false) "
                     "EXECUTE FUNCTION leasehold_shares_explained()")
    broken = cli("verify")
    assert broken.returncode == 1
    for name in ("events_append_only_delete", "events_append_only_update", "feed_posts_append_only",
                 "lease_shares_explained"):
        assert f"trigger {name} is disabled or altered" in broken.stdout, broken.stdout
    assert "trigger tokens_no_delete is missing" in broken.stdout, broken.stdout
    repaired = cli("migrate")
    assert repaired.returncode == 0, repaired.stderr
    assert "recreated trigger events_append_only_delete on events" in repaired.stdout, repaired.stdout
    clean = cli("verify")
    assert clean.returncode == 0, clean.stdout
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error, match="append-only"):
            conn.execute("DELETE FROM events")
