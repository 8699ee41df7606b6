"""Scale: every hot operation at 10k tasks / 1k held and at 1M tasks / 100k held, side by side in
one run, on SQLite and PostgreSQL; the feed's reducer at 100k posts; listings' peak memory; the
bulk session release; start-up against ``python -c pass``.

``make bench-scale`` (``python benchmarks/run.py scale``; not part of ``make bench``: it builds
two million-row ledgers). Ledgers are built through the project's schema (``Ledger.open`` applies
the migrations) and filled with set-based INSERTs: half the tasks done, 1,000 expired leases,
the held leases 10 per session. Each operation alternates between the two sizes round by round
and reports medians; ratios are within this one run (the machine is shared and noisy).

Targets (issue "Scale and start-up"): each hot operation at 1M/100k <= 1.5x its cost at 10k/1k;
8-worker next+done at 1M/100k >= 0.8x its rate at 10k/1k and, on SQLite, >= 0.9x the raw-SQL
floor's; queue and drift-check with 100k posts (100 open) < 50 ms; session-end of 10k leases
< 1.1 s; ``log --all`` at 2M events < 100 MiB; start-up: status/check <= 2.0x, the allowing
pre-tool-use <= 2.0x, the throttled post-tool-use <= 1.5x (with and without
CLAUDE_CODE_SESSION_ID).
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
LEASEHOLD = str(BIN / "leasehold")
PG_BASE = os.environ.get("LEASEHOLD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
#: LEASEHOLD_BENCH_BIG_TASKS shrinks the big ledger (a quick trial of the benchmark itself).
BIG = int(os.environ.get("LEASEHOLD_BENCH_BIG_TASKS", "1000000"))
SIZES = {"small": (10_000, 1_000), "big": (BIG, BIG // 10)}
EXPIRED = 1_000
EVENTS_BIG = 2 * BIG
#: Rows per transaction when filling PostgreSQL's chained tables (see build_postgres).
EVENT_CHUNK = 1000
ROUNDS = int(os.environ.get("LEASEHOLD_BENCH_ROUNDS", "5"))
PER_ROUND = int(os.environ.get("LEASEHOLD_BENCH_PER_ROUND", "40"))


# -- building ledgers ---------------------------------------------------------------------------
def _task_select(n_tasks: int, held: int, now: float, series: str) -> str:
    """SELECT of every tasks column for n in the series: even n done; among odd n (k = n / 2) the
    first ``held`` validly held (10 per session), the next 1,000 expired, the rest open."""
    sessions = max(held // 10, 1)
    return f"""
SELECT {series.format(fmt="t%07d")} AS id, NULL,
       CASE WHEN n % 2 = 0 THEN 'done' WHEN n / 2 < {held + EXPIRED} THEN 'in_progress' ELSE 'open' END,
       n % 5,
       CASE WHEN n % 2 = 1 AND n / 2 < {held + EXPIRED} THEN 'worker' END,
       CASE WHEN n % 2 = 1 AND n / 2 < {held + EXPIRED} THEN 's' || ((n / 2) % {sessions}) END,
       CASE WHEN n % 2 = 1 AND n / 2 < {held + EXPIRED} THEN {now - 100.0} END,
       CASE WHEN n % 2 = 1 AND n / 2 < {held} THEN {now + 86400.0}
            WHEN n % 2 = 1 AND n / 2 < {held + EXPIRED} THEN {now - 60.0} END,
       CASE WHEN n % 2 = 1 AND n / 2 < {held + EXPIRED} THEN 600.0 END,
       1, {now - 10 * n_tasks} + n, {now - 10 * n_tasks} + n
