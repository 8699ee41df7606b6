"""The ready queue with dependencies, on every backend: add --blocked-by, dep add/remove,
cycles refused, ready, blocked, and `next` handing out exactly the ready set."""

from __future__ import annotations

import json

import pytest

from leasehold import Ledger
from leasehold.errors import DependencyCycle, InvalidInput, NotFound


def test_blocked_task_waits_until_every_blocker_is_done(ledger: Ledger) -> None:
    ledger.add("build", priority=1)
    ledger.add("test")
    task, created, added = ledger.add_blocked("deploy", "build,test", priority=9, title="Ship")
    assert created and added == ["build", "test"] and task.priority == 9
    assert [t.id for t in ledger.ready()] == ["build", "test"]
    assert [(t.id, w) for t, w in ledger.blocked()] == [
        ("deploy", [("build", "open"), ("test", "open")])]
    # next never hands out deploy, though it has the highest priority
    got = [lease.task_id for lease in ledger.next("w:1", ttl=60, count=10)]
    assert got == ["build", "test"]
    assert ledger.next("w:2", ttl=60) == []
    ledger.complete("build", "w:1")
    assert [(t.id, w) for t, w in ledger.blocked()] == [("deploy", [("test", "in_progress")])]
    assert ledger.next("w:2", ttl=60) == []
    ledger.complete("test", "w:1")
    assert [t.id for t in ledger.ready()] == ["deploy"]
    assert ledger.blocked() == []
    assert [lease.task_id for lease in ledger.next("w:2", ttl=60)] == ["deploy"]


def test_ready_orders_by_priority_then_age_and_limits(ledger: Ledger) -> None:
    for name, prio in (("a", 0), ("b", 5), ("c", 0), ("d", 5)):
        ledger.add(name, priority=prio)
    ledger.claim("c", "x:1", ttl=60)
    ledger.add("e")
    ledger.depend("e", "a")
    assert [t.id for t in ledger.ready()] == ["b", "d", "a"]
    assert [t.id for t in ledger.ready(limit=2)] == ["b", "d"]
    with pytest.raises(InvalidInput):
        ledger.ready(limit=0)


def test_cycles_are_refused_and_nothing_is_written(ledger: Ledger) -> None:
    for name in "abcd":
        ledger.add(name)
    ledger.depend("b", "a")
    ledger.depend("c", "b")
    ledger.depend("d", "c")
    before = len(ledger.events())
    with pytest.raises(DependencyCycle, match="cycle"):
        ledger.depend("a", "d")  # a <- b <- c <- d <- a
    with pytest.raises(DependencyCycle):
        ledger.depend("b", "c")
    with pytest.raises(InvalidInput, match="itself"):
        ledger.depend("a", "a")
    assert len(ledger.events()) == before
    assert ledger.blockers("a") == []


def test_unknown_blocker_writes_nothing(ledger: Ledger) -> None:
    ledger.add("a")
    with pytest.raises(NotFound, match="ghost"):
        ledger.add_blocked("new", "a,ghost")
    assert ledger.status("new") is None
    with pytest.raises(NotFound):
        ledger.depend("nope", "a")
    with pytest.raises(NotFound):
        ledger.undepend("nope", "a")


def test_dependency_changes_append_events(ledger: Ledger) -> None:
    ledger.add("a")
    ledger.add("b")
    task, added = ledger.depend("b", ["a", "a"], by=None)
    assert added == ["a"]
    assert ledger.depend("b", "a")[1] == []  # already there: no new event
    assert ledger.undepend("b", "a")[1] == ["a"]
    assert ledger.undepend("b", "a")[1] == []
    events = [(e.kind, {k: v for k, v in e.details.items() if k != "op"})  # op: the operation id
              for e in ledger.events("b")]
    assert events[1:] == [("dependency_added", {"blocked_by": "a"}),
                          ("dependency_removed", {"blocked_by": "a"})]
    assert [t.id for t in ledger.ready()] == ["a", "b"]


def test_reopened_blocker_blocks_again(ledger: Ledger) -> None:
    ledger.claim("a", "w:1")
    ledger.complete("a", "w:1")
    ledger.add_blocked("b", "a")
    assert [t.id for t in ledger.ready()] == ["b"]
    ledger.reopen("a")
    assert [t.id for t in ledger.ready()] == ["a"]


# -- CLI ---------------------------------------------------------------------------------------
def test_cli_dependencies(cli) -> None:
    assert cli("add", "build").returncode == 0
    assert cli("add", "test").returncode == 0
    out = cli("add", "deploy", "--blocked-by", "build,test", "--priority", "3", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["created"] is True
    assert [b["id"] for b in data["blocked_by"]] == ["build", "test"]
    ready = cli("ready", "--json")
    assert [t["id"] for t in json.loads(ready.stdout)] == ["build", "test"]
    assert cli("ready", "--limit", "1").stdout.startswith("build ")
    blocked = cli("blocked", "--json")
    rows = json.loads(blocked.stdout)
    assert [(r["id"], [b["id"] for b in r["blocked_by"]]) for r in rows] == [("deploy", ["build", "test"])]
    assert "deploy  [open, p3]  waits on build (open), test (open)" in cli("blocked").stdout
    cycle = cli("dep", "add", "build", "--blocked-by", "deploy")
    assert cycle.returncode == 1 and "cycle" in cycle.stderr and "Traceback" not in cycle.stderr
    missing = cli("dep", "add", "deploy", "--blocked-by", "ghost")
    assert missing.returncode == 3 and "ghost" in missing.stderr
    removed = cli("dep", "remove", "deploy", "--blocked-by", "test", "--json")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["changed"] == ["test"]
    nxt = cli("next", "--json", "--actor", "w", "--session", "1", "--count", "5")
    assert [t["id"] for t in json.loads(nxt.stdout)] == ["build", "test"]
    assert cli("done", "build", "--actor", "w", "--session", "1").returncode == 0
    final = cli("next", "--json", "--actor", "w", "--session", "2")
    assert json.loads(final.stdout)["id"] == "deploy"
    kinds = [e["kind"] for e in json.loads(cli("log", "deploy", "--json").stdout)]
    assert kinds == ["created", "dependency_added", "dependency_added", "dependency_removed", "claimed"]


def test_cli_dependency_usage_errors(cli) -> None:
    assert cli("add", "a").returncode == 0
    assert cli("dep", "add", "a", "--blocked-by", "a").returncode == 2
    assert cli("dep", "add", "a", "--blocked-by", "bad id!").returncode == 2
    assert cli("dep", "frob", "a", "--blocked-by", "b").returncode == 2
    assert cli("ready", "--limit", "0").returncode == 2
    assert "no task is blocked" in cli("blocked").stdout
    helptext = cli("dep", "--help").stdout
    assert "examples:" in helptext and "exit codes:" in helptext
