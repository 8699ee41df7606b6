"""The feed: duplicate guard (with a real-process race), amendments, Protocol B (provisional,
import, confirm with the first-post-wins tie-break), the live reducer, drift-check, tail -f."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from leasehold import Ledger
from leasehold.errors import DuplicatePost, InvalidInput, NotFound
from tests.test_tickets import race

ANN = "ann:s1"
BOB = "bob:s2"

POSTER = r"""
import os, sys, time
from leasehold import Ledger
from leasehold.errors import DuplicatePost
url, start, ready, holder = sys.argv[1:5]
with Ledger.open(url, busy_timeout=60) as ledger:
    ledger.feed.posts(limit=1)
    open(ready, "w").close()
    while not os.path.exists(start):
        time.sleep(0.002)
    try:
        post = ledger.feed.post("actionable", "collision bait from " + holder, holder, item="CMB-0036")
    except DuplicatePost as exc:
        print("refused", exc.post_id)
    else:
        print("accepted", post.id)
"""


def line(record: dict) -> str:
    return json.dumps(record)


def rec(ts: str, seat: str, item: str = "CMB-0105", kind: str = "actionable", subject: str = "s") -> dict:
    return {"ts": ts, "seat": seat, "kind": kind, "item": item, "subject": subject}


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else line(r)) + "\n" for r in records))
    return path


# -- the duplicate guard ----------------------------------------------------------------------
@pytest.mark.slow
def test_concurrent_duplicate_actionable_posts_exactly_one_accepted(db_url, tmp_path):
    holders = [f"seat{n}:s{n}" for n in range(8)]
    results = race(db_url, tmp_path, POSTER, holders)
    outcomes = [r.stdout.split() for r in results]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    accepted = [o for o in outcomes if o[0] == "accepted"]
    refused = [o for o in outcomes if o[0] == "refused"]
    assert len(accepted) == 1 and len(refused) == 7
    winner = accepted[0][1]
    assert all(o[1] == winner for o in refused)  # every refusal names the accepted post
    with Ledger.open(db_url) as ledger:
        assert [p.id for p in ledger.feed.posts(item="CMB-0036")] == [int(winner)]
        assert ledger.show("CMB-0036").status == "open"
        assert ledger.feed.drift() == []


@pytest.mark.slow
def test_concurrent_duplicate_posts_through_the_cli(cli, tmp_path):
    from tests.test_races import start_racers

    procs, _ = start_racers(cli, tmp_path, "exec", "dup-posts", lambda n: [
        "feed", "post", "--kind", "actionable", "--item", "CMB-0036", "--subject", f"try {n}",
        "--actor", f"seat{n}", "--session", "s"], count=6)
    results = [(p.wait(timeout=60), p.communicate()[1]) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1, 1, 1, 1, 1]
    for code, err in results:
        if code == 1:
            assert "CMB-0036 already has an open actionable post #1" in err
            assert len(err.strip().splitlines()) == 1


def test_guard_accepts_evidence_and_closed_items(ledger):
    feed = ledger.feed
    first = feed.post("actionable", "flaky test", ANN, item="CMB-0036")
    with pytest.raises(DuplicatePost) as info:
        feed.post("actionable", "flaky test again", BOB, item="CMB-0036")
    assert info.value.post_id == first.id and info.value.task_id == "CMB-0036"
    proof = feed.post("actionable", "again", BOB, item="CMB-0036", release_proof="released in chat 10:02Z")
    assert (proof.proof_kind, proof.proof) == ("release-proof", "released in chat 10:02Z")
    repair = feed.post("actionable", "state repair", BOB, item="CMB-0036", repair="reducer lost it")
    assert repair.proof_kind == "repair"
    # after a release post the item is closed: a re-post is accepted with automatic evidence
    feed.post("release", "giving it back", BOB, item="CMB-0036")
    auto = feed.post("actionable", "re-filed", ANN, item="CMB-0036")
    assert auto.proof_kind == "auto" and "released by post" in auto.proof
    # the lease ledger's done also closes it, and the re-post reopens the task
    lease = ledger.claim("CMB-0036", ANN)
    ledger.complete("CMB-0036", ANN, lease.fence)
    again = feed.post("actionable", "regressed", BOB, item="CMB-0036")
    assert again.proof_kind == "auto" and "done in the lease ledger" in again.proof
    assert ledger.show("CMB-0036").status == "open"
    assert feed.drift() == []  # every re-post carried evidence
    assert [e.kind for e in ledger.events("CMB-0036")].count("reopened") == 1


def test_actionable_post_creates_a_claimable_task_and_events(cli):
    env = {"LEASEHOLD_ACTOR": "ann", "LEASEHOLD_SESSION": "s1"}
    r = cli("feed", "post", "--kind", "actionable", "--reserve", "CMB", "--subject",
            "{{ITEM_ID}}: flaky upload", "--body", "see {{ITEM_ID}}.log", "--json", env=env)
    assert r.returncode == 0, r.stderr
    post = json.loads(r.stdout)
    assert post["item"] == "CMB-0001" and post["subject"] == "CMB-0001: flaky upload"
    assert post["body"] == "see CMB-0001.log" and post["seat"] == "ann:s1" and post["refs"] is None
    assert set(post) >= {"id", "ts", "seat", "kind", "item", "subject", "body", "refs", "flags"}
    r = cli("claim", "CMB-0001", env={"LEASEHOLD_ACTOR": "bob", "LEASEHOLD_SESSION": "s2"})
    assert r.returncode == 0, r.stderr
    r = cli("log", "CMB-0001", "--json", env=env)
    assert [e["kind"] for e in json.loads(r.stdout)] == ["reserved", "created", "posted", "claimed"]
    r = cli("show", "CMB-0001", "--json", env=env)
    assert json.loads(r.stdout)["title"] == "CMB-0001: flaky upload"


# -- amendments -------------------------------------------------------------------------------
def test_amend_appends_and_renumbers(ledger):
    feed = ledger.feed
    ledger.tickets.reserve("CMB", ANN, count=5)
    orig = feed.post("actionable", "typo in title", ANN, item="CMB-0005")
    fixed = feed.amend(orig.id, ANN, subject="no typo in title")
    assert fixed.kind == "amendment" and fixed.refs == orig.id and fixed.item == "CMB-0005"
    moved = feed.amend(fixed.id, BOB, renumber="")  # an amendment's amendment goes to the original
    assert moved.refs == orig.id and moved.item == "CMB-0006"
    assert moved.details["renumbered_from"] == "CMB-0005"
    assert feed.get(orig.id).subject == "typo in title"  # the original is untouched
    queue = {e["item"]: e for e in feed.queue()}
    assert set(queue) == {"CMB-0006"} and queue["CMB-0006"]["subject"] == "no typo in title"
    assert ledger.status("CMB-0006") is not None
    other = feed.post("actionable", "other", BOB, item="CMB-0007")
    with pytest.raises(DuplicatePost):
        feed.amend(orig.id, ANN, renumber="CMB-0007")
    with pytest.raises(InvalidInput, match="nothing to amend"):
        feed.amend(orig.id, ANN)
    with pytest.raises(NotFound):
        feed.amend(999, ANN, subject="x")
    claimed = feed.post("claimed", "mine", BOB, item="CMB-0007")
    with pytest.raises(InvalidInput, match="only actionable"):
        feed.amend(claimed.id, BOB, renumber="")
    assert other.id < claimed.id


# -- Protocol B -------------------------------------------------------------------------------
def test_provisional_post_without_collision_is_confirmed_once(ledger):
    feed = ledger.feed
    post = feed.post("actionable", "offline filing", ANN, provisional="CMB-0042")
    assert post.flags == ("CONFIRM-PENDING",)
    assert feed.queue()[0]["state"] == "CONFIRM-PENDING"
    result = feed.confirm(post.id, ANN)
    assert not result.already and result.renumbered == []
    assert result.confirmed.kind == "confirmed" and result.confirmed.refs == post.id
    assert feed.queue()[0]["state"] == "AWAITING_CLAIM"
    count = len(feed.posts())
    events = len(ledger.events())
    again = feed.confirm(post.id, BOB)
    assert again.already and again.confirmed is None
    assert len(feed.posts()) == count and len(ledger.events()) == events


def soon(seconds: float) -> str:
    """An ISO 8601 UTC time ``seconds`` from now, whole seconds (imported posts must not
    predate their namespace nor lie more than 300 s in the future)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(time.time()) + seconds))