FROM series"""


COLUMNS = ("id, title, status, priority, lease_actor, lease_session, lease_acquired_at, lease_until,"
           " lease_ttl, fence, created_at, updated_at")


def build_sqlite(path: str, n_tasks: int, held: int, events: int) -> None:
    from leasehold import Ledger

    with Ledger.open(path, create=True) as ledger:
        conn = ledger.store.conn
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            f"WITH RECURSIVE series(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM series WHERE n < {n_tasks - 1}) "
            f"INSERT INTO tasks ({COLUMNS}) " + _task_select(n_tasks, held, now, "printf('{fmt}', n)"))
        if events:
            conn.execute(
                f"WITH RECURSIVE series(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM series WHERE n < {events - 1}) "
                "INSERT INTO events (ts, kind, task_id, actor, session, fence, details) "
                f"SELECT {now - events} + n, 'claimed', printf('t%07d', n % {n_tasks}), 'worker', "
                "'s' || (n % 97), 1, '{\"expires_at\":1.0,\"ttl\":600.0}' FROM series")
        conn.execute("COMMIT")


def build_postgres(url: str, n_tasks: int, held: int, events: int) -> None:
    from leasehold import Ledger

    with Ledger.open(url, create=True) as ledger:
        conn = ledger.store._conn()
        now = time.time()
        with conn.transaction():
            conn.execute(
                f"WITH series AS (SELECT generate_series(0, {n_tasks - 1}) AS n) "
                f"INSERT INTO tasks ({COLUMNS}) " + _task_select(n_tasks, held, now, "'t' || lpad(n::text, 7, '0')"))
        # Events in transactions of EVENT_CHUNK rows: the chain trigger takes one advisory lock
        # per task, and one transaction holding millions of them exhausts the server's lock
        # table ("out of shared memory").
        for start in range(0, events, EVENT_CHUNK):
            stop = min(start + EVENT_CHUNK, events) - 1
            conn.execute(
                f"INSERT INTO events (ts, kind, task_id, actor, session, fence, details) "
                f"SELECT {now - events} + n, 'claimed', 't' || lpad((n % {n_tasks})::text, 7, '0'), "
                "'worker', 's' || (n % 97), 1, '{\"expires_at\":1.0,\"ttl\":600.0}' "
                f"FROM generate_series({start}, {stop}) AS n")
            conn.commit()
        conn.execute("VACUUM ANALYZE tasks")
        conn.execute("ANALYZE events")


def build_feed(ledger, items: int, open_items: int) -> None:  # type: ignore[no-untyped-def]
    """``items`` actionable posts, each followed by a done post except the last ``open_items``
    (about 2 x items posts), their tasks, then the one-time build of feed_items."""
    store = ledger.store
    now = time.time()
    rows = []
    for i in range(items):
        rows.append((now - 10 * items + i, f"CMB-{i:06d}", "actionable", f"file CMB-{i:06d}"))
    for i in range(items - open_items):
        rows.append((now - 5 * items + i, f"CMB-{i:06d}", "done", f"done CMB-{i:06d}"))
    for start in range(0, len(rows), EVENT_CHUNK):  # chunks: one chain lock per item (see above)
        with store._write() as tx:
            for ts, item, kind, subject in rows[start:start + EVENT_CHUNK]:
                tx.run("insert_post", ts=ts, seat="seat:s1", actor="seat", session="s1", kind=kind,
                       item=item, subject=subject, body="", refs=None, flags="", origin="local",
                       proof_kind=None, proof=None, import_key=None, details="{}")
    with store._write() as tx:
        for i in range(items):
            tx.run("insert_task", id=f"CMB-{i:06d}", title=None, priority=0)
        tx.cursor.execute("UPDATE feed_state SET rebuilt = 0")


# -- measuring ----------------------------------------------------------------------------------
def timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


class Side:
    """One ledger size with its fixtures for the operations."""

    def __init__(self, ledger, n_tasks: int, held: int) -> None:  # type: ignore[no-untyped-def]
        self.ledger = ledger
        self.n = n_tasks
        self.held = held
        self.sessions = max(held // 10, 1)
        # Open tasks (no lease): odd n with k = n / 2 beyond held + expired.
        first_free = 2 * (held + EXPIRED) + 1
        self.free = (f"t{n:07d}" for n in range(n_tasks - 1, first_free, -2))
        self.valid = (f"t{2 * k + 1:07d}" for k in range(held))
        self.next_session = 0


def measure_ops(sides: dict[str, Side]) -> dict[str, dict[str, list[float]]]:
    from leasehold import Holder

    me = Holder("bench", "b1")
    ops = {}

    def op_status(s: Side) -> float:
        return timed(s.ledger.status, next(s.valid))

    def op_check(s: Side) -> float:
        return timed(s.ledger.check, next(s.valid), me)

    def op_claim(s: Side) -> float:
        task = next(s.free)
        t = timed(s.ledger.claim, task, me, 600)
        s.claimed = task  # type: ignore[attr-defined]
        return t

    def op_extend(s: Side) -> float:
        return timed(s.ledger.extend, s.claimed, me, 600)  # type: ignore[attr-defined]

    def op_release(s: Side) -> float:
        return timed(s.ledger.release, s.claimed, me)  # type: ignore[attr-defined]

    def op_done(s: Side) -> float:
        task = next(s.free)
        s.ledger.claim(task, me, 600)
        return timed(s.ledger.complete, task, me)

    def op_next(s: Side) -> float:
        return timed(s.ledger.next, me, 600)

    def op_ready(s: Side) -> float:
        return timed(s.ledger.ready, 5)

    def op_heartbeat(s: Side) -> float:
        s.next_session += 1
        return timed(s.ledger.heartbeat_session, f"s{s.next_session % s.sessions}")

    def op_session_release(s: Side) -> float:
        s.next_session += 1
        session = f"rel{s.next_session}"
        for _ in range(10):
            s.ledger.claim(next(s.free), Holder("agent", session), 600)
        return timed(s.ledger.release_session, session)

    plan = [("status", op_status), ("check", op_check), ("claim", op_claim), ("extend", op_extend),
            ("release", op_release), ("done", op_done), ("next", op_next),
            ("ready --limit 5", op_ready), ("session heartbeat (10 leases)", op_heartbeat),
            ("session release (10 leases)", op_session_release)]
    for name, _ in plan:
        ops[name] = {side: [] for side in sides}
    for _ in range(ROUNDS):
        for side_name, side in sides.items():
            for _ in range(PER_ROUND):
                for name, fn in plan:
                    ops[name][side_name].append(fn(side))
    return ops


def ops_table(ops: dict[str, dict[str, list[float]]], table) -> tuple[str, list[tuple[str, float]]]:  # type: ignore[no-untyped-def]
    rows, ratios = [], []
    for name, by_side in ops.items():
        small = statistics.median(by_side["small"]) * 1000
        big = statistics.median(by_side["big"]) * 1000
        ratio = big / small
        ratios.append((name, ratio))
        rows.append([name, f"{small:.3f}", f"{big:.3f}", f"{ratio:.2f}x",
                     "met" if ratio <= 1.5 else "**missed**"])
    return table(["operation (API)", "10k/1k ms (median)", "1M/100k ms (median)",
                         "ratio", "target <= 1.5x"], rows), ratios


# -- 8 workers next+done ------------------------------------------------------------------------
WORKER = r"""
import sys, time
from leasehold import Ledger
url, index, items, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
holder = f"w{index}:d{index}"
with Ledger.open(url, busy_timeout=30) as ledger:
    while time.time() < start:
        time.sleep(0.0005)
    done = 0
    for _ in range(items):
        leases = ledger.next(holder, 600)
        if not leases:
            break
        ledger.complete(leases[0].task_id, holder)
        done += 1
