"""The history recorder: a pool of real worker processes (:mod:`verify.worker`) runs random
operations on a few task ids, released together through a pipe barrier, while faults are
injected from here; the workers' logs become a history of :class:`verify.checker.Op`.

Faults (``faults``):

- ``none``;
- ``kill``: SIGKILL of clients mid-call (API: the worker process itself, replaced before the
  next history under the same holder name; CLI: the running ``leasehold`` process). The killed
  call's outcome is unknown (return time infinity);
- ``pgkill``: ``pg_terminate_backend`` of random leasehold backends of this run's database
  while the history runs (PostgreSQL only).
"""

from __future__ import annotations

import json
import os
import random
import select
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from verify.checker import Op

REPO = Path(__file__).resolve().parents[1]


class Pool:
    """``workers`` worker processes of one interface on one ledger, reused across histories."""

    def __init__(self, interface: str, db: str, workers: int, workdir: Path,
                 pg_admin_url: str | None = None, pg_database: str | None = None) -> None:
        from leasehold import Ledger

        Ledger.open(db, create=True).close()  # the run's own ledger (a no-op if it exists)
        self.interface = interface
        self.db = db
        self.size = workers
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.go_read, self.go_write = os.pipe()
        self.env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        for var in ("LEASEHOLD_ACTOR", "LEASEHOLD_SESSION", "CLAUDE_CODE_SESSION_ID"):
            self.env.pop(var, None)
        self.procs: list[subprocess.Popen | None] = [None] * workers
        self.pg_admin_url = pg_admin_url
        self.pg_database = pg_database
        self._admin = None
        self.rng = random.Random()
        self._hist = 0
        self.ops_per_worker = 1
        for slot in range(workers):
            self._spawn(slot)
        for slot in range(workers):
            self._ready(slot)

    def _spawn(self, slot: int) -> None:
        self.procs[slot] = subprocess.Popen(
            [sys.executable, "-m", "verify.worker", self.interface, self.db, str(slot),
             str(self.go_read)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=self.env, cwd=REPO,
            pass_fds=(self.go_read,))

    def _ready(self, slot: int) -> None:
        proc = self.procs[slot]
        assert proc is not None and proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"worker {slot} did not start (exit {proc.poll()}): {line!r}")

    def close(self) -> None:
        for proc in self.procs:
            if proc is None:
                continue
            try:
                if proc.stdin:
                    proc.stdin.close()
            except OSError:
                pass
        os.close(self.go_write)
        for proc in self.procs:
            if proc is not None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                if proc.stdout:
                    proc.stdout.close()
        os.close(self.go_read)
        if self._admin is not None:
            self._admin.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one history -----------------------------------------------------------------------
    def run(self, hist: int, tasks: list[str], ops_per_worker: int, *, faults: str = "none",
            seed: int | None = None, ttl: float = 3600.0, think: float = 0.002,
            timeout: float = 300.0) -> tuple[list[Op], dict]:
        """Record one history. Returns ``(ops, stats)``; stats count the faults injected."""
        logs, stats = self.run_raw(hist, {"tasks": tasks, "ops": ops_per_worker, "ttl": ttl,
                                          "think": think}, faults=faults, seed=seed,
                                   timeout=timeout)
        ops = read_logs(logs)
        for log in logs:
            log.unlink(missing_ok=True)
        return ops, stats

    def run_raw(self, hist: int, spec: dict, *, faults: str = "none", seed: int | None = None,
                timeout: float = 300.0) -> tuple[list[Path], dict]:
        """Send ``spec`` to every worker, release them together, inject ``faults`` until all
        are done. Returns the workers' log files and the fault counts."""
        seed = self.rng.randrange(2**32) if seed is None else seed
        respawned = []
        for slot, proc in enumerate(self.procs):
            if proc is None or proc.poll() is not None:
                self._spawn(slot)
                respawned.append(slot)
        for slot in respawned:
            self._ready(slot)
        logs = []
        for slot, proc in enumerate(self.procs):
            log = self.workdir / f"h{hist}-w{slot}.jsonl"
            log.unlink(missing_ok=True)
            logs.append(log)
            line = dict(spec, hist=hist, seed=seed, log=str(log))
            self._hist = hist
            self.ops_per_worker = int(spec.get("ops", 1))
            assert proc is not None and proc.stdin is not None
            proc.stdin.write(json.dumps(line) + "\n")
            proc.stdin.flush()
        stats = {"killed": 0, "killed_mid_call": 0, "terminated": 0}
        started = time.monotonic()
        os.write(self.go_write, b"g" * self.size)  # release everyone at once
        self._wait(logs, faults, stats, started + timeout)
        # A worker killed before it read its byte leaves it in the pipe: drain it, so the next
        # history releases nobody early.
        while select.select([self.go_read], [], [], 0)[0]:
            os.read(self.go_read, 4096)
        return logs, stats

    def _wait(self, logs: list[Path], faults: str, stats: dict, deadline: float) -> None:
        sel = selectors.DefaultSelector()
        pending = set()
        for slot, proc in enumerate(self.procs):
            assert proc is not None and proc.stdout is not None
            sel.register(proc.stdout, selectors.EVENT_READ, slot)
            pending.add(slot)
        # Kills are tied to progress, not to the clock (histories take 0.1 s or a minute
        # depending on the machine's load): victim slot -> kill once it has finished that
        # many calls and is inside the next one (or has gone two calls past it).
        kills: dict[int, int] = {}
        if faults == "kill":
            for slot in self.rng.sample(range(self.size), min(self.size, 1 + self.rng.randint(0, 1))):
                kills[slot] = self.rng.randint(0, max(0, self.ops_per_worker - 2))
        next_term = time.monotonic() + self.rng.uniform(0.0, 0.03)
        try:
            while pending:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"history did not finish: workers {sorted(pending)} stuck")
                for key, _ in sel.select(timeout=0.001 if kills else 0.005):
                    slot = key.data
                    line = key.fileobj.readline()  # type: ignore[union-attr]
                    if line.strip() == "done" or not line:
                        pending.discard(slot)
                        sel.unregister(key.fileobj)
                        kills.pop(slot, None)
                for slot, after in list(kills.items()):
                    returned = log_returns(logs[slot])
                    if returned >= after and (in_call(logs[slot]) or returned >= after + 2):
                        del kills[slot]
                        self._kill(slot, stats)
                now = time.monotonic()
                if faults == "pgkill" and now >= next_term and pending:
                    stats["terminated"] += self._terminate_backend()
                    next_term = now + self.rng.uniform(0.005, 0.05)
        finally:
            sel.close()

    def _kill(self, slot: int, stats: dict) -> None:
        """SIGKILL the client of worker ``slot``: the worker itself (API; replaced before the
        next history) or its running ``leasehold`` process (CLI)."""
        proc = self.procs[slot]
        assert proc is not None
        if self.interface == "api":
            mid = in_call(self.workdir / f"h{self._hist}-w{slot}.jsonl")
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            proc.wait()
            stats["killed"] += 1
            stats["killed_mid_call"] += int(mid)
            return
        limit = time.monotonic() + 2.0
        while time.monotonic() < limit and proc.poll() is None:
            children = child_pids(proc.pid)
            if children:
                try:
                    os.kill(children[0], signal.SIGKILL)
                except ProcessLookupError:
                    continue
                stats["killed"] += 1
                stats["killed_mid_call"] += 1
                return
            time.sleep(0.0005)

    def _terminate_backend(self) -> int:
        import psycopg

        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.pg_admin_url, autocommit=True)
        rows = self._admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'leasehold' "
            "AND pid <> pg_backend_pid()", (self.pg_database,)).fetchall()
        if not rows:
            return 0
        pid = self.rng.choice(rows)[0]
        done = self._admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
        return int(bool(done and done[0]))


