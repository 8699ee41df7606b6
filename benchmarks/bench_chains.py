"""PostgreSQL: claim throughput with the hash chains against the same ledger with them off.

32 worker processes, each claiming its own distinct tasks (one transaction per claim: the lease
UPDATE and its `claimed` event, whose BEFORE INSERT trigger computes the chain hash under the
task's chain lock). Two schemas in one database, identical but for the chain triggers, which
are disabled in the "off" schema. Each worker connects and makes one warm-up claim (its backend
compiles the trigger function) before the barrier: the figure is steady-state throughput.
Rounds alternate on/off; the figure is the median of the per-round ratios. Target: on >= 0.9 x
off.

Server: ``LEASEHOLD_BENCH_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Run alone with ``python benchmarks/run.py chains``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from urllib.parse import quote

BASE = os.environ.get("LEASEHOLD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
WORKERS = int(os.environ.get("LEASEHOLD_BENCH_CHAIN_WORKERS", "32"))
CLAIMS = int(os.environ.get("LEASEHOLD_BENCH_CHAIN_CLAIMS", "40"))
ROUNDS = int(os.environ.get("LEASEHOLD_BENCH_CHAIN_ROUNDS", "9"))
CHAIN_TRIGGERS = {"events": "events_chain", "feed_posts": "feed_posts_chain",
                  "reservations": "reservations_chain", "namespaces": "namespaces_chain"}

WORKER = r"""
import os, sys, time
from leasehold import Ledger
url, prefix, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ledger = Ledger.open(url)
holder = prefix + ":s"
ledger.claim(prefix + "-warm", holder, ttl=600)  # connected, the trigger function compiled
print("ready", flush=True)
os.read(go, 1)
for i in range(count):
    ledger.claim(f"{prefix}-{i}", holder, ttl=600)
