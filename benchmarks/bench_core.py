"""Core figures on the embedded SQLite ledger, each measured side by side with its floor.

1. claim+release cycles through the Python API vs the raw-SQL floor (the same conditional
   UPDATE plus event INSERT in one BEGIN IMMEDIATE transaction on a bare sqlite3 connection).
2. `leasehold status ID` / `leasehold check ID` wall time vs `python -c pass` (same interpreter).
3. Contention: 16 processes racing for one task per round: time to a decision, double grants.
4. For reference: the same acquire/release cycle with `filelock`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CYCLES = 3000
SPAWNS = 40
ROUNDS = 100
RACERS = 16

FLOOR_CLAIM = """
UPDATE tasks SET lease_actor = ?, lease_session = ?, lease_acquired_at = ?, lease_until = ?,
       lease_ttl = ?, fence = fence + 1, status = 'in_progress', updated_at = ?
WHERE id = ? AND (lease_until IS NULL OR lease_until <= ? OR (lease_actor = ? AND lease_session = ?))
"""
FLOOR_RELEASE = """
UPDATE tasks SET lease_actor = NULL, lease_session = NULL, lease_acquired_at = NULL,
       lease_until = NULL, lease_ttl = NULL, status = 'open', updated_at = ?
WHERE id = ? AND lease_actor = ? AND lease_session = ?
"""
FLOOR_EVENT = ("INSERT INTO events (ts, kind, task_id, actor, session, fence, details) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)")


def per_cycle_api(db: str, cycles: int) -> float:
    from leasehold import Holder, Ledger

    holder = Holder("bench", "s1")
    with Ledger.open(db, create=True) as ledger:
        ledger.add("api-task")
        started = time.perf_counter()
        for _ in range(cycles):
            ledger.claim("api-task", holder, 60)
            ledger.release("api-task", holder)
        return (time.perf_counter() - started) / cycles


def per_cycle_floor(db: str, cycles: int) -> float:
    from leasehold import Ledger

    with Ledger.open(db) as ledger:  # same schema and pragmas
        ledger.add("floor-task")
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    conn.execute("PRAGMA synchronous=NORMAL")
    started = time.perf_counter()
    for _ in range(cycles):
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(FLOOR_CLAIM, ("bench", "s1", now, now + 60, 60.0, now, "floor-task", now,
                                         "bench", "s1"))
        assert cur.rowcount == 1
        conn.execute(FLOOR_EVENT, (now, "claimed", "floor-task", "bench", "s1", 0, "{}"))
        conn.execute("COMMIT")
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(FLOOR_RELEASE, (now, "floor-task", "bench", "s1"))
        assert cur.rowcount == 1
        conn.execute(FLOOR_EVENT, (now, "released", "floor-task", "bench", "s1", 0, "{}"))
        conn.execute("COMMIT")
    elapsed = (time.perf_counter() - started) / cycles
    conn.close()
    return elapsed


def per_cycle_filelock(folder: str, cycles: int) -> float:
    from filelock import FileLock

    lock = FileLock(os.path.join(folder, "task.lock"))
    started = time.perf_counter()
    for _ in range(cycles):
        lock.acquire()
        lock.release()
    return (time.perf_counter() - started) / cycles


def spawn_times(commands: dict[str, list[str]], env: dict[str, str], n: int,
                where: dict[str, tuple[str, dict[str, str]]] | None = None) -> dict[str, list[float]]:
    """Wall time of each command, interleaved round-robin so drift hits all alike. ``where``:
    the (working directory, environment) of some commands."""
    where = where or {}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(3):  # warm caches
        for name, cmd in commands.items():
            cwd, cmd_env = where.get(name, (None, env))
            subprocess.run(cmd, env=cmd_env, cwd=cwd, capture_output=True)
    for _ in range(n):
        for name, cmd in commands.items():
            cwd, cmd_env = where.get(name, (None, env))
            started = time.perf_counter()
            subprocess.run(cmd, env=cmd_env, cwd=cwd, capture_output=True)
            times[name].append(time.perf_counter() - started)
    return times


CONTENDER = r"""
import os, sys, time, json
from leasehold import Holder, Ledger, LeaseHeld
db, index, folder, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
holder = Holder("racer", f"r{index}")
results = []
with Ledger.open(db) as ledger:
    open(os.path.join(folder, f"ready-{index}"), "w").close()
    for r in range(rounds):
        go = os.path.join(folder, f"go-{r}")
        while not os.path.exists(go):
            time.sleep(0.0002)
        with open(go) as fh:
            t0 = float(fh.read() or 0)
        try:
            ledger.claim(f"round-{r}", holder, 60)
            won = True
        except LeaseHeld:
            won = False
        results.append((r, won, time.time() - t0))
        open(os.path.join(folder, f"done-{r}-{index}"), "w").close()
