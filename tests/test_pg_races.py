"""Races on PostgreSQL with real OS processes.

- 48 worker processes claim one task per round, released together through a shared pipe
  (a barrier), 12 rounds: exactly one winner each round. (48, not more: under pytest-xdist this
  runs beside other tests, and the server allows 100 connections.)
- Real ``leasehold claim`` CLI processes race in tests/test_races.py (on both stores).
- 32 processes drain 1,000 tasks with dependency chains through ``next``: every task is done
  exactly once, and never handed out before its blockers were done (checked on the events).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter

import pytest

from leasehold import Ledger

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLAIM_WORKER = r"""
import os, sys
from leasehold import Ledger
from leasehold.errors import LeaseHeld, StoreError
name, go_fd = sys.argv[1], int(sys.argv[2])
ledger = Ledger.open(os.environ["LEASEHOLD_DB"])
ledger.now()  # connected and migrated before the first round
print("ready", flush=True)
for line in sys.stdin:
    task = line.strip()
    os.read(go_fd, 1)  # the barrier: every worker waits for its byte
    try:
        lease = ledger.claim(task, f"{name}:s", ttl=600)
        print(f"won {task} {lease.fence}", flush=True)
    except LeaseHeld:
        print(f"lost {task}", flush=True)
    except StoreError as exc:
        print(f"error {task} {exc}", flush=True)
"""


def test_48_processes_claim_one_task_12_rounds(pg_url: str) -> None:
    workers, rounds = 48, 12
    with Ledger.open(pg_url):
        pass  # migrate once up front
    go_read, go_write = os.pipe()
    env = dict(os.environ, LEASEHOLD_DB=pg_url)
    procs = [
        subprocess.Popen([sys.executable, "-c", CLAIM_WORKER, f"w{i}", str(go_read)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                         pass_fds=(go_read,))
        for i in range(workers)
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for r in range(rounds):
            task = f"race-{r}"
            for p in procs:
                p.stdin.write(task + "\n")
                p.stdin.flush()
            os.write(go_write, b"x" * workers)
            results = [p.stdout.readline().split() for p in procs]
            outcomes = Counter(res[0] for res in results)
            assert outcomes == {"won": 1, "lost": workers - 1}, (r, results)
            assert [res[2] for res in results if res[0] == "won"] == ["1"]
    finally:
        for p in procs:
            p.stdin.close()
        for p in procs:
            p.wait(timeout=30)
        os.close(go_read)
        os.close(go_write)
    with Ledger.open(pg_url) as ledger:
        claimed = Counter(e.task_id for e in ledger.events() if e.kind == "claimed")
        assert claimed == {f"race-{r}": 1 for r in range(rounds)}
        assert all(ledger.show(f"race-{r}").fence == 1 for r in range(rounds))


DRAIN_WORKER = r"""
import os, random, sys, time
from leasehold import Ledger
name, stop, go_fd, go2_fd = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ledger = Ledger.open(os.environ["LEASEHOLD_DB"])
holder = f"{name}:s"
ledger.now()
print("ready", flush=True)
os.read(go_fd, 1)  # the barrier: released together
first = ledger.next(holder, ttl=600)
print("held " + " ".join(lease.task_id for lease in first), flush=True)
os.read(go2_fd, 1)  # the second barrier: every worker holds its first task at once
done = 0
while True:
    leases, first = first or ledger.next(holder, ttl=600, count=random.choice((1, 1, 2, 3))), []
    if not leases:
        if os.path.exists(stop):
            break
        time.sleep(0.005)
        continue
    for lease in leases:
        ledger.complete(lease.task_id, holder, fence=lease.fence)
        done += 1
print(done, flush=True)
"""


def test_32_processes_drain_1000_tasks_with_dependency_chains(pg_url: str, tmp_path) -> None:
    total, chain, workers = 1000, 5, 32
    rng = random.Random(7)
    deps: dict[str, str] = {}
    with Ledger.open(pg_url) as ledger:
        with ledger.store._write() as tx:  # bulk set-up in one transaction
            for i in range(total):
                tx.run("insert_task", id=f"t{i}", title=None, priority=rng.randint(0, 3))
            for i in range(total):
                if i % chain:
                    deps[f"t{i}"] = f"t{i - 1}"  # t{i} waits on the previous link
                    tx.run("insert_dependency", id=f"t{i}", blocked_by=f"t{i - 1}")
        assert len(ledger.ready()) == total // chain
    stop = tmp_path / "stop"
    env = dict(os.environ, LEASEHOLD_DB=pg_url)
    go_read, go_write = os.pipe()
    go2_read, go2_write = os.pipe()  # a second pipe: a fast worker must not eat a first-barrier byte
    procs = [subprocess.Popen([sys.executable, "-c", DRAIN_WORKER, f"d{i}", str(stop), str(go_read),
                               str(go2_read)],
                              stdout=subprocess.PIPE, text=True, env=env, pass_fds=(go_read, go2_read))
             for i in range(workers)]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["ready"] * workers
        os.write(go_write, b"g" * workers)
        first = [p.stdout.readline().split()[1:] for p in procs]
        # 200 tasks are ready: the 32 concurrent first grants are 32 distinct tasks
        assert all(len(held) == 1 for held in first), first
        assert len({held[0] for held in first}) == workers, first
        os.write(go2_write, b"g" * workers)
        with Ledger.open(pg_url) as ledger:
            deadline = time.monotonic() + 120
            while True:
                with ledger.store._read() as tx:
                    tx.cursor.execute("SELECT count(*) AS n FROM tasks WHERE status <> 'done'")
                    left = tx.cursor.fetchone()["n"]
                if left == 0:
                    break
                assert time.monotonic() < deadline, f"{left} tasks left"
                time.sleep(0.2)
    finally:
        stop.touch()
        os.write(go_write, b"g" * workers)  # never leave a worker at a barrier
        os.write(go2_write, b"g" * workers)
        counts = [int((p.communicate(timeout=60)[0].split() or ["0"])[-1]) for p in procs]
        for fd in (go_read, go_write, go2_read, go2_write):
            os.close(fd)
    assert sum(counts) == total
    assert all(counts), counts  # every worker completed at least its first task
    with Ledger.open(pg_url) as ledger:
        events = ledger.events()
    completed = Counter(e.task_id for e in events if e.kind == "completed")
    claimed = Counter(e.task_id for e in events if e.kind == "claimed")
    assert completed == {f"t{i}": 1 for i in range(total)}
    assert claimed == {f"t{i}": 1 for i in range(total)}
    done_at = {e.task_id: e.id for e in events if e.kind == "completed"}
    claimed_at = {e.task_id: e.id for e in events if e.kind == "claimed"}
    early = [(t, b) for t, b in deps.items() if claimed_at[t] < done_at[b]]
    assert early == []
