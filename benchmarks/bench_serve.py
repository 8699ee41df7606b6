"""``leasehold serve``: what the network costs.

1. CLI start-up: ``leasehold status`` through a server vs on a local SQLite ledger vs
   ``python -c pass`` (the remote client is stdlib ``http.client`` only).
2. One claim+release round trip through the HTTP API vs the direct PostgreSQL API (target: <= 2x).
3. Throughput: 32 processes claiming from one ready queue (``next``) through a two-worker
   server vs directly on PostgreSQL (target: >= 0.8x), and double grants (must be 0).
4. Wake-up of a waiter on one server process by a release through another (target: <= 100 ms).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

BIN = Path(sys.executable).parent
LEASEHOLD = str(BIN / "leasehold")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(db: str, env: dict[str, str], workers: int = 1) -> tuple[subprocess.Popen, str]:
    from tests.server import wait_healthy

    port = _port()
    proc = subprocess.Popen([LEASEHOLD, "serve", "--db", db, "--port", str(port), "--workers", str(workers)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc=proc)
    return proc, url


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _pg_url() -> str | None:
    from tests import pg

    if pg.UNAVAILABLE:
        return None
    return pg.url_for_schema(pg.create_schema())


def _startup(report, env: dict[str, str], tmp: str) -> None:  # type: ignore[no-untyped-def]
    from leasehold import Ledger

    local = os.path.join(tmp, "local.db")
    served = os.path.join(tmp, "served.db")
    with Ledger.open(local, create=True) as ledger:
        ledger.claim("99927", "bench:s", ttl=3600)
    with Ledger.open(served, create=True) as ledger:
        ledger.claim("99927", "bench:s", ttl=3600)
        token = ledger.tokens.create("bench", "reader")[1]
    proc, url = _serve(served, env)
    try:
        cases = [
            ("python -c pass", [sys.executable, "-c", "pass"], {}),
            ("leasehold status ID (local SQLite)", [LEASEHOLD, "status", "99927"], {"LEASEHOLD_DB": local}),
            ("leasehold status ID (through the server)", [LEASEHOLD, "status", "99927"],
             {"LEASEHOLD_DB": url, "LEASEHOLD_TOKEN": token}),
            ("python -c 'import http.client'", [sys.executable, "-c", "import http.client"], {}),
        ]
        samples: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        for _ in range(30):
            for name, cmd, extra in cases:
                started = time.perf_counter()
                done = subprocess.run(cmd, env=dict(env, **extra), capture_output=True)
                samples[name].append((time.perf_counter() - started) * 1000)
                assert done.returncode == 0, done.stderr
        base = statistics.median(samples["python -c pass"])
        rows = [[name, f"{statistics.median(s):.1f}", f"{min(s):.1f}", f"{statistics.median(s) / base:.2f}x"]
                for name, s in samples.items()]
        report.section("Serve 1. CLI start-up: remote status vs local status vs python -c pass", report.table(
            ["command", "median ms", "min ms", "ratio to python -c pass"], rows)
            + "\n\n30 interleaved runs each. The remote client imports http.client (stdlib) and "
              "nothing of the server stack; the server runs on this machine (loopback).")
    finally:
        _stop(proc)


def _cycles(ledger, n: int, holder: str) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for i in range(n):
        ledger.claim(f"cycle-{i % 50}", holder, ttl=60)
        ledger.release(f"cycle-{i % 50}", holder)
    return (time.perf_counter() - started) / n * 1e6


def _round_trip(report, env: dict[str, str], pg_url: str) -> None:  # type: ignore[no-untyped-def]
    from leasehold import Ledger
    from leasehold.remote import RemoteLedger

    with Ledger.open(pg_url, create=True) as ledger:
        token = ledger.tokens.create("bench")[1]
    proc, url = _serve(pg_url, env)
    try:
        direct, remote = Ledger.open(pg_url), RemoteLedger(url, token)
        _cycles(direct, 50, "bench:d")
        _cycles(remote, 50, "bench:r")
        d_runs, r_runs = [], []
        for _ in range(3):
            d_runs.append(_cycles(direct, 300, "bench:d"))
            r_runs.append(_cycles(remote, 300, "bench:r"))
        d, r = min(d_runs), min(r_runs)
        direct.close()
        remote.close()
    finally:
        _stop(proc)
    verdict = "met" if r / d <= 2 else f"MISSED ({r / d:.2f}x)"
    report.section("Serve 2. claim+release round trip: HTTP API vs direct PostgreSQL", report.table(
        ["path", "µs per cycle", "cycles/s", "ratio to direct"],
        [["Ledger.open(postgresql://) claim + release", f"{d:.0f}", f"{1e6 / d:,.0f}", "1.00x"],
         ["RemoteLedger (HTTP, one server process) claim + release", f"{r:.0f}", f"{1e6 / r:,.0f}", f"{r / d:.2f}x"]])
        + f"\n\n300 cycles per run, best of 3 interleaved runs, one client. Target <= 2x: {verdict}.")


def _worker(kind: str, url: str, token: str, i: int, barrier, out) -> None:  # type: ignore[no-untyped-def]
    if kind == "http":
        from leasehold.remote import RemoteLedger

        ledger = RemoteLedger(url, token)
    else:
        from leasehold import Ledger

        ledger = Ledger.open(url)
    got = []
    barrier.wait(300)
    while True:
        leases = ledger.next(f"bench:w{i}", ttl=600)
        if not leases:
            break
        got.append(leases[0].task_id)
    ledger.close()
    out.put(got)


def _throughput(kind: str, url: str, token: str, tasks: int, clients: int = 32) -> tuple[float, int]:
    ctx = get_context("fork")
    barrier = ctx.Barrier(clients + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(kind, url, token, i, barrier, out)) for i in range(clients)]
    for proc in procs:
        proc.start()
    barrier.wait(300)  # a client that could not start breaks the barrier instead of hanging the run
    started = time.perf_counter()
    results = [out.get(timeout=600) for _ in procs]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join(60)
    claimed = [t for r in results for t in r]
    doubles = len(claimed) - len(set(claimed))
    assert len(set(claimed)) == tasks, (len(set(claimed)), tasks)
    return len(claimed) / elapsed, doubles


def _fill(url: str, n: int) -> None:
    from leasehold import Ledger

    with Ledger.open(url, create=True) as ledger:
        for i in range(n):
            ledger.add(f"q-{i:05d}")


def _concurrency(report, env: dict[str, str], runs: int = 3) -> None:  # type: ignore[no-untyped-def]
    from leasehold import Ledger

    tasks = 2000
    rows, ratios, http_doubles_total, log_doubles_total, direct_doubles_total = [], [], 0, 0, 0
    for run in range(runs):
        direct_url, served_url = _pg_url(), _pg_url()
        assert direct_url and served_url
        _fill(direct_url, tasks)
        _fill(served_url, tasks)
        with Ledger.open(served_url, create=True) as ledger:
            token = ledger.tokens.create("bench")[1]
        proc, url = _serve(served_url, env, workers=2)
        try:
            direct_rate, direct_doubles = _throughput("direct", direct_url, "", tasks)
            http_rate, http_doubles = _throughput("http", url, token, tasks)
        finally:
            _stop(proc)
        # the count of double grants is read from the ledger too, not only from the answers
        with Ledger.open(served_url) as ledger:
            grants = [e.task_id for e in ledger.events() if e.kind == "claimed"]
        log_doubles = len(grants) - len(set(grants))
        ratio = http_rate / direct_rate
        ratios.append(ratio)
        direct_doubles_total += direct_doubles
        http_doubles_total += http_doubles
        log_doubles_total += log_doubles
        rows.append([run + 1, f"{direct_rate:,.0f}", f"{http_rate:,.0f}", f"{ratio:.2f}x"])
    ratio = statistics.median(ratios)
    verdict = "met" if ratio >= 0.8 else f"MISSED ({ratio:.2f}x)"
    rows.append(["median", "", "", f"{ratio:.2f}x"])
    report.section("Serve 3. 32 concurrent claimers: HTTP vs direct PostgreSQL", report.table(
        ["run", "direct claims/s (32 processes, Ledger.open(postgresql://).next())",
         "HTTP claims/s (32 processes, RemoteLedger.next() via leasehold serve --workers 2)", "ratio"], rows)
        + f"\n\n{tasks} ready tasks drained by `next` (one at a time) per run, processes released "
          f"through a barrier; {runs} runs, direct then HTTP in each; the server and the clients share "
          f"this machine's {os.cpu_count()} cores. Double grants: {direct_doubles_total} direct, "
          f"{http_doubles_total} HTTP (event log: {log_doubles_total}). Target >= 0.8x (median): {verdict}.")


def _wake(report, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """A waiter queued on server B, the release sent to server A: release-to-grant latency."""
    import threading

    from leasehold import Ledger
    from leasehold.remote import RemoteLedger

    url = _pg_url()
    assert url
    with Ledger.open(url, create=True) as ledger:
        token = ledger.tokens.create("bench")[1]
    (pa, a_url), (pb, b_url) = _serve(url, env), _serve(url, env)
    samples = []
    try:
        a, b = RemoteLedger(a_url, token), RemoteLedger(b_url, token)
        for i in range(15):
            task = f"wake-{i}"
            a.claim(task, "bench:a", ttl=300)
            got: list[float] = []
            thread = threading.Thread(target=lambda t=task, g=got: (b.wait_claim(t, "bench:b", timeout=60),
                                                                    g.append(time.perf_counter())))
            thread.start()
            time.sleep(0.3)  # let the waiter queue (the figure is release-to-grant, not this)
            released = time.perf_counter()
            a.release(task, "bench:a")
            thread.join(60)
            samples.append((got[0] - released) * 1000)
        a.close()
        b.close()
    finally:
        _stop(pa)
        _stop(pb)
    median = statistics.median(samples)
    verdict = "met" if median <= 100 else f"MISSED ({median:.0f} ms)"
    report.section("Serve 4. Wake-up across server processes (PostgreSQL LISTEN/NOTIFY)", report.table(
        ["release on A, waiter on B", "median ms", "max ms"],
        [["release-to-grant latency", f"{median:.1f}", f"{max(samples):.1f}"]])
        + f"\n\n15 samples. Target <= 100 ms: {verdict}. Without the NOTIFY a waiter re-checks every 1 s.")


def run(report) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEASEHOLD_")}
    with tempfile.TemporaryDirectory() as tmp:
        env["HOME"] = tmp
        env["XDG_DATA_HOME"] = tmp
        _startup(report, env, tmp)
        pg_url = _pg_url()
        if pg_url is None:
            report.section("Serve 2-3", "skipped: no PostgreSQL server reachable")
            return
        _round_trip(report, env, pg_url)
        _concurrency(report, env)
        _wake(report, env)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    from run import Report

    run(Report())