print(time.time(), flush=True)
"""


def _url(schema: str) -> str:
    sep = "&" if "?" in BASE else "?"
    return f"{BASE}{sep}options={quote('-csearch_path=' + schema, safe='')}"


def _prepare(schema: str, chains: bool, round_no: int, workers: int, claims: int) -> None:
    import psycopg

    from leasehold import Ledger

    with Ledger.open(_url(schema), create=True):  # creates the schema's ledger once
        pass
    with psycopg.connect(_url(schema), autocommit=True) as conn:
        for table, trigger in CHAIN_TRIGGERS.items():
            conn.execute(f"ALTER TABLE {table} {'ENABLE' if chains else 'DISABLE'} TRIGGER {trigger}")
        conn.execute(
            "INSERT INTO tasks (id, status, priority, created_at, updated_at) "
            "SELECT 'r' || %s || 'w' || w || '-' || CASE WHEN i < 0 THEN 'warm' ELSE i::text END, "
            "'open', 0, 0, 0 FROM generate_series(0, %s) w, generate_series(-1, %s) i",
            (round_no, workers - 1, claims - 1))
        conn.execute("ANALYZE tasks")
        conn.execute("ANALYZE events")


def _race(schema: str, round_no: int, workers: int, claims: int) -> float:
    go_read, go_write = os.pipe()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, _url(schema), f"r{round_no}w{w}",
                               str(claims), str(go_read)],
                              stdout=subprocess.PIPE, text=True, pass_fds=(go_read,))
             for w in range(workers)]
    for p in procs:
        line = p.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"worker failed to start: {line!r}")
    start = time.time()
    os.write(go_write, b"x" * workers)
    ends = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"worker exited {p.returncode}")
        ends.append(float(out.strip().splitlines()[-1]))
    os.close(go_read)
    os.close(go_write)
    return workers * claims / (max(ends) - start)


def measure(workers: int = WORKERS, claims: int = CLAIMS) -> dict[str, object]:
    import psycopg

    schemas = {True: "bench_chain_on_" + uuid.uuid4().hex[:8],
               False: "bench_chain_off_" + uuid.uuid4().hex[:8]}
    with psycopg.connect(BASE, autocommit=True) as admin:
        for schema in schemas.values():
            admin.execute(f'CREATE SCHEMA "{schema}"')
    rates: dict[bool, list[float]] = {True: [], False: []}
    try:
        for round_no in range(ROUNDS):
            order = (True, False) if round_no % 2 == 0 else (False, True)
            for chains in order:
                _prepare(schemas[chains], chains, round_no, workers, claims)
                rates[chains].append(_race(schemas[chains], round_no, workers, claims))
        from leasehold import Ledger
        from leasehold.verify import verify_ledger

        with Ledger.open(_url(schemas[True])) as ledger:
            clean = verify_ledger(ledger.store).ok
    finally:
        with psycopg.connect(BASE, autocommit=True) as admin:
            for schema in schemas.values():
                admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    ratios = [on / off for on, off in zip(rates[True], rates[False], strict=True)]
    return {"on": rates[True], "off": rates[False], "ratio": statistics.median(ratios),
            "ratios": ratios, "verified": clean}


def interleaved(blocks: int = 12, claims: int = 200) -> dict[str, object]:
    """One process, one connection per schema, blocks of ``claims`` claims alternating between
    the two schemas: the chains' own cost per claim, with the machine's load drifting equally
    over both (the 32-worker rounds are seconds apart, and a shared machine's load swings)."""
    import psycopg

    from leasehold import Ledger

    schemas = {True: "bench_chain_il_on_" + uuid.uuid4().hex[:8],
               False: "bench_chain_il_off_" + uuid.uuid4().hex[:8]}
    times: dict[bool, list[float]] = {True: [], False: []}
    with psycopg.connect(BASE, autocommit=True) as admin:
        for schema in schemas.values():
            admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        for chains, schema in schemas.items():
            _prepare(schema, chains, 0, blocks, claims)
        ledgers = {chains: Ledger.open(_url(schema)) for chains, schema in schemas.items()}
        try:
            for ledger in ledgers.values():
                ledger.claim("r0w0-warm", "w:s", ttl=600)
            for block in range(blocks):
                for chains in ((True, False) if block % 2 else (False, True)):
                    start = time.perf_counter()
                    for i in range(claims):
                        ledgers[chains].claim(f"r0w{block}-{i}", "w:s", ttl=600)
                    times[chains].append((time.perf_counter() - start) / claims)
        finally:
            for ledger in ledgers.values():
                ledger.close()
    finally:
        with psycopg.connect(BASE, autocommit=True) as admin:
            for schema in schemas.values():
                admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    on, off = statistics.median(times[True]), statistics.median(times[False])
    return {"on_ms": on * 1e3, "off_ms": off * 1e3, "ratio": off / on}


def run(report) -> None:  # type: ignore[no-untyped-def]
    result = measure()
    single = measure(1, CLAIMS * 8)
    mixed = interleaved()
    on, off = result["on"], result["off"]
    ratio = result["ratio"]
    rows = [[i + 1, f"{a:,.0f}", f"{b:,.0f}", f"{a / b:.2f}"] for i, (a, b) in enumerate(zip(on, off, strict=True))]
    rows.append(["median", f"{statistics.median(on):,.0f}", f"{statistics.median(off):,.0f}",
                 f"{ratio:.2f}"])
    body = (
        f"{WORKERS} worker processes, {CLAIMS} claims each on distinct tasks per round "
        "(claims/s, all workers together; one transaction per claim). Chains off = the same "
        "schema with the chain triggers disabled.\n\n"
        + report.table(["round", "chains on", "chains off", "ratio"], rows)
        + f"\n\nLedger with chains verified clean afterwards: {result['verified']}."
        + "\n\nTarget (chains on >= 0.9 x off, median ratio): "
        + ("met" if ratio >= 0.9 else "MISSED") + f" ({ratio:.2f})."
        + f"\n\nOne worker, {CLAIMS * 8} claims in a row (the trigger's own cost, with no CPU "
        f"contention between workers): chains on {statistics.median(single['on']):,.0f}/s, off "
        f"{statistics.median(single['off']):,.0f}/s, median ratio {single['ratio']:.2f}."
        f"\n\nOne process alternating blocks of 200 claims between the two schemas (12 blocks "
        f"each; the load drifts over both alike): {mixed['on_ms']:.2f} ms per claim with the "
        f"chains, {mixed['off_ms']:.2f} ms without, throughput ratio {mixed['ratio']:.2f}."
    )
    report.section("Hash chains: PostgreSQL claim throughput, 32 workers", body)


if __name__ == "__main__":
    print(measure())