print(json.dumps(results))
"""


def contention(db: str, folder: str) -> dict:
    from leasehold import Ledger

    Ledger.open(db, create=True).close()
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", CONTENDER, db, str(i), folder, str(ROUNDS)],
                              stdout=subprocess.PIPE, text=True, env=env) for i in range(RACERS)]

    def wait_for(paths: list[str]) -> None:
        deadline = time.monotonic() + 120
        while not all(os.path.exists(p) for p in paths):
            if time.monotonic() > deadline:
                raise RuntimeError("contenders stalled")
            time.sleep(0.001)

    wait_for([os.path.join(folder, f"ready-{i}") for i in range(RACERS)])
    for r in range(ROUNDS):
        tmp = os.path.join(folder, f"go-{r}.tmp")
        with open(tmp, "w") as fh:
            fh.write(repr(time.time()))
        os.replace(tmp, os.path.join(folder, f"go-{r}"))
        wait_for([os.path.join(folder, f"done-{r}-{i}") for i in range(RACERS)])
    latencies, winners = [], {}
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        for r, won, latency in json.loads(out):
            latencies.append(latency)
            winners[r] = winners.get(r, 0) + (1 if won else 0)
    from leasehold import Ledger

    with Ledger.open(db) as ledger:
        granted = {}
        for e in ledger.events():
            if e.kind == "claimed":
                granted[e.task_id] = granted.get(e.task_id, 0) + 1
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "double_grants": sum(1 for n in winners.values() if n > 1) + sum(1 for n in granted.values() if n > 1),
        "rounds_without_winner": sum(1 for r in range(ROUNDS) if winners.get(r, 0) == 0),
    }


def linked_worktree_setup(folder: str) -> str | None:
    """A git repository in ``folder`` whose committed leasehold.toml names its ledger by a
    relative path (with the task ``spawn-task`` held), and a linked worktree of it; returns the
    worktree (None without git)."""
    import shutil

    from leasehold import Ledger

    if shutil.which("git") is None:
        return None
    repo = os.path.join(folder, "repo")
    with Ledger.open(os.path.join(repo, ".leasehold", "ledger.db"), create=True) as ledger:
        ledger.claim("spawn-task", "bench:s2", 3600)
    with open(os.path.join(repo, "leasehold.toml"), "w") as fh:
        fh.write('db = ".leasehold/ledger.db"\n')
    git = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench"]
    for args in (["init", "-q"], ["add", "leasehold.toml"], ["commit", "-qm", "leasehold"],
                 ["worktree", "add", "-q", os.path.join(folder, "wt")]):
        subprocess.run(git + args, cwd=repo, check=True, capture_output=True)
    return os.path.join(folder, "wt")


def run(report) -> None:
    with tempfile.TemporaryDirectory(prefix="leasehold-bench-") as folder:
        db = os.path.join(folder, "ledger.db")
        # 1 + 4: interleave repetitions so that drift on a noisy machine hits every side alike
        api, floor, flock = [], [], []
        for _ in range(3):
            api.append(per_cycle_api(db, CYCLES))
            floor.append(per_cycle_floor(db, CYCLES))
            flock.append(per_cycle_filelock(folder, CYCLES))
        a, f, fl = min(api), min(floor), min(flock)
        report.section(
            "1. claim+release cycle: Python API vs raw-SQL floor (SQLite)",
            report.table(
                ["path", "µs per cycle", "cycles/s", "ratio to floor"],
                [
                    ["leasehold API (Ledger.claim + Ledger.release)", f"{a * 1e6:.1f}", f"{1 / a:,.0f}", f"{a / f:.2f}x"],
                    ["raw SQL floor (UPDATE + event INSERT, BEGIN IMMEDIATE, bare sqlite3)", f"{f * 1e6:.1f}", f"{1 / f:,.0f}", "1.00x"],
                    ["filelock.FileLock acquire+release (reference: no TTL, no audit, one machine)", f"{fl * 1e6:.1f}", f"{1 / fl:,.0f}", f"{fl / f:.2f}x"],
                ],
            )
            + f"\n\n{CYCLES} cycles per run, best of 3 interleaved runs. Target: leasehold <= 1.3x the floor.",
        )

        bindir = Path(sys.executable).parent
        leasehold = str(bindir / "leasehold")
        env = dict(os.environ, LEASEHOLD_DB=db, LEASEHOLD_ACTOR="bench", LEASEHOLD_SESSION="s2")
        subprocess.run([leasehold, "claim", "spawn-task"], env=env, capture_output=True, check=True)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import argparse, sqlite3' (the parser and driver alone)":
                [sys.executable, "-c", "import argparse, sqlite3"],
            "leasehold status ID": [leasehold, "status", "spawn-task"],
            "leasehold check ID": [leasehold, "check", "spawn-task"],
        }
        where = {}
        worktree = linked_worktree_setup(folder)
        if worktree is not None:  # the ledger named by leasehold.toml, found through the main worktree
            name = "leasehold status ID (db in leasehold.toml, from a linked git worktree)"
            commands[name] = [leasehold, "status", "spawn-task"]
            where[name] = (worktree, {k: v for k, v in env.items() if k != "LEASEHOLD_DB"})
        times = spawn_times(commands, env, SPAWNS, where)
        base = statistics.median(times["python -c pass"])
        rows = []
        for name, values in times.items():
            med = statistics.median(values)
            rows.append([name, f"{med * 1000:.1f}", f"{min(values) * 1000:.1f}", f"{med / base:.2f}x"])
        report.section(
            "2. CLI start-up: status/check vs the bare interpreter",
            report.table(["command", "median ms", "min ms", "ratio to python -c pass"], rows)
            + f"\n\n{SPAWNS} interleaved runs each, same interpreter ({sys.executable}). Target: <= 2x."
            " The second row is the floor of any CLI that parses with argparse and opens SQLite: the"
            " gap above it is leasehold's own import, settings, connection and query.",
        )

        stats = contention(os.path.join(folder, "race.db"), folder)
        report.section(
            "3. Contention: 16 processes racing for one task, 100 rounds (SQLite)",
            report.table(
                ["p50 ms to decision", "p99 ms to decision", "double grants", "rounds without a winner"],
                [[f"{stats['p50'] * 1000:.2f}", f"{stats['p99'] * 1000:.2f}", stats["double_grants"],
                  stats["rounds_without_winner"]]],
            )
            + "\n\nEach process holds its own connection and claims through the Python API the moment the"
            " round's go-file appears; latency is from the go signal to the claim's answer (won or"
            " LeaseHeld). Double grants are counted both from the processes' answers and from the"
            " event log. Must be 0.",
        )
