"""One client process of the history recorder (``python -m verify.worker``).

``python -m verify.worker INTERFACE DB SLOT GO_FD``: ``INTERFACE`` is ``api`` (calls the
Python API in this process; SIGKILL of this process is the client crash) or ``cli`` (runs the
real ``leasehold`` console script with ``--json`` for every operation; SIGKILL of that child
is the client crash). Prints ``ready`` once connected, then for every history spec read from
stdin (one JSON object per line) waits for its byte on the ``GO_FD`` pipe (the barrier that
releases all workers together), runs the operations and prints ``done``.

Every operation appends two JSON lines to the spec's ``log`` file: ``invoke`` (written before
the call) and ``return`` (after it); an operation whose ``return`` line is missing never
returned. Times are ``time.monotonic()``, one clock for every process on the machine.

Spec fields: ``hist`` (number), ``tasks`` (ids), ``ops`` (how many), ``seed``, ``log``,
``ttl`` (seconds), ``weights`` (operation -> weight), ``think`` (max seconds between calls).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time

from verify.model import from_api, from_api_error, from_cli

LEASEHOLD = shutil.which("leasehold", path=os.path.dirname(sys.executable)) or "leasehold"
DEFAULT_WEIGHTS = {"claim": 30, "extend": 12, "release": 18, "done": 10, "reopen": 10, "status": 20}


def classify_exit(code: int) -> str:
    """``ok`` (a definite answer: 0, 1, 3), ``fail`` (75: not applied) or ``info`` (76 outcome
    unknown, a signal, or anything else)."""
    if code in (0, 1, 3):
        return "ok"
    if code == 75:
        return "fail"
    return "info"


class ApiClient:
    def __init__(self, db: str) -> None:
        from leasehold import Ledger
        from leasehold.errors import StoreError

        deadline = time.monotonic() + 120
        while True:  # a busy server ("too many clients") is waited for, not fatal
            try:
                self.ledger = Ledger.open(db)
                self.ledger.now()  # connected (and migrated) before the first history
                return
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def call(self, f: str, task: str, actor: str, session: str, ttl: float) -> dict:
        from leasehold.errors import Conflict, LeaseholdError, NotFound, OutcomeUnknown, StoreError

        holder = f"{actor}:{session}"
        ledger = self.ledger
        try:
            if f == "claim":
                result = ledger.claim(task, holder, ttl=ttl)
            elif f == "extend":
                result = ledger.extend(task, holder)
            elif f == "release":
                result = ledger.release(task, holder)
            elif f == "done":
                result = ledger.complete(task, holder)
            elif f == "reopen":
                result = ledger.reopen(task, by=holder)
            else:
                result = ledger.status(task)
        except (Conflict, NotFound) as exc:
            return {"outcome": "ok", "value": from_api_error(exc), "exit": exc.exit_code}
        except StoreError as exc:
            return {"outcome": "fail", "exit": exc.exit_code, "note": type(exc).__name__}
        except OutcomeUnknown as exc:
            return {"outcome": "info", "exit": exc.exit_code, "note": "OutcomeUnknown"}
        except LeaseholdError as exc:
            return {"outcome": "info", "exit": exc.exit_code, "note": f"{type(exc).__name__}: {exc}"}
        except Exception as exc:  # a bug: reported, outcome unknown
            return {"outcome": "info", "exit": 70, "note": f"bug {type(exc).__name__}: {exc}"}
        return {"outcome": "ok", "value": from_api(f, result), "exit": 0}


class CliClient:
    def __init__(self, db: str) -> None:
        self.env = dict(os.environ, LEASEHOLD_DB=db)

    def call(self, f: str, task: str, actor: str, session: str, ttl: float) -> dict:
        argv = [LEASEHOLD, f, task, "--actor", actor, "--session", session, "--json"]
        if f == "claim":
            argv += ["--ttl", f"{int(ttl)}s"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                                text=True)
        out, err = proc.communicate()
        code = proc.returncode
        if code < 0:
            return {"outcome": "info", "exit": code, "note": f"killed by signal {-code}"}
        outcome = classify_exit(code)
        if outcome != "ok":
            return {"outcome": outcome, "exit": code, "note": err.strip()[:300]}
        try:
            data = json.loads(out)
        except ValueError:
            data = None
        return {"outcome": "ok", "value": from_cli(f, code, data), "exit": code}


def run_history(client: ApiClient | CliClient, spec: dict, slot: int) -> None:
    rng = random.Random(f"{spec['seed']}-{slot}")
    weights = spec.get("weights") or DEFAULT_WEIGHTS
    names, cum = list(weights), list(weights.values())
    actor, session = f"w{slot}", f"h{spec['hist']}"
    # A process that saw an unknown outcome is crashed as far as the history goes (its call
    # never returns): later calls come from a new process number.
    process = os.getpid() * 1000
    think = float(spec.get("think", 0.0))
    with open(spec["log"], "a", buffering=1) as log:
        for n in range(int(spec["ops"])):
            f = rng.choices(names, cum)[0]
            task = rng.choice(spec["tasks"])
            key = f"{os.getpid()}-{n}"
            log.write(json.dumps({"t": "invoke", "key": key, "process": process, "slot": slot,
                                  "f": f, "task": task, "holder": f"{actor}:{session}",
                                  "invoke": time.monotonic()}) + "\n")
            result = client.call(f, task, actor, session, float(spec.get("ttl", 3600)))
            ret = time.monotonic()
            log.write(json.dumps({"t": "return", "key": key, "ret": ret, **result}) + "\n")
            if result["outcome"] == "info":
                process += 1
            if think:
                time.sleep(rng.uniform(0, think))


def run_stalls(client: ApiClient, spec: dict, slot: int) -> None:
    """Short TTLs with stalled heartbeats: claim with a 1-2 s TTL, heartbeat (extend with the
    fence every TTL/3), sometimes stall past the TTL (so another worker takes the task over)
    and then try to extend, then release. Every grant the ledger returned is logged
    (``grant`` lines: task, holder, fence, expires_at, and the wall-clock time it was seen)."""
    from leasehold.errors import Conflict, LeaseholdError

    rng = random.Random(f"{spec['seed']}-{slot}")
    holder = f"w{slot}:h{spec['hist']}"
    ledger = client.ledger
    end = time.monotonic() + float(spec["duration"])
    with open(spec["log"], "a", buffering=1) as log:
        while time.monotonic() < end:
            task = rng.choice(spec["tasks"])
            ttl = rng.choice((1.0, 1.5, 2.0))
            try:
                lease = ledger.claim(task, holder, ttl=ttl)
            except Conflict:
                time.sleep(rng.uniform(0.01, 0.1))
                continue
            except LeaseholdError:
                continue
            log.write(json.dumps({"t": "grant", "task": task, "holder": holder, "fence": lease.fence,
                                  "expires_at": lease.expires_at, "seen_at": time.time()}) + "\n")
            try:
                for _ in range(rng.randint(0, 3)):
                    time.sleep(ttl / 3)
                    lease = ledger.extend(task, holder, fence=lease.fence)
                if rng.random() < float(spec.get("stall", 0.4)):
                    time.sleep(ttl * rng.uniform(1.1, 1.8))  # the stalled heartbeat
                    ledger.extend(task, holder, fence=lease.fence)
                ledger.release(task, holder)
            except LeaseholdError as exc:
                log.write(json.dumps({"t": "lost", "task": task, "holder": holder,
                                      "fence": lease.fence, "error": type(exc).__name__}) + "\n")


def main(argv: list[str]) -> int:
    interface, db, slot, go_fd = argv[0], argv[1], int(argv[2]), int(argv[3])
    client: ApiClient | CliClient = ApiClient(db) if interface == "api" else CliClient(db)
    print("ready", flush=True)
    for line in sys.stdin:
        spec = json.loads(line)
        if not os.read(go_fd, 1):  # the barrier: one byte per worker per history
            return 0
        if spec.get("mode") == "stalls":
            assert isinstance(client, ApiClient)
            run_stalls(client, spec, slot)
        else:
            run_history(client, spec, slot)
        try:
            print("done", flush=True)
        except BrokenPipeError:  # the recorder is gone
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
