"""``leasehold demo``: a fleet of real worker processes drains a backlog on one ledger.

Each worker loops ``next`` -> work (a short random sleep, heartbeating) -> ``done``. One
worker ("the victim") is killed with SIGKILL while it holds a task; its lease expires and
another worker takes the task over with a higher fence. The invariants are then checked from
the event log alone (:mod:`leasehold.invariants`).

Run a worker by hand with ``python -m leasehold.demo worker DB INDEX TTL [--victim]`` (DB ``-``:
the URL in ``LEASEHOLD_DEMO_DB``).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

    from leasehold.ledger import Ledger

VICTIM_SIGNAL = "HOLDING"


def backlog_done(ledger: Ledger) -> bool:
    """True once every task on ``ledger`` is done (a worker may stop). One read of the
    statuses: asking "none available?" and "none held?" in two reads would see a lease that
    expires between them as neither, and stop a worker before it takes the task over."""
    return all(task.status == "done" for task in ledger.tasks())


def worker(db: str, index: int, ttl: float, victim: bool) -> int:
    """One worker process: drain the backlog; the victim stops (and waits to be killed) while
    holding its first task."""
    from leasehold.errors import Conflict, StoreError
    from leasehold.ledger import Ledger
    from leasehold.model import Holder

    holder = Holder(f"worker-{index}", f"pid{os.getpid()}")
    rng = random.Random(os.getpid())
    done = 0
    with Ledger.open(db) as ledger:
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        sys.stdin.readline()  # the start line: the demo releases the workers together
        while True:
            try:
                leases = ledger.next(holder, ttl)
            except StoreError:
                time.sleep(0.01)
                continue
            if not leases:
                if backlog_done(ledger):
                    break
                time.sleep(0.05)  # tasks remain, held by others (or expiring): poll again
                continue
            lease = leases[0]
            if victim:
                sys.stdout.write(f"{VICTIM_SIGNAL} {lease.task_id} {lease.fence}\n")
                sys.stdout.flush()
                while True:
                    time.sleep(3600)  # hold the lease until SIGKILL
            work = rng.uniform(0.02, 0.2)
            deadline = time.monotonic() + work
            try:
                while (left := deadline - time.monotonic()) > 0:
                    time.sleep(min(left, ttl / 3))
                    if deadline - time.monotonic() > 0:
                        ledger.extend(lease.task_id, holder, fence=lease.fence)
                ledger.complete(lease.task_id, holder, fence=lease.fence)
                done += 1
            except Conflict as exc:
                sys.stderr.write(f"worker-{index}: lost {lease.task_id}: {exc}\n")
    sys.stdout.write(f"DONE {done}\n")
    return 0


def _start(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        try:
            proc.stdin.write("go\n")
            proc.stdin.close()
        except OSError:
            pass  # it died: its exit status tells


def run_demo(*, workers: int = 8, tasks: int = 40, ttl: float = 2.0, db: str | None = None,
             progress: IO[str] | None = None) -> dict[str, Any]:
    """Run the demo; returns a summary dict with ``ok``, ``violations`` and ``report`` (text).

    ``db``: an existing ledger without tasks (default: a temporary SQLite file, created here).
    Raises :class:`~leasehold.errors.InvalidInput` if it already has tasks and
    :class:`~leasehold.errors.ConfigError` if it does not exist (``leasehold init`` creates
    one)."""
    import signal

    from leasehold.errors import InvalidInput
    from leasehold.invariants import check_invariants
    from leasehold.ledger import Ledger
    from leasehold.urls import redact

    def say(text: str) -> None:
        if progress is not None:
            progress.write(text + "\n")
            progress.flush()

    tmp = None
    if db is None:
        tmp = tempfile.TemporaryDirectory(prefix="leasehold-demo-")
        db = os.path.join(tmp.name, "ledger.db")
    started = time.monotonic()
    try:
        with Ledger.open(db, create=tmp is not None) as ledger:
            existing = ledger.tasks()
            if existing:
                raise InvalidInput(
                    f"the demo needs an empty ledger: {redact(db)} already has {len(existing)} task(s), "
                    "which its workers would claim and complete; name a new ledger with --db, "
                    "or omit --db for a temporary one")
            latest = ledger.events(limit=1)
            after = latest[-1].id if latest else 0
            ids = [f"demo-{i:04d}" for i in range(1, tasks + 1)]
            for i, task_id in enumerate(ids):
                ledger.add(task_id, title=f"demo task {i + 1}", priority=0)
            say(f"ledger {redact(db)}: {tasks} tasks, {workers} worker processes, TTL {ttl:g}s")
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            env.pop("LEASEHOLD_DB", None)
            env["LEASEHOLD_DEMO_DB"] = db  # not on the command line, where ps shows a password
            procs = []
            for index in range(workers):
                cmd = [sys.executable, "-m", "leasehold.demo", "worker", "-", str(index), str(ttl)]
                if index == 0:
                    cmd.append("--victim")
                procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                              text=True, env=env))
            for proc in procs:  # every worker has opened the ledger
                if proc.stdout is not None:
                    proc.stdout.readline()
            # The victim starts first, so it holds a task however the machine schedules the
            # others; then the others are released together.
            victim = procs[0]
            _start(victim)
            line = victim.stdout.readline() if victim.stdout else ""
            for proc in procs[1:]:
                _start(proc)
            killed_task = None
            if line.startswith(VICTIM_SIGNAL):
                _, killed_task, fence = line.split()
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                say(f"killed worker-0 (pid {victim.pid}) with SIGKILL while it held {killed_task} "
                    f"(fence {fence}); its lease expires in {ttl:g}s")
            for proc in procs[1:]:
                proc.wait()
            failed = [p.pid for p in procs[1:] if p.returncode != 0]
            elapsed = time.monotonic() - started
            events = ledger.events(after=after)
            violations = check_invariants(events, ids)
            if failed:
                violations.append(f"worker process(es) {failed} exited non-zero")
            takeovers = [e for e in events if e.kind == "claimed" and e.details.get("previous_holder")]
            per_worker: dict[str, int] = {}
            for e in events:
                if e.kind == "completed" and e.actor:
                    per_worker[e.actor] = per_worker.get(e.actor, 0) + 1
            done = sum(1 for e in events if e.kind == "completed")
    finally:
        if tmp is not None:
            tmp.cleanup()
    lines = [
        f"tasks done:   {done} of {tasks}",
        f"takeovers:    {len(takeovers)}"
        + "".join(f"\n  {e.task_id}: {e.details['previous_holder']} -> {e.holder} (fence {e.fence})"
                  for e in takeovers),
        f"events:       {len(events)}",
        f"elapsed:      {elapsed:.1f}s",
        "per worker:   " + ", ".join(f"{k} {v}" for k, v in sorted(per_worker.items())),
    ]
    if violations:
        lines.append("invariants: VIOLATED")
        lines.extend(f"  {v}" for v in violations)
    else:
        lines.append("invariants: OK")
    return {
        "ok": not violations,
        "tasks": tasks,
        "done": done,
        "takeovers": [{"task_id": e.task_id, "from": e.details["previous_holder"], "to": e.holder,
                       "fence": e.fence} for e in takeovers],
        "killed_task": killed_task,
        "events": len(events),
        "elapsed_seconds": round(elapsed, 3),
        "per_worker": per_worker,
        "violations": violations,
        "report": "\n".join(lines),
    }


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "worker":
        db_arg = os.environ["LEASEHOLD_DEMO_DB"] if sys.argv[2] == "-" else sys.argv[2]
        sys.exit(worker(db_arg, int(sys.argv[3]), float(sys.argv[4]), "--victim" in sys.argv[5:]))
    sys.stderr.write("usage: python -m leasehold.demo worker DB INDEX TTL [--victim]\n")
    sys.exit(2)
