"""The verification harness (verify/): the linearizability checker on hand-made histories, a
small sample of recorded histories from real processes (the full run is ``make verify``), the
checker's self-test on mutated recordings, and a short-TTL run checked on the event log."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from verify import pgdb
from verify.checker import LINEARIZABLE, UNKNOWN, VIOLATION, Op, check_history, check_partition
from verify.eventlog import check_event_log, read_records
from verify.model import INIT, step
from verify.mutate import KINDS, mutate
from verify.recorder import Pool, load_history, save_history

from leasehold import Ledger
from leasehold.verify import verify_ledger


def op(i, process, f, holder, invoke, ret, value=None, outcome="ok", task="t"):
    return Op(i, process, task, f, holder, invoke, ret, outcome, value)


# -- the model ---------------------------------------------------------------------------------
def test_model_follows_the_ledger_rules() -> None:
    s, v = step(INIT, "extend", "a:1")
    assert v == ("notfound",) and s == INIT
    s, v = step(INIT, "claim", "a:1")
    assert v == ("ok", "a:1", 1) and s == (True, "a:1", 1, "in_progress")
    assert step(s, "claim", "a:1")[1] == ("ok", "a:1", 1)          # renewal: same fence
    assert step(s, "claim", "b:1")[1] == ("held", "a:1", 1)
    assert step(s, "extend", "b:1")[1] == ("held", "a:1", 1)
    assert step(s, "release", "b:1")[1] == ("held", "a:1", 1)
    reopened, v = step(s, "reopen", "b:1")
    assert v == ("ok", "a:1", 1) and reopened == (True, "a:1", 1, "open")  # the lease stays
    released, v = step(s, "release", "a:1")
    assert v == ("released", 1) and released == (True, None, 1, "open")
    assert step(released, "release", "a:1")[1] == ("notheld",)        # not held: exit 0
    assert step(released, "done", "a:1")[1] == ("notholder",)
    assert step(released, "claim", "b:1")[1] == ("ok", "b:1", 2)     # new grant: fence + 1
    done, v = step(s, "done", "a:1")
    assert v == ("ok", 1) and done == (True, None, 1, "done")
    assert step(done, "claim", "a:1")[1] == ("taskdone",)
    assert step(step(done, "reopen", "a:1")[0], "claim", "b:1")[1] == ("ok", "b:1", 2)
    assert step(done, "status", "x:y")[1] == ("task", None, 1, "done")


# -- the checker on hand-made histories -----------------------------------------------------
def test_sequential_and_concurrent_histories_that_are_linearizable() -> None:
    ops = [op(0, 1, "claim", "a:1", 0, 1, ("ok", "a:1", 1)),
           op(1, 2, "claim", "b:1", 2, 3, ("held", "a:1", 1)),
           op(2, 1, "release", "a:1", 4, 5, ("released", 1)),
           # b's claim and a's status overlap: either order explains the answers
           op(3, 2, "claim", "b:1", 6, 9, ("ok", "b:1", 2)),
           op(4, 1, "status", "a:1", 7, 8, ("task", None, 1, "open"))]
    assert check_history(ops).verdict == LINEARIZABLE


def test_two_grants_of_one_fence_are_a_violation_naming_the_op() -> None:
    ops = [op(0, 1, "claim", "a:1", 0, 2, ("ok", "a:1", 1)),
           op(1, 2, "claim", "b:1", 1, 3, ("ok", "b:1", 1))]
    result = check_history(ops)
    assert result.verdict == VIOLATION
    (part,) = result.partitions
    assert part.blocked is not None and part.blocked.id in (0, 1)
    assert "NOT linearizable" in result.explain() and "no order places op #" in result.explain()


def test_a_killed_call_may_or_may_not_have_taken_effect() -> None:
    killed = op(0, 1, "claim", "a:1", 0, None, None, outcome="info")
    took = [killed, op(1, 2, "claim", "b:1", 5, 6, ("held", "a:1", 1))]
    did_not = [killed, op(1, 2, "claim", "b:1", 5, 6, ("ok", "b:1", 1))]
    assert check_history(took).verdict == LINEARIZABLE
    assert check_history(did_not).verdict == LINEARIZABLE
    # but it cannot take effect before it was invoked
    early = [op(1, 2, "claim", "b:1", 0, 1, ("held", "a:1", 1)),
             op(0, 1, "claim", "a:1", 2, None, None, outcome="info")]
    assert check_history(early).verdict == VIOLATION


def test_exit_75_means_no_effect_and_a_75_that_applied_is_named() -> None:
    not_applied = op(0, 1, "claim", "a:1", 0, 1, None, outcome="fail")
    clean = [not_applied, op(1, 2, "claim", "b:1", 2, 3, ("ok", "b:1", 1))]
    assert check_history(clean).verdict == LINEARIZABLE
    applied = [not_applied, op(1, 2, "claim", "b:1", 2, 3, ("held", "a:1", 1))]
    result = check_history(applied)
    assert result.verdict == VIOLATION
    assert [c.id for c in result.partitions[0].culprits] == [0]
    assert "'not applied' op took effect: op #0" in result.explain()


def test_partitions_are_checked_per_task_and_processes_must_be_sequential() -> None:
    ops = [op(0, 1, "claim", "a:1", 0, 1, ("ok", "a:1", 1), task="x"),
           op(1, 2, "claim", "a:1", 0, 1, ("ok", "a:1", 1), task="y")]
    result = check_history(ops)
    assert result.verdict == LINEARIZABLE and [p.task for p in result.partitions] == ["x", "y"]
    overlapping = [op(0, 1, "status", "a:1", 0, 2, ("absent",)), op(1, 1, "status", "a:1", 1, 3, ("absent",))]
    assert check_history(overlapping).malformed


def test_the_time_limit_reports_unknown_instead_of_hanging() -> None:
    # 12 claims and 12 releases by distinct holders, all killed mid-call (each may or may not
    # have applied, in any order), then a status no order can give: the search must try every
    # subset and order of the unknown calls before it can say so.
    ops = []
    for i in range(12):
        ops.append(op(2 * i, 2 * i, "claim", f"h{i}:1", 0, None, outcome="info"))
        ops.append(op(2 * i + 1, 2 * i + 1, "release", f"h{i}:1", 0, None, outcome="info"))
    ops.append(op(99, 99, "status", "z:1", 1, 2, ("task", "ghost:1", 99, "in_progress")))
    result = check_partition(ops, time_limit=0.3)
    assert result.verdict == UNKNOWN and result.explored > 1000


# -- recorded histories from real processes ---------------------------------------------------
def _ledger_verifies_clean(url: str) -> None:
    """``leasehold verify`` on a ledger the recorded workers wrote, after a checkpoint."""
    with Ledger.open(url) as ledger:
        ledger.store.checkpoint()
        report = verify_ledger(ledger.store)
    assert report.ok, "\n".join(str(b) for b in report.breaks)
    assert report.tasks >= 2



@pytest.mark.slow
def test_recorded_histories_are_linearizable_and_every_mutation_is_flagged(sqlite_url: str,
                                                                           tmp_path: Path) -> None:
    clean = []
    with Pool("api", sqlite_url, 8, tmp_path / "logs") as pool:
        for hist, faults in enumerate(["none", "none", "kill", "kill"]):
            ops, stats = pool.run(hist, [f"h{hist}-t{i}" for i in range(3)], 15, faults=faults)
            result = check_history(ops, 20)
            assert result.verdict == LINEARIZABLE, result.explain()
            assert sum(1 for o in ops if o.outcome == "ok") > 60
            if faults == "none":
                assert all(o.outcome == "ok" for o in ops)
                clean.append(ops)
            else:
                assert stats["killed"] >= 1
    _ledger_verifies_clean(sqlite_url)  # the ledger those writers (some killed) left
    saved = tmp_path / "h.jsonl"
    save_history(saved, clean[0], {"config": "test"})
    assert [o.to_dict() for o in load_history(saved)[0]] == [o.to_dict() for o in clean[0]]
    rng = random.Random(3)
    for kind in KINDS:
        applied = 0
        for ops in clean:
            for _ in range(3):
                mutated = mutate(ops, kind, rng)
                if mutated is None:
                    continue
                applied += 1
                new_ops, description = mutated
                assert check_history(new_ops, 20).verdict == VIOLATION, f"{kind} missed: {description}"
        assert applied, f"no place for a {kind} mutation in the recorded histories"


@pytest.mark.slow
def test_cli_histories_with_clients_killed_mid_call(sqlite_url: str, tmp_path: Path) -> None:
    with Pool("cli", sqlite_url, 8, tmp_path / "logs") as pool:
        ops, stats = pool.run(1, ["c-t0", "c-t1"], 2, faults="kill")
    assert stats["killed"] >= 1
    assert any(o.outcome == "info" and "signal 9" in (o.note or "") for o in ops)
    result = check_history(ops, 20)
    assert result.verdict == LINEARIZABLE, result.explain()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_histories_with_backends_terminated(tmp_path: Path) -> None:
    why_not = pgdb.available()
    if why_not:
        from tests import pg

        pg.require_pg()
    terminated = 0
    with pgdb.temporary_database() as (url, name):
        with Pool("api", url, 8, tmp_path / "logs", pgdb.server_url(), name) as pool:
            # Histories until one saw a backend terminated (`make verify` records hundreds).
            for hist in range(4):
                ops, stats = pool.run(hist, [f"p{hist}-t{i}" for i in range(3)], 15, faults="pgkill")
                terminated += stats["terminated"]
                result = check_history(ops, 20)
                # Lost acknowledgements are resolved by operation ids: a backend ended during
                # COMMIT must not make a committed call answer 75.
                assert result.verdict == LINEARIZABLE, result.explain()
                if terminated:
                    break
        _ledger_verifies_clean(url)  # backends terminated mid-transaction leave no break
    assert terminated >= 1


@pytest.mark.slow
def test_short_ttls_with_stalled_heartbeats_hold_on_the_event_log(sqlite_url: str,
                                                                  tmp_path: Path) -> None:
    # Rounds run until a takeover of a stalled holder has happened (a loaded machine may need more
    # than one); every round's history is checked, not only the last.
    for round_ in range(1, 9):
        tasks = [f"s{round_}-t0", f"s{round_}-t1"]
        with Pool("api", sqlite_url, 6, tmp_path / f"logs{round_}") as pool:
            logs, _ = pool.run_raw(round_, {"mode": "stalls", "tasks": tasks, "duration": 4.0,
                                            "stall": 0.5})
        records = read_records(logs)
        with Ledger.open(sqlite_url) as ledger:
            events = sorted((e for t in tasks for e in ledger.events(t)), key=lambda e: e.id)
        violations, counts = check_event_log(events, records)
        assert violations == []
        assert counts["client_grants"] == counts["grants"] + counts["renewals"] > 0
        if counts["takeovers"] >= 1 and counts["lost"] >= 1 and counts["heartbeats"] >= 1:
            break
    assert counts["takeovers"] >= 1 and counts["lost"] >= 1 and counts["heartbeats"] >= 1


def test_the_event_log_check_catches_an_overlap_and_a_fence_jump() -> None:
    from leasehold.model import Event

    def ev(i, kind, who, fence, ts, **details):
        actor, session = who.split(":")
        return Event(id=i, ts=ts, kind=kind, task_id="t", actor=actor, session=session,
                     fence=fence, details=details)

    overlap = [ev(1, "claimed", "a:1", 1, 100.0, expires_at=101.0),
               ev(2, "claimed", "b:1", 2, 100.5, expires_at=101.5, previous_holder="a:1")]
    assert any("overlapping" in v for v in check_event_log(overlap, [])[0])
    jump = [ev(1, "claimed", "a:1", 1, 100.0, expires_at=101.0),
            ev(2, "claimed", "b:1", 3, 101.5, expires_at=102.5, previous_holder="a:1")]
    assert any("not +1" in v for v in check_event_log(jump, [])[0])
    backwards = [ev(1, "claimed", "a:1", 1, 100.0, expires_at=101.0),
                 ev(2, "released", "a:1", 1, 99.9)]
    assert any("stamped" in v for v in check_event_log(backwards, [])[0])
