"""Ticket reservations and the feed on SQLite: reserve throughput alone and under contention,
post with reservation, and the reducer over a feed of a few thousand posts."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

WORKER = r"""
import os, sys, time
from leasehold import Ledger
url, start, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Ledger.open(url, busy_timeout=60) as ledger:
    ledger.tickets.namespaces()
    while not os.path.exists(start):
        time.sleep(0.001)
    for _ in range(n):
        ledger.tickets.reserve("CMB", "bench:w")
"""


def _contention(url: str, folder: str, procs: int, per: int) -> float:
    start = os.path.join(folder, f"start-{procs}")
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, url, start, str(per)]) for _ in range(procs)]
    time.sleep(1.0)  # let every worker connect
    began = time.perf_counter()
    open(start, "w").close()
    for w in workers:
        if w.wait() != 0:
            raise SystemExit("a reservation worker failed")
    return time.perf_counter() - began


def run(report) -> None:  # type: ignore[no-untyped-def]
    from leasehold import Ledger

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        url = os.path.join(folder, "bench.db")
        with Ledger.open(url, create=True) as ledger:
            n = 500
            began = time.perf_counter()
            for _ in range(n):
                ledger.tickets.reserve("CMB", "bench:one")
            alone = time.perf_counter() - began
            rows.append(["reserve, 1 process", n, f"{alone / n * 1000:.2f}", f"{n / alone:.0f}"])
            began = time.perf_counter()
            ledger.tickets.reserve("BATCH", "bench:one", count=n)
            batch = time.perf_counter() - began
            rows.append([f"reserve --count {n}", n, f"{batch / n * 1000:.3f}", f"{n / batch:.0f}"])
            began = time.perf_counter()
            for i in range(n):
                ledger.feed.post("actionable", f"{{{{ITEM_ID}}}} bench {i}", "bench:one", reserve="FEED")
            posting = time.perf_counter() - began
            rows.append(["feed post --reserve", n, f"{posting / n * 1000:.2f}", f"{n / posting:.0f}"])
        for procs in (4, 8):
            per = 100
            took = _contention(url, folder, procs, per)
            total = procs * per
            rows.append([f"reserve, {procs} processes at once", total, f"{took / total * 1000:.2f}",
                         f"{total / took:.0f}"])
        with Ledger.open(url) as ledger:
            posts = len(ledger.feed.posts())
            began = time.perf_counter()
            ledger.feed.queue()
            q = time.perf_counter() - began
            began = time.perf_counter()
            ledger.feed.drift()
            d = time.perf_counter() - began
    report.section(
        "Ticket reservations and the feed (SQLite)",
        report.table(["operation", "n", "ms each", "per second"], rows)
        + f"\n\n`queue` over {posts} posts: {q * 1000:.0f} ms; `drift-check`: {d * 1000:.0f} ms.\n"
        "Under contention every reservation is still one `BEGIN IMMEDIATE` transaction; the ids "
        "stay unique and gap-free (tests/test_tickets.py proves it with 8 processes).",
    )