print(done, time.time())
"""

FLOOR = r"""
import sqlite3, sys, time
path, index, items, start, pick = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
conn = sqlite3.connect(path, timeout=30, isolation_level=None)
conn.execute("PRAGMA synchronous=NORMAL")
actor, session = f"f{index}", f"d{index}"
while time.time() < start:
    time.sleep(0.0005)
done = 0
for _ in range(items):
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    picked = conn.execute(pick, {"now": now, "limit": 1, "unlimited": -1}).fetchone()
    if picked is None:
        conn.execute("COMMIT")
        break
    conn.execute(
        "UPDATE tasks SET lease_actor = ?, lease_session = ?, lease_acquired_at = ?, lease_until = ?,"
        " lease_ttl = 600, fence = fence + 1, status = 'in_progress', updated_at = ? WHERE id = ?",
        (actor, session, now, now + 600, now, picked[0]))
    conn.execute("INSERT INTO events (ts, kind, task_id, actor, session, fence, details) VALUES (?, 'claimed', ?, ?, ?, ?, '{}')",
                 (now, picked[0], actor, session, 1))
    conn.execute("COMMIT")
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE tasks SET lease_actor = NULL, lease_session = NULL, lease_acquired_at = NULL,"
                 " lease_until = NULL, lease_ttl = NULL, status = 'done', updated_at = ? WHERE id = ?"
                 " AND lease_actor = ? AND lease_session = ?", (now, picked[0], actor, session))
    conn.execute("INSERT INTO events (ts, kind, task_id, actor, session, fence, details) VALUES (?, 'completed', ?, ?, ?, ?, '{}')",
                 (now, picked[0], actor, session, 1))
    conn.execute("COMMIT")
    done += 1
print(done, time.time())
"""


def drain(script: str, url: str, workers: int = 8, items: int = 250, *extra: str) -> float:
    """Items per second of ``workers`` processes doing next+done, released together."""
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", script, url, str(i), str(items), str(start), *extra],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(workers)]
    total, end = 0, start
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed: {err.strip()[-400:]}")
        done, finished = out.split()
        total += int(done)
        end = max(end, float(finished))
    return total / (end - start)


# -- processes: memory, session-end, start-up ----------------------------------------------------
def peak(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, exit code) of one process, output discarded."""
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    kib = int(proc.stderr.strip().splitlines()[-1])
    return elapsed, kib / 1024, proc.returncode


