"""Operation ids (idempotency keys): recorded with their effect, replayed on retry, looked up.

A call repeated with the id of a call that applied never applies twice and returns the first
outcome; a call that changed nothing records nothing; ``lookup_op`` / ``leasehold op`` answer
whether an id applied.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leasehold import Ledger
from leasehold.errors import InvalidInput, LeaseHeld
from tests.conftest import CLI, REPO, wait_for
from tests.racers import Gate


def kinds(ledger: Ledger, task_id: str | None = None) -> list[str]:
    return [e.kind for e in ledger.events(task_id)]


def test_claim_retried_with_its_op_id_returns_the_first_lease_and_applies_once(ledger: Ledger) -> None:
    first = ledger.claim("T", "a:1", ttl=60, op_id="op-claim-1")
    assert ledger.last_op_id == "op-claim-1"
    again = ledger.claim("T", "a:1", ttl=60, op_id="op-claim-1")
    assert (again.fence, again.expires_at, again.acquired_at) == (first.fence, first.expires_at,
                                                                 first.acquired_at)
    assert kinds(ledger, "T") == ["created", "claimed"]
    # Even after the state moved on, the retry reports the first outcome and changes nothing.
    ledger.release("T", "a:1")
    ledger.claim("T", "b:2", ttl=60)
    replay = ledger.claim("T", "a:1", ttl=60, op_id="op-claim-1")
    assert replay.fence == 1 and str(replay.holder) == "a:1"
    assert ledger.show("T").lease_holder == "b:2"
    assert kinds(ledger, "T") == ["created", "claimed", "released", "claimed"]


def test_release_done_reopen_extend_next_add_sweep_replay(ledger: Ledger) -> None:
    ledger.claim("T", "a:1", ttl=60)
    ext = ledger.extend("T", "a:1", ttl=120, op_id="x1")
    assert ledger.extend("T", "a:1", ttl=120, op_id="x1").expires_at == ext.expires_at
    rel = ledger.release("T", "a:1", op_id="r1")
    again = ledger.release("T", "a:1", op_id="r1")
    assert rel.released and again.released and again.task.status == "open"
    ledger.claim("T", "a:1", ttl=60)
    done = ledger.complete("T", "a:1", op_id="d1")
    assert ledger.complete("T", "a:1", op_id="d1").status == done.status == "done"
    ledger.reopen("T", op_id="o1")
    ledger.claim("T", "a:1", ttl=60)
    ledger.complete("T", "a:1")
    assert ledger.reopen("T", op_id="o1").status == "open"  # the first outcome, not applied again
    assert ledger.show("T").status == "done"
    assert kinds(ledger, "T").count("extended") == 1
    assert kinds(ledger, "T").count("released") == 1
    assert kinds(ledger, "T").count("reopened") == 1

    ledger.add("N1", priority=5, op_id="add1")
    task, created = ledger.add("N1", priority=5, op_id="add1")
    assert (task.id, task.priority, created) == ("N1", 5, True)
    got = ledger.next("w:1", ttl=60, op_id="n1")
    assert [lease.task_id for lease in got] == ["N1"]
    assert [(x.task_id, x.fence) for x in ledger.next("w:1", ttl=60, op_id="n1")] == [("N1", 1)]
    assert kinds(ledger, "N1") == ["created", "claimed"]

    ledger.claim("M1", "a:1", ttl=60)
    ledger.claim("M2", "a:1", ttl=60)
    many = ledger.complete_many(["M1", "M2"], "a:1", op_id="cm1")
    assert [t.id for t in ledger.complete_many(["M1", "M2"], "a:1", op_id="cm1")] == [t.id for t in many]
    assert kinds(ledger, "M1").count("completed") == 1


def test_dependency_changes_replay(ledger: Ledger) -> None:
    ledger.add("build")
    task, created, added = ledger.add_blocked("deploy", "build", op_id="ab1")
    assert (created, added) == (True, ["build"])
    ledger.undepend("deploy", "build")
    task, created, added = ledger.add_blocked("deploy", "build", op_id="ab1")
    assert (task.id, created, added) == ("deploy", True, ["build"])  # the first outcome
    assert ledger.blockers("deploy") == []                           # not applied again
    assert ledger.depend("deploy", "build", op_id="dp1")[1] == ["build"]
    assert ledger.depend("deploy", "build", op_id="dp1")[1] == ["build"]
    assert ledger.undepend("deploy", "build", op_id="ud1")[1] == ["build"]
    assert ledger.undepend("deploy", "build", op_id="ud1")[1] == ["build"]
    assert kinds(ledger, "deploy").count("dependency_added") == 2
    assert kinds(ledger, "deploy").count("dependency_removed") == 2


def test_a_call_that_changed_nothing_records_nothing(ledger: Ledger) -> None:
    ledger.claim("T", "a:1", ttl=60)
    with pytest.raises(LeaseHeld):
        ledger.claim("T", "b:2", ttl=60, op_id="later")
    assert ledger.lookup_op("later") is None
    ledger.release("T", "a:1")
    assert ledger.claim("T", "b:2", ttl=60, op_id="later").fence == 2
    op = ledger.lookup_op("later")
    assert op is not None and op.kind == "claim" and op.task_id == "T" and op.holder == "b:2"
    assert [t.fence for t in op.tasks] == [2]


def test_an_op_id_reused_for_another_call_is_invalid_input(ledger: Ledger) -> None:
    ledger.claim("T", "a:1", ttl=60, op_id="same")
    with pytest.raises(InvalidInput, match="already used for claim of T"):
        ledger.release("T", "a:1", op_id="same")
    with pytest.raises(InvalidInput, match="already used"):
        ledger.claim("U", "a:1", ttl=60, op_id="same")
    with pytest.raises(InvalidInput, match="operation id"):
        ledger.claim("T", "a:1", ttl=60, op_id="bad id with spaces")
    assert ledger.show("T").lease_holder == "a:1"


def test_an_op_id_reused_by_another_holder_is_invalid_input(ledger: Ledger) -> None:
    # Another holder's call with my id is a different call: it must not be handed my lease
    # (exit 0, "claimed") as if it had been granted.
    ledger.claim("T", "a:1", ttl=60, op_id="mine")
    with pytest.raises(InvalidInput, match="already used for claim of T by a:1"):
        ledger.claim("T", "b:2", ttl=60, op_id="mine")
    ledger.add("R")
    ledger.next("a:1", ttl=60, op_id="mine-next")
    with pytest.raises(InvalidInput, match="already used for next"):
        ledger.next("b:2", ttl=60, op_id="mine-next")
    ledger.extend("T", "a:1", ttl=60, op_id="mine-extend")
    with pytest.raises(InvalidInput, match="already used for extend"):
        ledger.extend("T", "a:2", ttl=60, op_id="mine-extend")
    ledger.release("T", "a:1", op_id="mine-release")
    with pytest.raises(InvalidInput, match="already used for released"):
        ledger.release("T", "b:2", op_id="mine-release")
    assert ledger.show("R").lease_holder == "a:1" and ledger.show("T").lease_holder is None


def test_generated_op_ids_are_recorded(ledger: Ledger) -> None:
    ledger.claim("T", "a:1", ttl=60)
    generated = ledger.last_op_id
    assert generated and len(generated) == 32
    op = ledger.lookup_op(generated)
    assert op is not None and op.kind == "claim"
    assert op.to_dict()["applied"] is True and op.to_dict()["tasks"][0]["fence"] == 1


def test_cli_op_id_retry_and_op_lookup(cli: CLI) -> None:
    first = cli("claim", "T", "--actor", "a", "--session", "1", "--op-id", "c-1", "--json")
    assert first.returncode == 0, first.stderr
    again = cli("claim", "T", "--actor", "a", "--session", "1", "--op-id", "c-1", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["lease_until"] == json.loads(first.stdout)["lease_until"]
    looked = cli("op", "c-1", "--json")
    assert looked.returncode == 0, looked.stderr
    data = json.loads(looked.stdout)
    assert data["applied"] is True and data["kind"] == "claim" and data["task_id"] == "T"
    assert data["holder"] == "a:1" and data["tasks"][0]["fence"] == 1
    text = cli("op", "c-1")
    assert text.stdout.startswith("operation c-1: applied: claim by a:1 at ")
    missing = cli("op", "never-used", "--json")
    assert missing.returncode == 3
    assert json.loads(missing.stdout) == {"op_id": "never-used", "applied": False}
    misuse = cli("release", "T", "--actor", "a", "--session", "1", "--op-id", "c-1")
    assert misuse.returncode == 2 and "already used for claim of T" in misuse.stderr
    log = cli("log", "T", "--json")
    assert [e["kind"] for e in json.loads(log.stdout)] == ["created", "claimed"]


def test_cli_op_id_on_reservations_posts_and_paths(cli: CLI) -> None:
    """--op-id on reserve, feed post/amend/confirm and reserve-path/release-path: a rerun prints
    the first outcome; the id with other arguments is exit 2 in one line."""
    me = ("--actor", "a", "--session", "1")
    first = cli("reserve", "CMB", *me, "--op-id", "r-1")
    assert first.returncode == 0 and first.stdout.strip() == "CMB-0001", first.stderr
    assert cli("reserve", "CMB", *me, "--op-id", "r-1").stdout.strip() == "CMB-0001"
    other = cli("reserve", "CMB", "--count", "2", *me, "--op-id", "r-1")
    assert other.returncode == 2 and other.stdout == ""
    assert "operation id r-1 was already used for reserve with other arguments" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1 and "Traceback" not in other.stderr
    post = cli("feed", "post", "--kind", "actionable", "--reserve", "CMB", "--subject", "s", *me,
               "--op-id", "p-1", "--json")
    assert post.returncode == 0, post.stderr
    again = cli("feed", "post", "--kind", "actionable", "--reserve", "CMB", "--subject", "s", *me,
                "--op-id", "p-1", "--json")
    assert json.loads(again.stdout)["id"] == json.loads(post.stdout)["id"]
    assert json.loads(again.stdout)["item"] == "CMB-0002"
    post_id = str(json.loads(post.stdout)["id"])
    for _ in range(2):
        amend = cli("feed", "amend", post_id, "--subject", "t", *me, "--op-id", "p-2", "--json")
        assert amend.returncode == 0 and json.loads(amend.stdout)["refs"] == int(post_id)
    for _ in range(2):
        confirm = cli("feed", "confirm", post_id, *me, "--op-id", "p-3", "--json")
        assert confirm.returncode == 0 and json.loads(confirm.stdout)["already"] is False
    assert len(json.loads(cli("feed", "list", "--json").stdout)) == 3
    for _ in range(2):
        held = cli("reserve-path", "src/**", *me, "--op-id", "f-1", "--json")
        assert held.returncode == 0 and json.loads(held.stdout)[0]["fence"] == 1
    for _ in range(2):
        gone = cli("release-path", "src/**", *me, "--op-id", "f-2", "--json")
        assert gone.returncode == 0 and json.loads(gone.stdout)[0]["released"] is True
    looked = json.loads(cli("op", "f-2", "--json").stdout)
    assert looked["applied"] is True and looked["kind"] == "release_paths"
    assert cli("op", "r-1").stdout.startswith("operation r-1: applied: reserve by a:1 at ")
    assert cli("op", "r-1").stdout.rstrip().endswith("; CMB-0001")
    assert cli("op", "p-1").stdout.rstrip().endswith(f"; post #{post_id} (CMB-0002)")


@pytest.mark.parametrize("db_url", ["sqlite", "postgres", "remote"], indirect=True)
def test_cli_replay_of_a_lease_since_expired_is_not_reported_valid(cli: CLI) -> None:
    # The retry replays the first outcome (same lease, exit 0), but it must not call a lease
    # valid whose expiry has passed by the time of the retry.
    first = cli("claim", "T", "--actor", "a", "--session", "1", "--ttl", "1s", "--op-id", "c-1",
                "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["lease_valid"] is True
    until = json.loads(first.stdout)["lease_until"]
    wait_for(lambda: not json.loads(cli("status", "T", "--json").stdout)["lease_valid"],
             timeout=60, what="the lease to expire", step=0.2)
    again = cli("claim", "T", "--actor", "a", "--session", "1", "--ttl", "1s", "--op-id", "c-1",
                "--json")
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["lease_until"] == until and data["fence"] == 1
    assert data["lease_valid"] is False
    assert "no longer valid: claim again" in again.stderr
    # The same in text mode, where no lease_valid field shows it.
    text = cli("claim", "T", "--actor", "a", "--session", "1", "--ttl", "1s", "--op-id", "c-1")
    assert text.returncode == 0 and "fence 1" in text.stdout
    assert "replays operation c-1" in text.stderr and "no longer valid" in text.stderr
    fresh = cli("claim", "U", "--actor", "a", "--session", "1", "--op-id", "c-2")
    again = cli("claim", "U", "--actor", "a", "--session", "1", "--op-id", "c-2")
    assert fresh.returncode == again.returncode == 0 and again.stderr == ""


@pytest.mark.slow
def test_eight_processes_retrying_one_op_id_apply_it_once(cli: CLI, tmp_path: Path) -> None:
    """Eight real processes send the same claim with the same op id at once (a client's retries
    racing each other): one grant, and every process reports that same lease."""
    go = Gate(tmp_path / "go")
    procs = []
    for i in range(8):
        ready = tmp_path / f"ready-{i}"
        env = dict(cli.env, LEASEHOLD_DB=cli.db, PYTHONPATH=str(REPO))
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "tests.racers", "cli", str(go), str(ready),
             "claim", "T", "--actor", "a", "--session", "1", "--op-id", "dup-1", "--json"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ), ready))
    deadline = time.monotonic() + 60
    while not all(ready.exists() for _, ready in procs):
        assert time.monotonic() < deadline, "racers never became ready"
        assert all(p.poll() is None for p, _ in procs), "a racer died before the barrier"
        time.sleep(0.005)
    go.release()
    results = [(p.wait(timeout=60), *p.communicate()) for p, _ in procs]
    assert [code for code, _, _ in results] == [0] * 8, [err for _, _, err in results]
    leases = {(json.loads(out)["fence"], json.loads(out)["lease_until"]) for _, out, _ in results}
    assert len(leases) == 1
    with Ledger.open(cli.db) as ledger:
        assert kinds(ledger, "T") == ["created", "claimed"]


def waiting_on_locks(pids: list[int]) -> int:
    from tests import pg

    with pg.admin() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) "
                            "AND cardinality(pg_blocking_pids(pid)) > 0", (pids,)).fetchone()[0]


@pytest.mark.postgres
def test_concurrent_retries_of_one_release_both_report_it_released(pg_url: str) -> None:
    """Two connections send the same release with the same op id while a third holds the row:
    one applies it, the other finds nothing to release; both must report the first outcome
    (released), not "not held"."""
    from tests.test_clock_after_lock import Call, PgHolder

    with Ledger.open(pg_url) as setup:
        setup.claim("T", "a:1", ttl=600)
    ledgers = [Ledger.open(pg_url), Ledger.open(pg_url)]
    try:
        pids = []
        for led in ledgers:
            led.now()
            pids.append(led.store.backend_pid())
        holder = PgHolder(pg_url, "T")
        calls = [Call(lambda led=led: led.release("T", "a:1", op_id="rel-race")) for led in ledgers]
        wait_for(lambda: waiting_on_locks(pids) == 2, what="both releases to wait on the row")
        holder.finish()
        for call in calls:
            call.join()
            assert call.error is None, call.error
        assert [call.result.released for call in calls] == [True, True]
    finally:
        for led in ledgers:
            led.close()
    with Ledger.open(pg_url) as check:
        assert kinds(check, "T").count("released") == 1


def _vouched(ledger: Ledger, op_id: str) -> str:
    """``op_id``, with the ledger told it is fresh (what ``Leasehold-Op-Fresh: 1`` does on the
    server): the next call skips the retry lookup."""
    ledger.fresh_op_id = op_id
    return op_id


def test_a_reused_op_id_vouched_fresh_still_replays_every_kind(ledger: Ledger) -> None:
    """A caller that wrongly says a reused id is fresh gets what a retry gets: the first
    outcome, nothing applied twice; another holder, kind or arguments: InvalidInput. Also for
    calls that would change nothing when repeated (dependencies, sweep, add)."""
    ledger.add("build")
    ledger.add("deploy")
    first_dep = ledger.depend("deploy", "build", op_id="f-dp")
    assert ledger.depend("deploy", "build", op_id=_vouched(ledger, "f-dp"))[1] == first_dep[1] == ["build"]
    assert ledger.undepend("deploy", "build", op_id="f-ud")[1] == ["build"]
    assert ledger.undepend("deploy", "build", op_id=_vouched(ledger, "f-ud"))[1] == ["build"]
    assert ledger.blockers("deploy") == []
    with pytest.raises(InvalidInput, match="already used"):
        ledger.depend("deploy", "build", op_id=_vouched(ledger, "f-ud"))
    assert ledger.blockers("deploy") == []

    ledger.add("N1", priority=5, op_id="f-add")
    task, created = ledger.add("N1", priority=5, op_id=_vouched(ledger, "f-add"))
    assert (task.id, task.priority, created) == ("N1", 5, True)

    ledger.claim("S", "a:1", ttl=1)
    wait_for(lambda: ledger.show("S").lease_until < ledger.now(), 10, "the lease expired")
    swept = ledger.sweep(auto_release=True, op_id="f-sw")
    assert [t.id for t in swept] == ["S"]
    assert [t.id for t in ledger.sweep(auto_release=True, op_id=_vouched(ledger, "f-sw"))] == ["S"]

    lease = ledger.claim("T", "a:1", ttl=60, op_id="f-cl")
    ledger.release("T", "a:1", op_id="f-rel")
    again = ledger.claim("T", "a:1", ttl=60, op_id=_vouched(ledger, "f-cl"))
    assert (again.fence, again.expires_at) == (lease.fence, lease.expires_at)
    assert ledger.show("T").lease_holder is None  # not granted again
    with pytest.raises(InvalidInput, match="already used for claim of T by a:1"):
        ledger.claim("T", "b:2", ttl=60, op_id=_vouched(ledger, "f-cl"))
    with pytest.raises(InvalidInput, match="other arguments"):
        ledger.claim("T", "a:1", ttl=30, op_id=_vouched(ledger, "f-cl"))
    assert ledger.show("T").lease_holder is None
    ledger.claim("T", "a:1", ttl=60)  # held again: a vouched resend of the release replays
    assert ledger.release("T", "a:1", op_id=_vouched(ledger, "f-rel")).released
    assert ledger.show("T").lease_holder == "a:1"  # the new lease is kept
    assert kinds(ledger, "T").count("claimed") == 2 and kinds(ledger, "T").count("released") == 1
    assert kinds(ledger, "deploy").count("dependency_added") == 1
    assert kinds(ledger, "deploy").count("dependency_removed") == 1

    # The single-statement paths (PostgreSQL): next, done, done of several.
    ledger.add("Q1")
    got = ledger.next("w:1", ttl=60, op_id="f-next")
    ledger.release(got[0].task_id, "w:1")
    again = ledger.next("w:1", ttl=60, op_id=_vouched(ledger, "f-next"))
    assert [(x.task_id, x.fence) for x in again] == [(x.task_id, x.fence) for x in got]
    assert ledger.show(got[0].task_id).lease_holder is None  # not granted again
    ledger.claim("D1", "a:1", ttl=60)
    done = ledger.complete("D1", "a:1", op_id="f-done")
    ledger.reopen("D1")
    ledger.claim("D1", "a:1", ttl=60)
    assert ledger.complete("D1", "a:1", op_id=_vouched(ledger, "f-done")).status == done.status
    assert ledger.show("D1").lease_holder == "a:1"  # the new lease is not completed
    ledger.claim("D2", "a:1", ttl=60)
    ledger.complete_many(["D2"], "a:1", op_id="f-many")
    ledger.reopen("D2")
    ledger.claim("D2", "a:1", ttl=60)
    assert [t.id for t in ledger.complete_many(["D2"], "a:1", op_id=_vouched(ledger, "f-many"))] == ["D2"]
    assert ledger.show("D2").lease_holder == "a:1"
    assert kinds(ledger, "D1").count("completed") == 1 and kinds(ledger, "D2").count("completed") == 1


RACED = {
    "reserve": (["reserve", "DOC"], lambda out: out),
    "post": (["feed", "post", "--kind", "actionable", "--item", "DOC-0001", "--subject", "s"],
             lambda out: json.loads(out)["id"]),
    "reserve-path": (["reserve-path", "src/**", "--ttl", "10m"],
                     lambda out: [(r["pattern"], r["fence"]) for r in json.loads(out)]),
}


@pytest.mark.slow
@pytest.mark.parametrize("what", sorted(RACED))
def test_eight_processes_retrying_one_op_id_of_a_reservation_or_post_apply_it_once(
        cli: CLI, tmp_path: Path, what: str) -> None:
    """Eight real processes send the same reservation, post or file reservation with one op id
    at once (a client's retries racing each other): it applies once, and every process exits 0
    with that first outcome (none is told the post is a duplicate of itself)."""
    me = ("--actor", "a", "--session", "1")
    assert cli("reserve", "DOC", *me).returncode == 0  # DOC-0001, for the post
    args, outcome = RACED[what]
    go = Gate(tmp_path / "go")
    procs = []
    for i in range(8):
        ready = tmp_path / f"ready-{i}"
        env = dict(cli.env, LEASEHOLD_DB=cli.db, PYTHONPATH=str(REPO))
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "tests.racers", "cli", str(go), str(ready),
             *args, *me, "--op-id", "dup-1", "--json"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ), ready))
    wait_for(lambda: all(ready.exists() for _, ready in procs)
             or any(p.poll() is not None for p, _ in procs), timeout=60, what="the racers")
    assert all(p.poll() is None for p, _ in procs), "a racer died before the barrier"
    go.release()
    results = [(p.wait(timeout=60), *p.communicate()) for p, _ in procs]
    assert [code for code, _, _ in results] == [0] * 8, [err for _, _, err in results]
    assert len({json.dumps(outcome(out)) for _, out, _ in results}) == 1
    with Ledger.open(cli.db) as ledger:
        written = [e.kind for e in ledger.events() if e.details.get("op") == "dup-1"]
        assert written and len(set(written)) == len(written), written  # each event once


def test_op_names_only_the_patterns_a_file_release_released(cli: CLI) -> None:
    me = ("--actor", "a", "--session", "1")
    assert cli("reserve-path", "a/**", *me).returncode == 0
    assert cli("release-path", "a/**", "zz/**", *me, "--op-id", "rp-1").returncode == 0
    shown = cli("op", "rp-1")
    assert shown.returncode == 0 and shown.stdout.rstrip().endswith("; a/**"), shown.stdout


@pytest.mark.parametrize("db_url", ["sqlite", "remote"], indirect=True)
def test_op_finds_an_id_holding_a_slash(cli: CLI) -> None:
    """Operation ids may hold '/' (a mission command's steps are ID/KIND-N): `op` finds them,
    through a server too (GET /v1/ops/ID with the slash escaped)."""
    me = ("--actor", "a", "--session", "1")
    assert cli("claim", "T", *me, "--op-id", "m/claim-1").returncode == 0
    for op_id in ("m/claim-1", "m/claim-1/"):
        found = cli("op", op_id, "--json")
        if op_id.endswith("/"):
            assert found.returncode == 3 and json.loads(found.stdout)["applied"] is False
        else:
            assert found.returncode == 0, found.stderr
            assert json.loads(found.stdout)["kind"] == "claim"