def test_same_timestamp_different_seats_lexicographic_seat_wins(ledger, tmp_path):
    feed = ledger.feed
    ledger.tickets.reserve("CMB", ANN, count=3)
    same = soon(60)
    path = write_jsonl(tmp_path / "posts.jsonl", [
        rec(same, "CLAUDE-CLI-CAMBER-12", subject="card grouping"),
        rec(same, "CLAUDE-CLI-CAMBER-02", subject="audio playback"),
    ])
    imported = feed.import_file(str(path), ANN).posts
    assert [p.flags for p in imported] == [("CONFIRM-PENDING",)] * 2
    later, earlier_seat = imported
    # confirming the loser resolves the collision the same way as confirming the winner
    result = feed.confirm(later.id, BOB)
    assert result.winner.id == earlier_seat.id
    assert result.renumbered == [{"post": later.id, "seat": "CLAUDE-CLI-CAMBER-12", "from": "CMB-0105",
                                  "to": "CMB-0004", "amendment": result.renumbered[0]["amendment"]}]
    amendment = feed.get(result.renumbered[0]["amendment"])
    assert amendment.kind == "amendment" and amendment.refs == later.id
    assert amendment.details["clears_pending"] is True
    assert feed.confirm(earlier_seat.id, BOB).already
    assert feed.confirm(later.id, BOB).already
    states = {e["item"]: (e["state"], e["post"]) for e in feed.queue()}
    assert states == {"CMB-0105": ("AWAITING_CLAIM", earlier_seat.id),
                      "CMB-0004": ("AWAITING_CLAIM", later.id)}
    assert feed.drift() == []


