"""Worker programs for the race tests, run as separate OS processes.

``python -m tests.racers cli GO_FILE READY_FILE ARGS...``: import the CLI, signal ready, wait
at the start line GO_FILE (a :class:`Gate`), then run ``leasehold ARGS`` in-process (so the claims of all racers hit
the store within the same few milliseconds) and exit with its code.
``python -m tests.racers exec GO_FILE READY_FILE ARGS...``: the same, but exec the real
``leasehold`` console script at the barrier.
``python -m tests.racers drain DB NAME GO_FILE READY_FILE HELD_FILE GO2_FILE``: at the barrier,
take one task with ``next`` and write its id to HELD_FILE, wait for GO2_FILE (every racer holds
its first task at once), then loop next -> done through the Python API until no task is left;
print the ids done, one per line.
``python -m tests.racers ackloop GO_FILE READY_FILE DB NAME CYCLES TASKS PID_FILE OUT_FILE``:
after the barrier, CYCLES times claim one of TASKS (comma-separated) as NAME:NAME-n and release
it, each call with its own operation id; before each call write the connection's backend pid to
PID_FILE (for the test that terminates backends); one JSON line per call to OUT_FILE.
"""

from __future__ import annotations

import os
import sys
import time


class Gate:
    """A start line for racer processes: the test holds an exclusive ``flock`` on the file
    ``path`` (created here, before any racer starts); each racer signals ready, then blocks
    taking a shared lock on it (:func:`barrier`), spending no CPU while it waits, so that
    :meth:`release` starts them all at once. A racer that arrives after the release passes at
    once; if the test dies, its lock goes with it, and a racer still waiting after 180 s ends."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        import fcntl

        self.path = os.fspath(path)
        self._fd: int | None = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path

    def __del__(self) -> None:
        self.release()

    def release(self) -> None:
        """Let every racer through (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the exclusive lock
            self._fd = None


def barrier(go: str, ready: str) -> None:
    """Signal ready (create the file ``ready``), then wait at the :class:`Gate` ``go``."""
    import fcntl
    import signal

    fd = os.open(go, os.O_RDONLY)  # the Gate made it before this process started
    with open(ready, "w"):
        pass
    signal.alarm(180)  # a test that failed before releasing: end (SIGALRM) rather than hang
    fcntl.flock(fd, fcntl.LOCK_SH)  # blocks until the test releases its exclusive lock
    signal.alarm(0)
    os.close(fd)


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "cli":
        from leasehold.cli import build_parser
        from leasehold.cli import main as cli_main

        build_parser(argv[3])
        barrier(argv[1], argv[2])
        return cli_main(argv[3:])
    if mode == "exec":
        import shutil

        # found as tests.conftest.LEASEHOLD finds it, without importing pytest into every racer
        LEASEHOLD = shutil.which("leasehold", path=os.path.dirname(sys.executable)) or "leasehold"

        barrier(argv[1], argv[2])
        os.execvp(LEASEHOLD, [LEASEHOLD, *argv[3:]])
    if mode == "drain":
        from leasehold import Holder, Ledger

        db, name, go, ready, held, go2 = argv[1:7]
        holder = Holder(name, f"pid{os.getpid()}")
        with Ledger.open(db) as ledger:
            ledger.now()  # connected before the barrier
            barrier(go, ready)
            first = ledger.next(holder, ttl=60)
            with open(held + ".tmp", "w") as fh:
                fh.write(" ".join(lease.task_id for lease in first))
            os.replace(held + ".tmp", held)
            barrier(go2, held + ".seen")
            leases = first
            while True:
                if not leases:
                    leases = ledger.next(holder, ttl=60)
                if not leases:
                    return 0
                for lease in leases:
                    ledger.complete(lease.task_id, holder, fence=lease.fence)
                    print(lease.task_id, flush=True)
                leases = []
    if mode == "ackloop":
        return ackloop(*argv[1:])
    if mode == "ticketloop":
        return ticketloop(*argv[1:])
    return 2


def ackloop(go: str, ready: str, db: str, name: str, cycles: str, tasks: str, pid_file: str,
            out_file: str) -> int:
    import json
    import random

    from leasehold import Ledger
    from leasehold.errors import Conflict, LeaseholdError, OutcomeUnknown, StoreError

    ids = tasks.split(",")
    ledger = Ledger.open(db, busy_timeout=5)
    out = open(out_file, "w")

    def call(kind: str, task_id: str, session: str, fn) -> str:  # type: ignore[no-untyped-def]
        while True:
            try:
                pid = ledger.store.backend_pid()
                break
            except StoreError:
                time.sleep(0.01)
        tmp = pid_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(str(pid))
        os.replace(tmp, pid_file)
        before = ledger.store.lost_acks_resolved
        op = None
        try:
            fn()
            result = "ok"
        except OutcomeUnknown as exc:
            result, op = "76", exc.op_id
        except StoreError:
            result = "75"
        except Conflict:
            result = "conflict"
        except LeaseholdError as exc:
            result = f"other:{type(exc).__name__}:{exc}"
        op = op or ledger.last_op_id
        out.write(json.dumps({"kind": kind, "task": task_id, "actor": name, "session": session,
                              "op": op, "result": result,
                              "resolved": ledger.store.lost_acks_resolved > before}) + "\n")
        out.flush()
        return result

    def settle(op: str) -> bool:
        """Whether an operation whose outcome was unknown applied (asking until answered)."""
        while True:
            try:
                return ledger.lookup_op(op) is not None
            except StoreError:
                time.sleep(0.05)

    barrier(go, ready)
    rng = random.Random(name)
    for n in range(int(cycles)):
        session = f"{name}-{n}"
        task_id = rng.choice(ids)
        result = call("claim", task_id, session, lambda t=task_id, s=session: ledger.claim(t, f"{name}:{s}", ttl=60))
        held = result == "ok" or (result == "76" and settle(ledger.last_op_id))
        while held:
            result = call("release", task_id, session, lambda t=task_id, s=session: ledger.release(t, f"{name}:{s}"))
            held = result == "75" or (result == "76" and not settle(ledger.last_op_id))
    out.close()
    ledger.close()
    return 0


def ticketloop(go: str, ready: str, db: str, name: str, cycles: str, pid_file: str,
               out_file: str) -> int:
    """``cycles`` ticket reservations and feed posts (reserving their number) in namespace DOC,
    each with its own operation id, publishing the backend pid before each call (for the
    terminator) and writing one JSON line per call: op, result (ok/75/76/other) and what the
    call returned (the ticket id)."""
    import json

    from leasehold import Ledger
    from leasehold.errors import LeaseholdError, OutcomeUnknown, StoreError

    ledger = Ledger.open(db, busy_timeout=5)
    out = open(out_file, "w")
    barrier(go, ready)
    for n in range(int(cycles)):
        for kind in ("reserve", "post"):
            op = f"{name}-{n}-{kind}"
            while True:
                try:
                    pid = ledger.store.backend_pid()
                    break
                except StoreError:
                    time.sleep(0.01)
            with open(pid_file + ".tmp", "w") as fh:
                fh.write(str(pid))
            os.replace(pid_file + ".tmp", pid_file)
            item = None
            try:
                if kind == "reserve":
                    item = ledger.tickets.reserve("DOC", f"{name}:s", op_id=op)[0].ticket_id
                else:
                    item = ledger.feed.post("actionable", op, f"{name}:s", reserve="DOC", op_id=op).item
                result = "ok"
            except OutcomeUnknown:
                result = "76"
            except StoreError:
                result = "75"
            except LeaseholdError as exc:
                result = f"other:{type(exc).__name__}:{exc}"
            out.write(json.dumps({"kind": kind, "op": op, "result": result, "item": item}) + "\n")
            out.flush()
    out.close()
    ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