def session_end(url: str, env: dict[str, str], conn_exec) -> tuple[float, int, str]:  # type: ignore[no-untyped-def]
    """Give session 'bulk' 10,000 leases, then time ``leasehold hook session-end`` releasing them."""
    conn_exec("UPDATE tasks SET lease_actor = 'agent', lease_session = 'bulk', lease_acquired_at = 1, "
              "lease_until = 4e9, lease_ttl = 600, status = 'in_progress' WHERE id IN ("
              "SELECT id FROM tasks WHERE status <> 'done' AND lease_until IS NULL "
              "ORDER BY priority DESC, created_at, id LIMIT 10000)")
    payload = json.dumps({"session_id": "bulk", "hook_event_name": "SessionEnd", "reason": "exit"})
    started = time.perf_counter()
    proc = subprocess.run([LEASEHOLD, "hook", "session-end"], input=payload, text=True,
                          capture_output=True, env=dict(env, LEASEHOLD_DB=url))
    return time.perf_counter() - started, proc.returncode, proc.stderr.strip()


def startup(env: dict[str, str], rounds: int) -> dict[str, float]:
    """Median wall time of each command over interleaved rounds, and the floor."""
    agent = json.dumps({"session_id": "s-start", "tool_name": "Agent", "hook_event_name": "PreToolUse",
                        "cwd": env["HOME"], "tool_input": {"description": "review", "prompt":
                        "Review the retry loop in the sync module and report what you find."}})
    post = json.dumps({"session_id": "s-start", "tool_name": "Bash", "hook_event_name": "PostToolUse",
                       "cwd": env["HOME"], "tool_input": {"command": "ls"}, "tool_response": {"stdout": "x" * 2000}})
    with_env = dict(env, CLAUDE_CODE_SESSION_ID="s-start")
    cmds = {
        "python -c pass (floor)": ([sys.executable, "-c", "pass"], None, env),
        "status T": ([LEASEHOLD, "status", "t0009999"], None, env),
        "check T": ([LEASEHOLD, "check", "t0009999"], None, env),
        "hook pre-tool-use (Agent, allowed)": ([LEASEHOLD, "hook", "pre-tool-use"], agent, env),
        "hook post-tool-use (throttled, CLAUDE_CODE_SESSION_ID set)": ([LEASEHOLD, "hook", "post-tool-use"], post, with_env),
        "hook post-tool-use (throttled, no CLAUDE_CODE_SESSION_ID)": ([LEASEHOLD, "hook", "post-tool-use"], post, env),
    }
    for cmd, stdin, e in cmds.values():  # warm-up; the first post-tool-use heartbeats
        subprocess.run(cmd, input=stdin, text=True, env=e, capture_output=True)
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(rounds):
        for name, (cmd, stdin, e) in cmds.items():
            started = time.perf_counter()
            proc = subprocess.run(cmd, input=stdin, text=True, env=e, capture_output=True)
            times[name].append(time.perf_counter() - started)
            if proc.returncode != 0 or (name.startswith("hook") and proc.stdout.strip()):
                raise RuntimeError(f"{name}: {proc.returncode} {proc.stdout!r} {proc.stderr!r}")
    return {name: statistics.median(v) for name, v in times.items()}