def test_three_way_collision_earliest_wins_losers_get_distinct_fresh_ids(cli, tmp_path):
    env = {"LEASEHOLD_ACTOR": "ann", "LEASEHOLD_SESSION": "s1"}
    assert cli("reserve", "CMB", "--count", "121", env=env).returncode == 0
    later, earliest = soon(120), soon(60)
    path = write_jsonl(tmp_path / "three.jsonl", [
        rec(later, "CODEX-GPT", item="CMB-0122", subject="matcher determinism"),
        rec(earliest, "CLAUDE-CLI-CAMBER-12", item="CMB-0122", subject="desktop ingest"),
        rec(later, "CAMBER-01", item="CMB-0122", subject="third"),
    ])
    r = cli("feed", "import", str(path), "--json", env=env)
    assert r.returncode == 0, r.stderr
    ids = [p["id"] for p in json.loads(r.stdout)["posts"]]
    r = cli("drift-check", "--json", env=env)
    assert r.returncode == 1
    drift = json.loads(r.stdout)
    assert drift["clean"] is False
    assert sorted(d["post"] for d in drift["drift"]) == [ids[0], ids[2]]
    assert all(d["collides_with"]["post"] == ids[1] for d in drift["drift"])
    r = cli("drift-check", env=env)
    assert r.stdout.count("DRIFT CMB-0122") == 2 and "feed confirm" in r.stdout
    r = cli("feed", "confirm", str(ids[0]), "--json", env=env)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["winner"] == ids[1]  # the earliest UTC timestamp
    # the ts tie between the two losers is broken by seat: CAMBER-01 < CODEX-GPT
    assert [(m["post"], m["to"]) for m in result["renumbered"]] == [(ids[2], "CMB-0123"), (ids[0], "CMB-0124")]
    r = cli("drift-check", env=env)
    assert r.returncode == 0 and r.stdout.strip() == "no drift"
    before = cli("feed", "list", "--json", env=env).stdout
    r = cli("feed", "confirm", str(ids[2]), "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["already"] is True
    assert cli("feed", "list", "--json", env=env).stdout == before
    r = cli("feed", "list", "--item", "CMB-0122", "--json", env=env)
    kinds = [(p["kind"], p["refs"]) for p in json.loads(r.stdout)]
    assert ("confirmed", ids[1]) in kinds


def test_import_keeps_timestamps_and_seats_and_skips_repeats(ledger, tmp_path):
    path = write_jsonl(tmp_path / "posts.jsonl", [
        rec("2026-04-16T20:04:22Z", "CLAUDE-CLI-CAMBER-12", subject="card grouping"),
        "",
        {"ts": "2026-04-16T20:24:06.5+00:00", "seat": "ORA-01", "kind": "info", "subject": "note", "body": "b"},
    ])
    result = ledger.feed.import_file(str(path), ANN)
    assert result.skipped == 0
    posts = [p.to_dict() for p in result.posts]
    assert [(p["ts"], p["seat"], p["origin"]) for p in posts] == [
        ("2026-04-16T20:04:22.000000Z", "CLAUDE-CLI-CAMBER-12", "import"),
        ("2026-04-16T20:24:06.500000Z", "ORA-01", "import"),
    ]
    assert posts[0]["flags"] == ["CONFIRM-PENDING"] and posts[1]["flags"] == []
    assert ledger.status("CMB-0105") is not None
    again = ledger.feed.import_file(str(path), ANN)
    assert again.posts == [] and again.skipped == 2


@pytest.mark.parametrize("bad, message", [
    ("{not json", "line 3: not valid JSON"),
    ('["a list"]', "line 3: expected a JSON object"),
    (line({"ts": "yesterday", "seat": "S", "kind": "info", "subject": "x"}), "line 3: 'yesterday' is not an ISO 8601"),
    (line({"ts": 1776369862, "seat": "S", "kind": "info", "subject": "x"}), "line 3: 'ts' must be an ISO 8601 string"),
    (line({"seat": "S", "kind": "info", "subject": "x"}), "line 3: 'ts' is missing"),
    (line(rec("2026-04-16T20:04:22Z", "S", kind="shout")), "line 3: kind 'shout' is not one of"),
    (line(rec("2026-04-16T20:04:22Z", "S", kind="amendment")), "line 3: kind 'amendment' is made by"),
    (line({"ts": "2026-04-16T20:04:22Z", "seat": "S", "kind": "actionable", "subject": "x"}), "line 3: an actionable post needs 'item'"),
    (line(rec("2026-04-16T20:04:22Z", "S", item="CMB 0105")), "line 3: task id 'CMB 0105'"),
    (line(rec("2026-04-16T20:04:22Z", "")), "line 3: seat must not be empty"),
    (line(dict(rec("2026-04-16T20:04:22Z", "S"), priority=3)), "line 3: unknown key(s) priority"),
])
def test_import_of_a_file_with_a_bad_line_imports_nothing(cli, tmp_path, bad, message):
    env = {"LEASEHOLD_ACTOR": "ann", "LEASEHOLD_SESSION": "s1"}
    path = write_jsonl(tmp_path / "bad.jsonl", [rec("2026-04-16T20:04:22Z", "A"),
                                                rec("2026-04-16T20:05:00Z", "B", item="CMB-0106"), bad,
                                                rec("2026-04-16T20:06:00Z", "C", item="CMB-0107")])
    r = cli("feed", "import", str(path), env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"{path} {message}"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert json.loads(cli("feed", "list", "--json", env=env).stdout) == []
    assert json.loads(cli("list", "--json", env=env).stdout) == []


# -- the reducer and drift --------------------------------------------------------------------
def test_queue_reduces_feed_and_leases_with_warmth(sqlite_url, clock):
    with Ledger.open(sqlite_url, clock=clock) as ledger:
        feed = ledger.feed
        feed.post("actionable", "awaiting", ANN, item="CMB-0001")
        feed.post("actionable", "claimed by lease", ANN, item="CMB-0002")
        ledger.claim("CMB-0002", BOB, ttl="1h")
        feed.post("actionable", "claimed on the feed", ANN, item="CMB-0003")
        feed.post("claimed", "taking it", "carl:s3", item="CMB-0003")
        feed.post("actionable", "done", ANN, item="CMB-0004")
        feed.post("done", "shipped", ANN, item="CMB-0004")
        feed.post("actionable", "released", ANN, item="CMB-0005")
        feed.post("release", "not mine after all", ANN, item="CMB-0005")
        feed.post("actionable", "pending", ANN, provisional="CMB-0006")
        feed.post("info", "just a note", ANN)
        clock.advance(20 * 60)
        feed.post("info", "ping", ANN, item="CMB-0001")
        q = {e["item"]: e for e in feed.queue()}
        assert {k: v["state"] for k, v in q.items()} == {
            "CMB-0001": "AWAITING_CLAIM", "CMB-0002": "CLAIMED", "CMB-0003": "CLAIMED",
            "CMB-0004": "DONE", "CMB-0005": "RELEASED", "CMB-0006": "CONFIRM-PENDING"}
        assert q["CMB-0002"]["owner"] == BOB and q["CMB-0002"]["claimed_until"] is not None
        assert q["CMB-0003"]["owner"] == "carl:s3" and q["CMB-0003"]["claimed_until"] is None
        assert q["CMB-0001"]["warmth"] == "hot" and q["CMB-0006"]["warmth"] == "warm"
        clock.advance(110 * 60)  # the ping is 1h50 old, the pending post 2h10
        q = {e["item"]: e for e in feed.queue()}
        assert q["CMB-0001"]["warmth"] == "warm" and q["CMB-0006"]["warmth"] == "cold"
        assert q["CMB-0002"]["state"] == "AWAITING_CLAIM"  # the lease expired
        assert list(q)[-1] == "CMB-0004"  # done items last
        assert set(q["CMB-0001"]) == {"item", "state", "owner", "claimed_until", "fence", "subject",
                                      "post", "seat", "filed_at", "last_activity", "warmth", "drift"}


def test_drift_check_flags_an_unreconciled_provisional_collision(cli):
    env = {"LEASEHOLD_ACTOR": "ann", "LEASEHOLD_SESSION": "s1"}
    assert cli("drift-check", env=env).returncode == 0
    assert cli("feed", "post", "--kind", "actionable", "--item", "CMB-0036", "--subject", "first",
               env=env).returncode == 0
    r = cli("feed", "post", "--kind", "actionable", "--provisional", "CMB-0036", "--subject", "second",
            env={"LEASEHOLD_ACTOR": "ora", "LEASEHOLD_SESSION": "cron"})
    assert r.returncode == 0 and "CONFIRM-PENDING" in r.stdout
    r = cli("drift-check", env=env)
    assert r.returncode == 1
    assert r.stdout.startswith("DRIFT CMB-0036: #2 by ora:cron")
    r = cli("queue", "--json", env=env)
    assert json.loads(r.stdout)[0]["drift"] == [2]
    r = cli("feed", "amend", "2", "--renumber", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["item"] == "CMB-0001"  # the counter's next free number
    assert cli("drift-check", env=env).returncode == 0
    r = cli("queue", "--state", "AWAITING_CLAIM", env=env)
    assert "CMB-0036" in r.stdout and "CMB-0001" in r.stdout


def test_feed_list_filters(sqlite_url, clock):
    with Ledger.open(sqlite_url, clock=clock) as ledger:
        feed = ledger.feed
        a = feed.post("actionable", "a", ANN, item="CMB-0001")
        clock.advance(3600)
        feed.post("info", "b", ANN)
        feed.amend(a.id, ANN, body="more")
        assert [p.subject for p in feed.posts(since=clock.now - 60)] == ["b", "a"]
        assert [p.kind for p in feed.posts(item="CMB-0001")] == ["actionable", "amendment"]
        assert [p.kind for p in feed.posts(kind="info")] == ["info"]
        assert len(feed.posts(limit=1)) == 1


# -- tail -f ----------------------------------------------------------------------------------
def test_tail_follows_new_posts_and_stops_on_sigterm(cli):
    env = {"LEASEHOLD_ACTOR": "ann", "LEASEHOLD_SESSION": "s1"}
    assert cli("feed", "post", "--kind", "info", "--subject", "before", env=env).returncode == 0
    proc = cli.popen("feed", "tail", "-f", "-n", "1", "--json", "--interval", "0.05", "--timeout", "60",
                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert json.loads(proc.stdout.readline())["subject"] == "before"
        assert cli("feed", "post", "--kind", "info", "--subject", "during", env=env).returncode == 0
        assert json.loads(proc.stdout.readline())["subject"] == "during"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()


def test_tail_count_and_timeout_bounds(cli):
    env = {"LEASEHOLD_ACTOR": "ann", "LEASEHOLD_SESSION": "s1"}
    started = time.monotonic()
    r = cli("feed", "tail", "-f", "--timeout", "0.3", "--interval", "0.05", env=env)
    assert r.returncode == 0 and r.stdout == "" and time.monotonic() - started < 20
    assert cli("feed", "post", "--kind", "info", "--subject", "one", env=env).returncode == 0
    proc = cli.popen("feed", "tail", "-f", "-n", "1", "--count", "1", "--interval", "0.05", "--timeout", "60",
                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert "one" in proc.stdout.readline()
        assert cli("feed", "post", "--kind", "claimed", "--item", "CMB-0001", "--subject", "two",
                   env=env).returncode == 0
        assert proc.wait(timeout=30) == 0
        assert "two" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    r = cli("feed", "tail", "-f", "--interval", "0", env=env)
    assert r.returncode == 2 and "--interval must be" in r.stderr


def test_feed_cli_errors(cli, tmp_path):
    env = {"LEASEHOLD_ACTOR": "ann", "LEASEHOLD_SESSION": "s1"}
    cases = [
        (("feed", "post", "--kind", "actionable", "--subject", "x"), 2, "needs --item ID"),
        (("feed", "post", "--kind", "info", "--subject", " "), 2, "subject must not be empty"),
        (("feed", "post", "--kind", "info", "--subject", "x", "--reserve", "CMB"), 2, "goes with --kind actionable"),
        (("feed", "post", "--kind", "actionable", "--item", "A", "--reserve", "CMB", "--subject", "x"), 2, "not allowed with"),
        (("feed", "post", "--kind", "done", "--item", "bad id", "--subject", "x"), 2, "task id"),
        (("feed", "post", "--kind", "info", "--subject", "x", "--repair", "y"), 2, "go with --kind actionable"),
        (("feed", "amend", "7", "--subject", "x"), 3, "post #7 not found"),
        (("feed", "confirm", "7"), 3, "post #7 not found"),
        (("feed", "import", str(tmp_path / "missing.jsonl")), 3, "no such file"),
        (("feed", "list", "--since", "last tuesday"), 2, "neither an ISO 8601 time"),
        (("feed", "amend", "x"), 2, "invalid int value"),
        (("feed",), 2, "needs an action"),
    ]
    for args, code, message in cases:
        r = cli(*args, env=env)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert cli("feed", "post", "--kind", "info", "--subject", "x", env=env).returncode == 0
    r = cli("feed", "confirm", "1", env=env)
    assert r.returncode == 2 and "only actionable posts are confirmed" in r.stderr
    r = cli("feed", "post", "--kind", "actionable", "--item", "CMB-1", "--subject", "x", "--json", env=env)
    assert r.returncode == 0
    r = cli("feed", "post", "--kind", "actionable", "--item", "CMB-1", "--subject", "y", "--json", env=env)
    assert r.returncode == 1
    error = json.loads(r.stdout)["error"]
    assert error["type"] == "DuplicatePost" and error["task_id"] == "CMB-1"


def test_queue_limit_beyond_any_size_is_all_not_a_crash(ledger) -> None:
    """A limit larger than any list (say 10**20, as a careless script or a hostile HTTP client
    sends) returns every entry: not an internal error."""
    ledger.feed.post("info", "a note", "bob:s")
    assert ledger.feed.queue(limit=10**20) == ledger.feed.queue()
