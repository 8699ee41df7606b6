"""Ticket namespaces and reservations (Protocol A): real-process races, date rollover, lanes,
abandonment, database-enforced immutability and the CLI surface."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from leasehold import Ledger
from leasehold.errors import Conflict, InvalidInput, LaneRefused, NotFound
from tests.conftest import wait_for

# A worker process: wait at the start line, then reserve PER times (every fifth through
# `feed post --reserve`, which reserves and posts in one transaction) and print the ids.
WORKER = r"""
import os, sys, time
from leasehold import Ledger
url, start, ready, holder, per = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
with Ledger.open(url, busy_timeout=60) as ledger:
    ledger.tickets.namespaces()  # connected and migrated before the start line
    open(ready, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(start):
        if time.monotonic() > deadline:
            sys.exit("no start signal")
        time.sleep(0.002)
    ids = []
    for i in range(per):
        if i % 5 == 0:
            ids.append(ledger.feed.post("actionable", "{{ITEM_ID}} from " + holder, holder, reserve="CMB").item)
        else:
            ids.append(ledger.tickets.reserve("CMB", holder)[0].ticket_id)
print("\n".join(ids))
"""


def race(db_url: str, tmp_path: Path, script: str, holders: list[str], *extra: str) -> list[subprocess.CompletedProcess]:
    """Start one real process per holder, release them together, return their results."""
    start = tmp_path / "start"
    procs, readies = [], []
    for n, holder in enumerate(holders):
        ready = tmp_path / f"ready-{n}"
        readies.append(ready)
        procs.append(subprocess.Popen(
            [sys.executable, "-c", script, db_url, str(start), str(ready), holder, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    wait_for(lambda: all(r.exists() for r in readies) or any(p.poll() is not None for p in procs),
             what="workers ready")
    start.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


# -- races ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_eight_processes_reserving_fifty_each_get_400_distinct_ids_without_gaps(db_url, tmp_path):
    with Ledger.open(db_url) as ledger:
        ledger.tickets.add_namespace("CMB")
    holders = [f"seat{n}:s{n}" for n in range(8)]
    results = race(db_url, tmp_path, WORKER, holders, "50")
    for r in results:
        assert r.returncode == 0, r.stderr
    ids = [line for r in results for line in r.stdout.split()]
    assert len(ids) == 400
    assert len(set(ids)) == 400
    assert sorted(ids) == [f"CMB-{n:04d}" for n in range(1, 401)]
    with Ledger.open(db_url) as ledger:
        # each worker's own ids come out increasing: the counter never goes back
        for r in results:
            mine = r.stdout.split()
            assert mine == sorted(mine)
        holders_of = {ledger.tickets.reservation(i).holder for i in ids}
        assert holders_of == set(holders)
        reserved = [e for e in ledger.events() if e.kind == "reserved"]
        assert len(reserved) == 400
        assert len(ledger.feed.posts(kind="actionable")) == 80
        ns = dict((n.prefix, s) for n, s in ledger.tickets.namespaces())
        assert ns["CMB"]["reserved"] == 400 and ns["CMB"]["last_ticket"] in ids


# -- numbering --------------------------------------------------------------------------------
def test_default_format_and_unknown_prefix(ledger):
    got = ledger.tickets.reserve("CMB", "ann:s1", count=3)
    assert [r.ticket_id for r in got] == ["CMB-0001", "CMB-0002", "CMB-0003"]
    assert [r.seq for r in got] == [1, 2, 3]
    assert got[0].holder == "ann:s1" and got[0].period == "" and got[0].status == "reserved"
    ns = ledger.tickets.namespace("CMB")
    assert ns.format == "{prefix}-{seq:04d}" and not ns.dated
    events = [e for e in ledger.events() if e.kind == "reserved"]
    assert [e.task_id for e in events] == ["CMB-0001", "CMB-0002", "CMB-0003"]
    assert events[0].holder == "ann:s1" and events[0].details["seq"] == 1


def test_date_rollover_restarts_seq_each_utc_day(sqlite_url, clock):
    clock.now = 1_800_057_600.0 - 5.0  # 2027-01-15T23:59:55Z
    with Ledger.open(sqlite_url, clock=clock) as ledger:
        ledger.tickets.add_namespace("FLT", "FLT-{date:%Y%m%d}{seq:02d}")
        first = ledger.tickets.reserve("FLT", "ann:s1", count=2)
        assert [r.ticket_id for r in first] == ["FLT-2027011501", "FLT-2027011502"]
        assert first[0].period == "2027-01-15"
        clock.advance(4.9)  # 23:59:59.9Z: still the same UTC day
        assert ledger.tickets.reserve("FLT", "ann:s1")[0].ticket_id == "FLT-2027011503"
        clock.advance(0.2)  # past midnight UTC
        nxt = ledger.tickets.reserve("FLT", "bob:s2", count=2)
        assert [r.ticket_id for r in nxt] == ["FLT-2027011601", "FLT-2027011602"]
        assert nxt[0].period == "2027-01-16" and nxt[0].seq == 1
        # undated namespaces keep counting across the rollover
        assert ledger.tickets.reserve("CMB", "ann:s1")[0].ticket_id == "CMB-0001"
        clock.advance(86_400 * 3)
        assert ledger.tickets.reserve("CMB", "ann:s1")[0].ticket_id == "CMB-0002"
        assert ledger.tickets.reserve("FLT", "ann:s1")[0].ticket_id == "FLT-2027011901"


def test_ids_already_in_use_are_skipped(ledger):
    ledger.add("CMB-0002", title="made by hand")
    ledger.feed.post("actionable", "filed offline", "ann:s1", provisional="CMB-0003")
    got = [r.ticket_id for r in ledger.tickets.reserve("CMB", "ann:s1", count=2)]
    assert got == ["CMB-0001", "CMB-0004"]
    skipped = [e.details.get("skipped") for e in ledger.events() if e.kind == "reserved"]
    assert skipped == [None, ["CMB-0002", "CMB-0003"]]


def test_abandon_never_reuses_a_number(ledger):
    tickets = ledger.tickets
    tickets.reserve("CMB", "ann:s1", count=3)
    res, changed = tickets.abandon("CMB-0003", "ann:s1", reason="filed twice")
    assert changed and res.status == "abandoned" and res.abandon_reason == "filed twice"
    assert tickets.abandon("CMB-0003", "ann:s1") [1] is False  # twice: nothing changes
    assert tickets.reserve("CMB", "ann:s1")[0].ticket_id == "CMB-0004"
    with pytest.raises(Conflict, match="held by ann:s1"):
        tickets.abandon("CMB-0002", "bob:s2")
    res, changed = tickets.abandon("CMB-0002", "bob:s2", force=True)
    assert changed and res.abandoned_by == "bob:s2"
    ledger.feed.post("actionable", "x", "ann:s1", item="CMB-0001")
    with pytest.raises(Conflict, match="in use"):
        tickets.abandon("CMB-0001", "ann:s1")
    with pytest.raises(NotFound):
        tickets.abandon("CMB-0999", "ann:s1")
    assert [e.task_id for e in ledger.events() if e.kind == "abandoned"] == ["CMB-0003", "CMB-0002"]


def test_lane_private_namespace_refuses_other_actors(ledger):
    ledger.tickets.add_namespace("ORA", lane="ORA-01")
    assert ledger.tickets.reserve("ORA", "ORA-01:s1")[0].ticket_id == "ORA-0001"
    with pytest.raises(LaneRefused, match="lane-private to ORA-01"):
        ledger.tickets.reserve("ORA", "CAMBER-02:s9")
    with pytest.raises(LaneRefused):
        ledger.feed.post("actionable", "x", "CAMBER-02:s9", reserve="ORA")
    # the refusal changed nothing
    assert ledger.tickets.reserve("ORA", "ORA-01:s2")[0].ticket_id == "ORA-0002"
    assert ledger.feed.posts() == []


@pytest.mark.parametrize("fmt, message", [
    ("{prefix}-{n}", "only {prefix}, {seq} and {date}"),
    ("{prefix}", "must contain {seq}"),
    ("{prefix}-{seq!r}", "conversions"),
    ("{prefix}-{seq:{w}}", "nested"),
    ("FLT-{date:%Y}{seq}", "include the day"),
    ("{prefix} {seq}", "not a valid ticket id"),
    ("{prefix}-{seq", "not a valid format string"),
    ("{prefix.__class__}{seq}", "only {prefix}"),
])
def test_bad_formats_are_refused(ledger, fmt, message):
    with pytest.raises(InvalidInput, match=message):
        ledger.tickets.add_namespace("BAD", fmt)
    assert ledger.tickets.namespaces() == []


def test_namespace_definition_never_changes(ledger):
    ns, created = ledger.tickets.add_namespace("CMB")
    assert created
    assert ledger.tickets.add_namespace("CMB")[1] is False
    with pytest.raises(Conflict, match="never changes"):
        ledger.tickets.add_namespace("CMB", "{prefix}{seq:06d}")
    with pytest.raises(InvalidInput):
        ledger.tickets.reserve("CMB", "ann:s1", count=0)
    with pytest.raises(InvalidInput):
        ledger.tickets.reserve("9X", "ann:s1")


# -- immutability at the database level -------------------------------------------------------
def test_raw_sqlite_cannot_rewrite_or_delete_reservations_or_posts(sqlite_url):
    with Ledger.open(sqlite_url) as ledger:
        ledger.tickets.reserve("CMB", "ann:s1", count=2)
        ledger.feed.post("actionable", "the original", "ann:s1", item="CMB-0001")
    conn = sqlite3.connect(sqlite_url, isolation_level=None)
    for sql in (
        "UPDATE feed_posts SET subject = 'rewritten'",
        "DELETE FROM feed_posts",
        "UPDATE reservations SET ticket_id = 'CMB-0009' WHERE ticket_id = 'CMB-0002'",
        "UPDATE reservations SET seq = 7",
        "UPDATE reservations SET actor = 'mallory'",
        "DELETE FROM reservations",
        "UPDATE namespaces SET format = '{prefix}{seq}'",
        "DELETE FROM namespaces",
        "INSERT INTO reservations (ticket_id, prefix, period, seq, actor, session, reserved_at) "
        "VALUES ('CMB-0001', 'CMB', '', 99, 'x', 'y', 0)",
        "INSERT INTO reservations (ticket_id, prefix, period, seq, actor, session, reserved_at) "
        "VALUES ('CMB-X', 'CMB', '', 2, 'x', 'y', 0)",
    ):
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(sql)
    # the one allowed change: reserved -> abandoned, and never back
    conn.execute("UPDATE reservations SET status = 'abandoned' WHERE ticket_id = 'CMB-0002'")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE reservations SET status = 'reserved' WHERE ticket_id = 'CMB-0002'")
    assert conn.execute("SELECT subject FROM feed_posts").fetchall() == [("the original",)]
    assert conn.execute("SELECT count(*) FROM reservations").fetchone() == (2,)
    conn.close()


def test_the_store_refuses_rewriting_posts_on_every_backend(ledger):
    post = ledger.feed.post("actionable", "the original", "ann:s1", reserve="CMB")
    for sql in ("UPDATE feed_posts SET subject = 'rewritten'", "DELETE FROM feed_posts",
                "DELETE FROM reservations"):
        with pytest.raises(Exception):  # noqa: B017 - each driver names the trigger's error its way
            with ledger.store._write() as tx:
                tx.cursor.execute(sql)
    assert ledger.feed.get(post.id).subject == "the original"
    assert ledger.tickets.reservation(post.item).status == "reserved"


def test_rewriting_posts_reservations_or_namespaces_is_refused_exit_1(ledger):
    """Like ``events``: the database's refusal is :class:`Refused` (exit 1), not a store outage,
    and on PostgreSQL TRUNCATE (which skips row triggers) is refused too."""
    from leasehold.errors import Refused

    post = ledger.feed.post("actionable", "the original", "ann:s1", reserve="CMB")
    statements = ["UPDATE feed_posts SET subject = 'rewritten'", "DELETE FROM feed_posts",
                  "UPDATE reservations SET seq = 7", "DELETE FROM reservations",
                  "UPDATE namespaces SET format = '{prefix}{seq}'", "DELETE FROM namespaces"]
    if ledger.store.dialect == "postgres":
        statements += ["TRUNCATE feed_posts", "TRUNCATE reservations",
                       "TRUNCATE namespaces CASCADE"]
    for sql in statements:
        with pytest.raises(Refused):
            with ledger.store._write() as tx:
                tx.cursor.execute(sql)
    assert ledger.feed.get(post.id).subject == "the original"
    assert ledger.tickets.reservation(post.item).status == "reserved"
    assert ledger.tickets.namespace("CMB").format == "{prefix}-{seq:04d}"


# -- CLI --------------------------------------------------------------------------------------
def test_cli_reserve_namespace_and_reservation(cli):
    env = {"LEASEHOLD_ACTOR": "ann", "LEASEHOLD_SESSION": "s1"}
    r = cli("namespace", "add", "FLT", "--format", "FLT-{date:%Y%m%d}{seq:02d}", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["dated"] is True
    r = cli("reserve", "CMB", "--count", "3", env=env)
    assert r.returncode == 0 and r.stdout.split() == ["CMB-0001", "CMB-0002", "CMB-0003"]
    r = cli("reserve", "CMB", "--json", env=env)
    data = json.loads(r.stdout)
    assert data["ticket_id"] == "CMB-0004" and data["holder"] == "ann:s1" and data["seq"] == 4
    assert set(data) == {"ticket_id", "prefix", "period", "seq", "holder", "reserved_at", "status",
                         "abandoned_at", "abandoned_by", "abandon_reason"}
    r = cli("reserve", "FLT", "--json", env=env)
    assert json.loads(r.stdout)["ticket_id"].startswith("FLT-")
    r = cli("reservation", "show", "CMB-0002", "--json", env=env)
    assert json.loads(r.stdout)["status"] == "reserved"
    r = cli("reservation", "abandon", "CMB-0004", "--reason", "typo", env=env)
    assert r.returncode == 0 and "never reused" in r.stdout
    assert cli("reserve", "CMB", env=env).stdout.strip() == "CMB-0005"
    r = cli("namespace", "list", "--json", env=env)
    rows = {row["prefix"]: row for row in json.loads(r.stdout)}
    assert rows["CMB"]["reserved"] == 5 and rows["CMB"]["abandoned"] == 1
    r = cli("log", "CMB-0005", "--json", env=env)
    assert [e["kind"] for e in json.loads(r.stdout)] == ["reserved"]


def test_cli_lane_refusal_and_errors_are_one_line_with_exit_codes(cli):
    env = {"LEASEHOLD_ACTOR": "ann", "LEASEHOLD_SESSION": "s1"}
    assert cli("namespace", "add", "ORA", "--lane", "ORA-01", env=env).returncode == 0
    cases = [
        (("reserve", "ORA"), 1, "lane-private to ORA-01"),
        (("reserve", "ORA", "--json"), 1, "lane-private"),
        (("namespace", "add", "CMB", "--format", "{prefix}"), 2, "must contain {seq}"),
        (("namespace", "add", "ORA", "--format", "{prefix}{seq}"), 1, "never changes"),
        (("namespace", "add", "1AB"), 2, "starting with a letter"),
        (("reserve", "CMB", "--count", "0"), 2, "count must be 1-1000"),
        (("reserve", "CMB", "--count", "x"), 2, "invalid int value"),
        (("reservation", "show", "CMB-0404"), 3, "not found"),
        (("reservation", "abandon", "CMB-0404"), 3, "not found"),
        (("reservation",), 2, "needs an action"),
        (("namespace", "frob"), 2, "invalid choice"),
    ]
    for args, code, message in cases:
        r = cli(*args, env=env)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr
    r = cli("reserve", "ORA", "--json", env=env)
    assert json.loads(r.stdout)["error"]["type"] == "LaneRefused"
    r = cli("reserve", "ORA", env={"LEASEHOLD_ACTOR": "ORA-01", "LEASEHOLD_SESSION": "cron"})
    assert r.returncode == 0 and r.stdout.strip() == "ORA-0001"
    r = cli("reserve", "CMB", env={"LEASEHOLD_ACTOR": "ann"})
    assert r.returncode == 2 and "no session" in r.stderr


COMMANDS = [
    ("namespace",), ("namespace", "add"), ("namespace", "list"), ("reserve",),
    ("reservation",), ("reservation", "show"), ("reservation", "abandon"),
    ("feed",), ("feed", "post"), ("feed", "amend"), ("feed", "list"), ("feed", "tail"),
    ("feed", "import"), ("feed", "confirm"), ("queue",), ("drift-check",),
]


def test_every_command_has_help_with_examples_and_exit_codes(sqlite_cli):
    for words in COMMANDS:
        r = sqlite_cli(*words, "--help")
        assert r.returncode == 0, (words, r.stderr)
        assert "examples:\n  leasehold " + words[0] in r.stdout, words
        assert "exit codes:" in r.stdout and "--json" in r.stdout, words
    top = sqlite_cli("--help").stdout
    for name in ("namespace", "reserve", "reservation", "feed", "queue", "drift-check"):
        assert name in top