# -- the run ------------------------------------------------------------------------------------
def run(report) -> None:  # type: ignore[no-untyped-def]
    compileall.compile_dir(str(REPO / "src" / "leasehold"), quiet=1)
    from leasehold import Ledger

    targets: list[list[str]] = []
    tmp = tempfile.mkdtemp(prefix="leasehold-scale-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEASEHOLD_", "CLAUDE_CODE"))}
    env.update(HOME=tmp, XDG_CACHE_HOME=os.path.join(tmp, "cache"), LEASEHOLD_ACTOR="bench",
               LEASEHOLD_SESSION="b1")
    try:
        stores: list[tuple[str, dict[str, str]]] = [("SQLite", {
            size: os.path.join(tmp, f"{size}.db") for size in SIZES})]
        pg_schemas: list[str] = []
        try:
            import psycopg

            with psycopg.connect(PG_BASE, autocommit=True, connect_timeout=5) as admin:
                urls = {}
                for size in SIZES:
                    schema = f"lh_scale_{size}_{os.getpid()}"
                    admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                    admin.execute(f'CREATE SCHEMA "{schema}"')
                    pg_schemas.append(schema)
                    sep = "&" if "?" in PG_BASE else "?"
                    urls[size] = f"{PG_BASE}{sep}options=-csearch_path%3D{schema}"
                stores.append(("PostgreSQL", urls))
        except Exception as exc:  # no server: SQLite only, said in the report
            report.section("Scale: PostgreSQL", f"skipped: {exc}")
        for store_name, urls in stores:
            build_times = {}
            for size, (n_tasks, held) in SIZES.items():
                events = EVENTS_BIG if size == "big" else 0
                started = time.perf_counter()
                if store_name == "SQLite":
                    build_sqlite(urls[size], n_tasks, held, events)
                else:
                    build_postgres(urls[size], n_tasks, held, events)
                build_times[size] = time.perf_counter() - started
            ledgers = {size: Ledger.open(url) for size, url in urls.items()}
            try:
                sides = {size: Side(ledgers[size], *SIZES[size]) for size in SIZES}
                table, ratios = ops_table(measure_ops(sides), report.table)
                for name, ratio in ratios:
                    targets.append([f"{store_name}: {name} 1M/100k vs 10k/1k", "<= 1.5x",
                                    f"{ratio:.2f}x", "met" if ratio <= 1.5 else "**missed**"])
                report.section(
                    f"Scale: hot operations on {store_name}, 10k/1k vs 1M/100k",
                    table + f"\n\nBuilt in {build_times['small']:.1f} s / {build_times['big']:.1f} s "
                    "(1M tasks and 2M events through the schema, set-based INSERTs). "
                    f"{ROUNDS} rounds x {PER_ROUND} of each operation per size, alternating sizes; "
                    "medians. claim/extend/release/done act on a free task; next takes the head "
                    "of the ready queue; the session operations act on a session with 10 leases.")
            finally:
                for led in ledgers.values():
                    led.close()

            # 8 workers next+done, on copies for SQLite (the drain consumes tasks).
            rates = {}
            if store_name == "SQLite":
                for size in SIZES:
                    copy = urls[size] + ".drain"
                    shutil.copyfile(urls[size], copy)
                    rates[size] = drain(WORKER, copy)
                copy = urls["big"] + ".floor"
                shutil.copyfile(urls["big"], copy)
                from leasehold.store.sqlite import _sqlite_queries

                # The floor: the same ready query (ready_candidates), grant, completion and
                # events as bare sqlite3 statements, no Python layer.
                floor = drain(FLOOR, copy, 8, 250, _sqlite_queries()["ready_candidates"])
                rates["floor"] = floor
            else:
                for size in SIZES:
                    rates[size] = drain(WORKER, urls[size])
            ratio = rates["big"] / rates["small"]
            targets.append([f"{store_name}: 8-worker next+done 1M/100k vs 10k/1k", ">= 0.8x",
                            f"{ratio:.2f}x", "met" if ratio >= 0.8 else "**missed**"])
            rows = [["10k/1k", f"{rates['small']:,.0f}"], ["1M/100k", f"{rates['big']:,.0f}"]]
            if "floor" in rates:
                fr = rates["big"] / rates["floor"]
                rows.append(["raw-SQL floor at 1M/100k (bare sqlite3: the same ready query, grant, completion, events)", f"{rates['floor']:,.0f}"])
                targets.append(["SQLite: 8-worker next+done vs raw-SQL floor (1M/100k)", ">= 0.9x",
                                f"{fr:.2f}x", "met" if fr >= 0.9 else "**missed**"])
            report.section(f"Scale: 8 workers next+done on {store_name}",
                           report.table(["ledger", "items/s"], rows)
                           + "\n\n8 processes x 250 items each, released together; no errors allowed.")

            # Listings' peak memory and session-end with 10k leases (big ledger).
            big = urls["big"]
            lenv = dict(env, LEASEHOLD_DB=big)
            rows = []
            for label, cmd in (("log --all (2M events)", ["log", "--all"]),
                               ("log --all --json (2M events)", ["log", "--all", "--json"]),
                               ("list --all (1M tasks)", ["list", "--all"]),
                               ("who --all (100k leases)", ["who", "--all"]),
                               ("log (default: newest 100)", ["log"]),
                               ("list (default: first 100)", ["list"])):
                secs, mib, code = peak([LEASEHOLD, *cmd], lenv)
                rows.append([label, f"{secs:.2f}", f"{mib:.0f}", code])
                if label.startswith("log --all"):
                    targets.append([f"{store_name}: {label} peak memory", "< 100 MiB", f"{mib:.0f} MiB",
                                    "met" if mib < 100 and code == 0 else "**missed**"])
            if store_name == "SQLite":
                import sqlite3

                def execute(sql: str, path: str = big) -> None:
                    with sqlite3.connect(path) as conn:
                        conn.execute(sql)
            else:
                import psycopg

                def execute(sql: str, url: str = big) -> None:
                    with psycopg.connect(url, autocommit=True) as conn:
                        conn.execute(sql)
            secs, code, message = session_end(big, env, execute)
            ok = code == 0 and "released 10000 lease" in message
            targets.append([f"{store_name}: hook session-end, 10k leases", "< 1.1 s, all released",
                            f"{secs:.2f} s", "met" if ok and secs < 1.1 else "**missed**"])
            rows.append(["hook session-end (one session, 10k leases)", f"{secs:.2f}", "-", f"{code}: {message[:60]}"])
            report.section(f"Scale: listings and session-end on {store_name} (1M/100k ledger)",
                           report.table(["command (a process)", "seconds", "peak RSS MiB", "exit"], rows))

            # The feed's reducer at 100k posts, 100 open.
            feed_url = (os.path.join(tmp, "feed.db") if store_name == "SQLite"
                        else urls["small"])
            with Ledger.open(feed_url, create=True) as ledger:
                build_feed(ledger, 50_050, 100)
                rebuild = timed(ledger.feed.queue, 1)
                q, d = [], []
                for _ in range(ROUNDS * 10):
                    q.append(timed(ledger.feed.queue, 100))
                    d.append(timed(ledger.feed.drift))
                entries = ledger.feed.queue(100)
                open_count = sum(1 for e in entries if e["state"] != "DONE")
            qm, dm = statistics.median(q) * 1000, statistics.median(d) * 1000
            targets.append([f"{store_name}: queue, 100k posts (100 open)", "< 50 ms", f"{qm:.1f} ms",
                            "met" if qm < 50 else "**missed**"])
            targets.append([f"{store_name}: drift-check, 100k posts", "< 50 ms", f"{dm:.1f} ms",
                            "met" if dm < 50 else "**missed**"])
            qsecs, _, _ = peak([LEASEHOLD, "queue"], dict(env, LEASEHOLD_DB=feed_url))
            dsecs, _, _ = peak([LEASEHOLD, "drift-check"], dict(env, LEASEHOLD_DB=feed_url))
            report.section(
                f"Scale: the feed reducer on {store_name}, 100,050 posts (100 items open)",
                report.table(["operation", "median ms"], [
                    ["queue (first 100 entries; API)", f"{qm:.1f}"],
                    ["drift-check (API)", f"{dm:.1f}"],
                    ["one-time build of feed_items from the posts (older ledgers only)", f"{rebuild * 1000:.0f}"],
                    ["`leasehold queue` (whole process)", f"{qsecs * 1000:.0f}"],
                    ["`leasehold drift-check` (whole process)", f"{dsecs * 1000:.0f}"],
                ]) + f"\n\nOpen entries among the first 100: {open_count}.")

        # Start-up at the floor (SQLite ledger of 10k tasks).
        senv = dict(env, LEASEHOLD_DB=stores[0][1]["small"])
        medians = startup(senv, int(os.environ.get("LEASEHOLD_BENCH_STARTUP", "60")))
        floor_s = medians["python -c pass (floor)"]
        rows = []
        for name, value in medians.items():
            r = value / floor_s
            rows.append([name, f"{value * 1000:.1f}", f"{r:.2f}x"])
            limit = 1.5 if "post-tool-use" in name else 2.0
            if name != "python -c pass (floor)":
                targets.append([f"start-up: {name}", f"<= {limit}x", f"{r:.2f}x",
                                "met" if r <= limit else "**missed**"])
        report.section("Scale: start-up against `python -c pass`",
                       report.table(["command", "median ms", "ratio"], rows)
                       + "\n\nSame venv, compiled bytecode, interleaved rounds; the hooks read a"
                       " payload on stdin as Claude Code sends it.")
        report.section("Scale: targets", report.table(["target", "wanted", "measured", "verdict"], targets))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            import psycopg

            with psycopg.connect(PG_BASE, autocommit=True, connect_timeout=5) as admin:
                for schema in pg_schemas:
                    admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        except Exception:
            pass
