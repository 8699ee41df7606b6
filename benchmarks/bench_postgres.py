"""PostgreSQL: `next` + `done` throughput against pgqueuer's dequeue + acknowledge, and claim
latency against the raw single-statement floor.

Both sides run in one scratch database on the same server, in the same run, with the same
number of worker processes (each looping on its Python API) and the same batch size. Each
worker records what it was handed; a task or job handed to two workers is a double grant.

Server: ``LEASEHOLD_BENCH_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``; a scratch
database is created next to it and dropped afterwards). pgqueuer comes from the ``bench`` extra.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BASE = os.environ.get("LEASEHOLD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
ITEMS = int(os.environ.get("LEASEHOLD_BENCH_ITEMS", "3000"))
WORKERS = (1, 8, 32)
BATCHES = (1, 10)

LEASEHOLD_WORKER = r"""
import json, os, sys, time
from leasehold import Ledger
url, batch, go, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ledger = Ledger.open(url)
holder = f"bench{os.getpid()}:s"
ledger.now()
print("ready", flush=True)
os.read(go, 1)
got = []
while True:
    leases = ledger.next(holder, ttl=600, count=batch)
    if not leases:
        break
    done = ledger.complete_many([lease.task_id for lease in leases], holder)
    got.extend(task.id for task in done)
end = time.time()
with open(out, "w") as fh:
    json.dump({"ids": got, "end": end}, fh)
"""

PGQUEUER_WORKER = r"""
import asyncio, json, os, sys, time, uuid
from datetime import timedelta
import psycopg
from pgqueuer.queries import Queries, EntrypointExecutionParameter
url, batch, go, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

async def main():
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    q = Queries.from_psycopg_connection(conn)
    entry = {"bench": EntrypointExecutionParameter(concurrency_limit=0)}
    qm = uuid.uuid4()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, os.read, go, 1)
    got = []
    while True:
        jobs = await q.dequeue(batch_size=batch, entrypoints=entry, queue_manager_id=qm,
                               global_concurrency_limit=None, heartbeat_timeout=timedelta(seconds=600))
        if not jobs:
            break
        await q.log_jobs([(job, "successful", None) for job in jobs])
        got.extend(int(job.id) for job in jobs)
    end = time.time()
    with open(out, "w") as fh:
        json.dump({"ids": got, "end": end}, fh)
    await conn.close()

