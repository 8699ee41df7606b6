"""Races between real OS processes on a real database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from leasehold import Ledger
from leasehold.invariants import check_invariants
from tests.conftest import CLI, REPO, wait_for
from tests.racers import Gate

pytestmark = pytest.mark.slow

RACERS = 16
TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def start_racers(cli: CLI, tmp_path: Path, mode: str, round_id: str, args_for, *,
                 count: int = RACERS, extra_env: dict[str, str] | None = None) -> tuple[list, Path]:
    """Start ``count`` racer processes (``tests/racers.py``, ``mode`` ``cli`` or ``exec``), wait
    until every one is ready, and release them together through a :class:`Gate`."""
    go = Gate(tmp_path / f"go-{round_id}")
    procs = []
    for i in range(count):
        ready = tmp_path / f"ready-{round_id}-{i}"
        env = dict(cli.env, LEASEHOLD_DB=cli.db, PYTHONPATH=str(REPO))
        env.update(extra_env or {})
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "tests.racers", mode, str(go), str(ready), *args_for(i)],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ), ready))
    wait_for(lambda: all(ready.exists() for _, ready in procs)
             or any(p.poll() is not None for p, _ in procs), timeout=120, what="racers ready")
    assert all(p.poll() is None for p, _ in procs), "a racer died before the barrier"
    go.release()
    return [p for p, _ in procs], go


@pytest.mark.parametrize("mode,rounds", [("cli", 3), ("exec", 2)])
def test_sixteen_processes_claim_one_task_exactly_one_wins(cli: CLI, tmp_path: Path, mode: str,
                                                           rounds: int) -> None:
    for r in range(rounds):
        task = f"race-{mode}-{r}"
        procs, _ = start_racers(cli, tmp_path, mode, task,
                                lambda i, task=task: ["claim", task, "--actor", f"racer{i}", "--session", f"s{i}"])
        results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
        winners = [i for i, (code, _, _) in enumerate(results) if code == 0]
        assert len(winners) == 1, [(c, e) for c, _, e in results]
        winner = f"racer{winners[0]}:s{winners[0]}"
        assert f"claimed {task} as {winner} until" in results[winners[0]][1]
        for i, (code, _out, err) in enumerate(results):
            if i == winners[0]:
                continue
            assert code == 1, err
            assert re.fullmatch(rf"Task {re.escape(task)} held by {winner} until {TS}\n", err), err
    with Ledger.open(cli.db) as ledger:
        claimed = Counter(e.task_id for e in ledger.events() if e.kind == "claimed")
        assert set(claimed.values()) == {1} and len(claimed) == rounds
        assert check_invariants(ledger.events()) == []


def test_eight_processes_drain_two_hundred_tasks_each_done_once(db_url: str, tmp_path: Path,
                                                                base_env: dict) -> None:
    """Eight drain processes, released together; each first takes one task with `next` and
    holds it until all eight hold one (a second barrier), so the eight concurrent first grants
    must be eight distinct tasks and every worker completes at least one: outcomes of the
    protocol, not of how the machine happens to schedule the processes."""
    ids = [f"job-{i:03d}" for i in range(200)]
    with Ledger.open(db_url) as ledger:
        for i, task_id in enumerate(ids):
            ledger.add(task_id, priority=i % 3)
    env = dict(base_env, PYTHONPATH=str(REPO))
    go, go2 = Gate(tmp_path / "go"), Gate(tmp_path / "go2")
    files = [(tmp_path / f"ready-{n}", tmp_path / f"held-{n}") for n in range(8)]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.racers", "drain", db_url, f"w{n}",
                               str(go), str(ready), str(held), str(go2)],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
             for n, (ready, held) in enumerate(files)]
    try:
        def all_there(paths: list[Path]) -> bool:
            assert all(p.poll() is None for p in procs), "a drain process died at a barrier"
            return all(path.exists() for path in paths)

        wait_for(lambda: all_there([ready for ready, _ in files]), timeout=120, what="drainers ready")
        go.release()
        wait_for(lambda: all_there([held for _, held in files]), timeout=120,
                 what="every drainer holding its first task")
        first = [held.read_text().split() for _, held in files]
        go2.release()
        done: list[str] = []
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0
            done.extend(out.split())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert all(len(held) == 1 for held in first), first
    assert len({held[0] for held in first}) == 8, f"two drainers were granted one task: {first}"
    assert sorted(done) == ids, "a task was done twice or never"
    with Ledger.open(db_url) as ledger:
        events = ledger.events()
        assert check_invariants(events, ids) == []
        workers = {e.actor for e in events if e.kind == "completed"}
        assert workers == {f"w{n}" for n in range(8)}
        assert all(t.status == "done" for t in ledger.tasks())


def test_cli_next_drain_by_racing_processes(cli: CLI, tmp_path: Path) -> None:
    """Twenty tasks, sixteen real CLI processes calling `next` at the barrier: 16 distinct grants."""
    with Ledger.open(cli.db) as ledger:
        for i in range(20):
            ledger.add(f"n{i:02d}")
    procs, _ = start_racers(cli, tmp_path, "cli", "next", lambda i: ["next", "--actor", f"r{i}",
                                                                     "--session", "s", "--json"])
    import json

    got = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        got.append(json.loads(out)["id"])
    assert len(set(got)) == RACERS
    assert os.path.exists(cli.db) or cli.db.startswith("postgres")



def test_first_use_waits_for_a_reader_instead_of_failing(sqlite_cli: CLI, tmp_path: Path) -> None:
    """Switching a new ledger to WAL needs an exclusive lock, and SQLite does not run the busy
    handler for it: a process creating the ledger (``leasehold init``) while another process
    holds a lock on the new, still empty file must wait for the lock (up to busy_timeout), not
    fail with 'database is locked'."""
    import sqlite3

    path = tmp_path / "fresh.db"
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN IMMEDIATE")  # holds the RESERVED lock of a file not yet in WAL mode
    sqlite_cli.db = str(path)
    proc = sqlite_cli.popen("init", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    still_waiting = proc.poll() is None
    reader.execute("COMMIT")
    reader.close()
    out, err = proc.communicate(timeout=30)
    assert still_waiting, f"gave up instead of waiting for the lock: {err}"
    assert proc.returncode == 0, err
