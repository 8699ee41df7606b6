"""The demo end to end, and the event-log invariant checker it relies on."""

from __future__ import annotations

import json

from leasehold.invariants import check_invariants
from leasehold.model import Event
from tests.conftest import CLI


def test_demo_kills_a_worker_and_keeps_the_invariants(sqlite_cli: CLI) -> None:
    result = sqlite_cli("demo", "--workers", "4", "--tasks", "16", "--ttl", "1s", "--json",
                        db=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] and summary["done"] == 16 and summary["violations"] == []
    assert summary["killed_task"] is not None
    taken = [t for t in summary["takeovers"] if t["task_id"] == summary["killed_task"]]
    assert taken and taken[0]["fence"] >= 2 and taken[0]["from"].startswith("worker-0:")
    assert "invariants: OK" in summary["report"]


def test_demo_text_output(sqlite_cli: CLI, tmp_path) -> None:
    missing = sqlite_cli("demo", "--db", str(tmp_path / "demo.db"), db=False)
    assert missing.returncode == 78 and not (tmp_path / "demo.db").exists()  # never created silently
    assert "leasehold init" in missing.stderr
    assert sqlite_cli("init", "--db", str(tmp_path / "demo.db"), db=False).returncode == 0
    result = sqlite_cli("demo", "--workers", "2", "--tasks", "5", "--ttl", "1s",
                        "--db", str(tmp_path / "demo.db"), db=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("invariants: OK")
    assert "killed worker-0" in result.stderr
    assert (tmp_path / "demo.db").exists()


def ev(i: int, kind: str, task: str, who: str, fence: int, ts: float, **details) -> Event:
    actor, session = who.split(":")
    return Event(id=i, ts=ts, kind=kind, task_id=task, actor=actor, session=session, fence=fence,
                 details=details)


def test_invariants_accept_a_clean_history() -> None:
    events = [
        ev(1, "claimed", "t", "a:1", 1, 100.0, expires_at=110.0),
        ev(2, "extended", "t", "a:1", 1, 105.0, expires_at=115.0),
        ev(3, "claimed", "t", "b:1", 2, 115.0, expires_at=125.0, previous_holder="a:1"),
        ev(4, "completed", "t", "b:1", 2, 120.0),
    ]
    assert check_invariants(events, ["t"]) == []


def test_invariants_catch_each_violation() -> None:
    overlap = [ev(1, "claimed", "t", "a:1", 1, 100.0, expires_at=110.0),
               ev(2, "claimed", "t", "b:1", 2, 105.0, expires_at=115.0)]
    assert any("overlapping" in v for v in check_invariants(overlap))
    same_fence = [ev(1, "claimed", "t", "a:1", 1, 100.0, expires_at=110.0),
                  ev(2, "released", "t", "a:1", 1, 101.0),
                  ev(3, "claimed", "t", "b:1", 1, 102.0, expires_at=112.0)]
    assert any("did not increase" in v for v in check_invariants(same_fence))
    twice = [ev(1, "claimed", "t", "a:1", 1, 100.0, expires_at=110.0),
             ev(2, "completed", "t", "a:1", 1, 101.0),
             ev(3, "claimed", "t", "b:1", 2, 102.0, expires_at=112.0),
             ev(4, "completed", "t", "b:1", 2, 103.0)]
    assert any("completed 2 times" in v for v in check_invariants(twice))
    stranger = [ev(1, "claimed", "t", "a:1", 1, 100.0, expires_at=110.0),
                ev(2, "extended", "t", "b:1", 1, 101.0, expires_at=111.0)]
    assert any("not its holder" in v for v in check_invariants(stranger))
    late = [ev(1, "claimed", "t", "a:1", 1, 100.0, expires_at=110.0),
            ev(2, "extended", "t", "a:1", 1, 111.0, expires_at=121.0)]
    assert any("after its lease expired" in v for v in check_invariants(late))
    assert any("never completed" in v for v in check_invariants([], ["t"]))


def test_a_lease_expiring_while_a_worker_looks_does_not_end_the_backlog(tmp_path) -> None:
    """A worker with nothing to claim stops only when every task is done. A lease that expires
    between two reads of that check must not look like 'nothing left' (the demo's survivors
    then quit before taking over the killed worker's task: 'never completed')."""
    from leasehold import Ledger
    from leasehold.demo import backlog_done

    class SteppingClock:
        """Each read moves time on by ``step`` seconds."""

        def __init__(self) -> None:
            self.now, self.step = 1_800_000_000.0, 0.0

        def __call__(self) -> float:
            now = self.now
            self.now += self.step
            return now

    clock = SteppingClock()
    with Ledger.open(str(tmp_path / "ledger.db"), create=True, clock=clock) as ledger:
        lease = ledger.claim("t", "victim:1", ttl=1)
        clock.now, clock.step = lease.expires_at - 0.3, 0.6  # valid at one read, expired at the next
        assert not backlog_done(ledger)
        clock.step = 0.0
        ledger.claim("t", "survivor:1", ttl=1)
        ledger.complete("t", "survivor:1")
        assert backlog_done(ledger)


def test_demo_refuses_a_ledger_that_already_has_tasks(cli: CLI) -> None:
    """--db names a ledger for the demo alone: its workers complete whatever is ready, so a
    ledger with tasks (someone's backlog, or a previous demo's) is refused, untouched."""
    assert cli("add", "real-work").returncode == 0
    refused = cli("demo", "--workers", "2", "--tasks", "3", "--db", cli.db, db=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "empty ledger" in refused.stderr and "Traceback" not in refused.stderr
    assert cli("status", "real-work").stdout == "available\n"
    assert [(t["id"], t["status"]) for t in json.loads(cli("list", "--json").stdout)] == [
        ("real-work", "open")]