asyncio.run(main())
"""


#: The one-statement floor of a claim of a free task: lock the row, read the clock after the
#: lock, grant (new fence) and append the event; no operation id, no checks, no Python API.
CTE_FLOOR = """
WITH locked AS MATERIALIZED (
    SELECT id FROM tasks WHERE id = %s AND status <> 'done' AND lease_actor IS NULL FOR UPDATE
), stamped AS MATERIALIZED (
    SELECT id, extract(epoch FROM clock_timestamp())::float8 AS now FROM locked
), granted AS (
    UPDATE tasks t SET lease_actor = 'raw', lease_session = 's', lease_acquired_at = s.now,
        lease_until = s.now + 600, lease_ttl = 600, fence = t.fence + 1,
        status = 'in_progress', updated_at = s.now
    FROM stamped s WHERE t.id = s.id
    RETURNING t.*, s.now AS now
), logged AS (
    INSERT INTO events (ts, kind, task_id, actor, session, fence, details)
    SELECT now, 'claimed', id, lease_actor, lease_session, fence,
           jsonb_build_object('expires_at', lease_until, 'ttl', lease_ttl)::text FROM granted
)
SELECT * FROM granted
"""


def _admin():
    import psycopg

    return psycopg.connect(BASE, autocommit=True)


def _db_url(name: str) -> str:
    head, _, _ = BASE.rpartition("/")
    return f"{head}/{name}"


def _fill_leasehold(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE dependencies, tasks")  # events is append-only: kept
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO tasks (id, status, priority, created_at, updated_at) "
                "SELECT 'b' || g, 'open', 0, extract(epoch FROM clock_timestamp()) + g * 1e-6, "
                "extract(epoch FROM clock_timestamp()) FROM generate_series(1, %s) g",
                (ITEMS,),
            )
        conn.execute("VACUUM ANALYZE tasks")


def _fill_pgqueuer(url: str) -> None:
    import asyncio

    import psycopg
    from pgqueuer.queries import Queries

    async def fill() -> None:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        q = Queries.from_psycopg_connection(conn)
        await q.clear_queue()
        await q.enqueue(["bench"] * ITEMS, [None] * ITEMS, [0] * ITEMS)
        await conn.close()

    asyncio.run(fill())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE pgqueuer")


def _race(script: str, url: str, workers: int, batch: int) -> dict[str, float]:
    """Start ``workers`` processes, release them together, return throughput and doubles."""
    go_read, go_write = os.pipe()
    with tempfile.TemporaryDirectory() as tmp:
        outs = [str(Path(tmp) / f"w{i}.json") for i in range(workers)]
        procs = [subprocess.Popen([sys.executable, "-c", script, url, str(batch), str(go_read), out],
                                  stdout=subprocess.PIPE, text=True, pass_fds=(go_read,))
                 for out in outs]
        for p in procs:
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"worker failed to start: {line!r}")
        start = time.time()
        os.write(go_write, b"x" * workers)
        for p in procs:
            p.wait(timeout=600)
        os.close(go_read)
        os.close(go_write)
        results = [json.loads(Path(out).read_text()) for out in outs]
    ids = [i for r in results for i in r["ids"]]
    end = max(r["end"] for r in results)
    return {"done": len(set(ids)), "double": len(ids) - len(set(ids)),
            "rate": len(set(ids)) / (end - start)}


def _latency(url: str, synchronous_commit: bool = True) -> tuple[list[list[object]], float]:
    from leasehold import Ledger

    rows: list[list[object]] = []
    n = 500
    with Ledger.open(url, create=True) as ledger:
        _fill_leasehold(url)
        conn = ledger.store._conn()
        if not synchronous_commit:
            # Without waiting for the WAL flush: what is left is round trips and CPU, where a
            # claim's own overhead shows (a loaded disk otherwise dominates every row).
            conn.execute("SET synchronous_commit = off")

        def stats(samples: list[float]) -> tuple[float, float]:
            samples.sort()
            return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]

        def timed(fn, i: int) -> float:  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            fn(i)
            return (time.perf_counter() - t0) * 1e6

        # The floors and the claim interleaved call by call (each on its own tasks), so a load
        # that drifts during the run weighs on all three alike.
        contenders = [
            lambda i: conn.execute(
                "UPDATE tasks SET lease_actor = 'raw', lease_session = 's', lease_until = 1e12, "
                "fence = fence + 1 WHERE id = %s RETURNING *", (f"b{i + 1}",)).fetchone(),
            lambda i: conn.execute(CTE_FLOOR, (f"b{n + i + 1}",)).fetchone(),
            lambda i: ledger.claim(f"b{2 * n + i + 1}", "lat:1", ttl=600),
        ]
        samples: list[list[float]] = [[], [], []]
        for i in range(n):
            for k, fn in enumerate(contenders):
                samples[k].append(timed(fn, i))
        floor, cte, claim = (stats(s) for s in samples)
        _fill_leasehold(url)
        nxt = stats([timed(lambda i: ledger.next("lat:1", ttl=600), i) for i in range(n)])
        done = stats([timed(lambda i: ledger.complete(f"b{i + 1}", "lat:1"), i) for i in range(n)])
        rows.append(["raw single UPDATE ... RETURNING (floor)", f"{floor[0]:.0f}", f"{floor[1]:.0f}"])
        rows.append(["one-statement CTE floor (lock, clock, grant, event)", f"{cte[0]:.0f}",
                     f"{cte[1]:.0f}"])
        rows.append(["ledger.claim(id)", f"{claim[0]:.0f}", f"{claim[1]:.0f}"])
        rows.append(["ledger.next()", f"{nxt[0]:.0f}", f"{nxt[1]:.0f}"])
        rows.append(["ledger.complete(id)", f"{done[0]:.0f}", f"{done[1]:.0f}"])
    return rows, claim[0] / cte[0]


def latency_section(report, url: str) -> None:  # type: ignore[no-untyped-def]
    parts = []
    verdicts = []
    for sync in (True, False):
        lat, ratio = _latency(url, sync)
        label = "synchronous_commit = on (the default)" if sync else "synchronous_commit = off"
        parts.append(f"{label}:\n\n" + report.table(["operation", "p50 us", "p99 us"], lat)
                     + f"\n\nledger.claim p50 / CTE floor p50: {ratio:.2f}x "
                     + f"({'met' if ratio <= 1.5 else 'missed'})")
        verdicts.append(ratio <= 1.5)
    report.section(
        "PostgreSQL: claim latency",
        "One client, 500 calls each of a claim of a free task, microseconds. The first floor is "
        "one `UPDATE ... RETURNING` statement on the same connection (no event, no checks); the "
        "CTE floor is one statement that locks the row, reads the clock after the lock, grants "
        "and appends the event (what a claim must do at least, without the operation id, the "
        "checks or the Python API). The three are interleaved call by call. Measured with the server's default commit and again with "
        "`synchronous_commit = off` on the connection (no WAL flush wait: round trips and CPU "
        "only).\n\n" + "\n\n".join(parts)
        + "\n\nTarget (ledger.claim p50 <= 1.5x the CTE floor's p50, both settings): "
        + f"{'met' if all(verdicts) else 'missed'}.",
    )


def run(report) -> None:  # type: ignore[no-untyped-def]
    try:
        import pgqueuer  # noqa: F401
        from pgqueuer.queries import Queries  # noqa: F401
    except ImportError:
        report.section("PostgreSQL: next + done vs pgqueuer",
                       "skipped: pgqueuer is not installed (`pip install -e '.[bench]'`)")
        return
    try:
        admin = _admin()
    except Exception as exc:
        report.section("PostgreSQL: next + done vs pgqueuer", f"skipped: no server at {BASE}: {exc}")
        return
    name = "lh_bench_" + uuid.uuid4().hex[:8]
    admin.execute(f'CREATE DATABASE "{name}"')
    url = _db_url(name)
    try:
        import asyncio

        import psycopg
        from pgqueuer.queries import Queries

        from leasehold import Ledger

        with Ledger.open(url, create=True):
            pass  # leasehold schema

        async def install() -> None:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            await Queries.from_psycopg_connection(conn).install()
            await conn.close()

        asyncio.run(install())

        rows = []
        met = True
        for batch in BATCHES:
            for workers in WORKERS:
                _fill_leasehold(url)
                lh = _race(LEASEHOLD_WORKER, url, workers, batch)
                _fill_pgqueuer(url)
                pq = _race(PGQUEUER_WORKER, url, workers, batch)
                ratio = lh["rate"] / pq["rate"]
                if workers >= 8 and ratio < 1:
                    met = False
                rows.append([batch, workers, f"{lh['rate']:.0f}", f"{pq['rate']:.0f}", f"{ratio:.2f}",
                             f"{lh['done']}/{ITEMS}", int(lh["double"]), f"{pq['done']}/{ITEMS}",
                             int(pq["double"])])
        body = (
            f"{ITEMS} items drained by N worker processes released together; each leasehold worker "
            "loops `ledger.next(count=B)` + `ledger.complete_many()` (one acknowledgement per batch, as pgqueuer), each pgqueuer worker "
            "`Queries.dequeue(batch_size=B)` + `Queries.log_jobs()` (acknowledge). Same server, same "
            "database, same run. Rates are items per second.\n\n"
            + report.table(["batch", "workers", "leasehold/s", "pgqueuer/s", "ratio",
                            "leasehold done", "leasehold double grants", "pgqueuer done",
                            "pgqueuer double grants"], rows)
            + f"\n\nTarget (leasehold >= pgqueuer at 8 and 32 workers): {'met' if met else 'NOT met'}."
        )
        report.section("PostgreSQL: next + done vs pgqueuer", body)
        latency_section(report, url)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def run_latency_only(report) -> None:  # type: ignore[no-untyped-def]
    """Just the claim latency section (``python benchmarks/bench_postgres.py latency``)."""
    admin = _admin()
    name = "lh_bench_" + uuid.uuid4().hex[:8]
    admin.execute(f'CREATE DATABASE "{name}"')
    url = _db_url(name)
    try:
        from leasehold import Ledger

        with Ledger.open(url, create=True):
            pass
        latency_section(report, url)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import Report

    if sys.argv[1:] == ["latency"]:
        run_latency_only(Report())
    else:
        run(Report())