def log_returns(log: Path) -> int:
    """How many calls the worker has finished (``return`` records in its log)."""
    try:
        return log.read_bytes().count(b'{"t": "return"')
    except OSError:
        return 0


def in_call(log: Path) -> bool:
    """True when the worker's last record is an invoke without its return."""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 600))
            tail = fh.read().decode(errors="replace").rstrip("\n").rsplit("\n", 1)[-1]
    except OSError:
        return False
    return tail.startswith('{"t": "invoke"')


def child_pids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def read_logs(logs: list[Path]) -> list[Op]:
    """Merge the workers' logs into a history: one Op per invoke, ids by invoke time."""
    invokes: dict[str, dict] = {}
    returns: dict[str, dict] = {}
    for log in logs:
        if not log.exists():
            continue
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line torn by SIGKILL
            (invokes if rec["t"] == "invoke" else returns)[rec["key"]] = rec
    ops = []
    for key, inv in sorted(invokes.items(), key=lambda kv: kv[1]["invoke"]):
        ret = returns.get(key)
        if ret is None:
            ops.append(Op(len(ops), inv["process"], inv["task"], inv["f"], inv["holder"],
                          inv["invoke"], None, "info", note="client killed mid-call"))
            continue
        outcome = ret["outcome"]
        ops.append(Op(len(ops), inv["process"], inv["task"], inv["f"], inv["holder"],
                      inv["invoke"], ret["ret"] if outcome != "info" else None, outcome,
                      ret.get("value"), ret.get("exit"), ret.get("note")))
    return ops


def save_history(path: Path, ops: list[Op], meta: dict) -> None:
    with open(path, "w") as fh:
        fh.write(json.dumps({"meta": meta}) + "\n")
        for op in ops:
            fh.write(json.dumps(op.to_dict()) + "\n")


def load_history(path: Path) -> tuple[list[Op], dict]:
    lines = Path(path).read_text().splitlines()
    meta = json.loads(lines[0])["meta"]
    return [Op.from_dict(json.loads(line)) for line in lines[1:]], meta
