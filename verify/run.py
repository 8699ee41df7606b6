"""``make verify``: record histories across the configurations, check each for
linearizability, run the checker's self-test and the short-TTL event-log runs, and write
``benchmarks/VERIFY.md``.

    python -m verify.run                      # the full run (>= 1,000 histories)
    python -m verify.run --quick              # a small sample of every kind (the test suite's)
    python -m verify.run --check FILE.jsonl   # re-check one saved history and explain it

Exit status: 0 when every history is linearizable (or unknown), every mutation was flagged
and the event logs hold; 1 otherwise; 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from verify import pgdb
from verify.checker import LINEARIZABLE, UNKNOWN, VIOLATION, Op, Result, check_history
from verify.eventlog import check_event_log, read_records
from verify.mutate import KINDS, clean_tasks, mutate
from verify.recorder import REPO, Pool, load_history, save_history

API_OPS = {8: 20, 32: 6}  # operations per worker per history
CLI_OPS = {8: 2, 32: 1}   # each CLI operation is a whole `leasehold` process


class Config:
    def __init__(self, store: str, interface: str, workers: int, faults: str, histories: int) -> None:
        self.store = store
        self.interface = interface
        self.workers = workers
        self.faults = faults
        self.histories = histories
        self.ops_per_worker = (API_OPS if interface == "api" else CLI_OPS)[workers]

    @property
    def name(self) -> str:
        return f"{self.store}-{self.interface}-{self.workers}-{self.faults}"


def configurations(quick: bool, scale: float) -> list[Config]:
    if quick:
        return [Config("sqlite", "api", 8, "none", 3), Config("sqlite", "api", 8, "kill", 3),
                Config("sqlite", "cli", 8, "kill", 2), Config("postgres", "api", 8, "pgkill", 3),
                Config("postgres", "cli", 8, "none", 1)]
    # Histories per configuration: many cheap API histories, fewer CLI ones (each CLI call is
    # a whole `leasehold` process: a 32-worker PostgreSQL CLI history takes about a minute on a
    # loaded 2-core machine).
    counts = {
        ("sqlite", "api", 8): {"none": 150, "kill": 130},
        ("sqlite", "api", 32): {"none": 130, "kill": 110},
        ("postgres", "api", 8): {"none": 90, "kill": 60, "pgkill": 90},
        ("postgres", "api", 32): {"none": 90, "kill": 50, "pgkill": 80},
        ("sqlite", "cli", 8): {"none": 8, "kill": 8},
        ("sqlite", "cli", 32): {"none": 3, "kill": 3},
        ("postgres", "cli", 8): {"none": 3, "kill": 3, "pgkill": 3},
        ("postgres", "cli", 32): {"none": 1, "kill": 1, "pgkill": 1},
    }
    configs = []
    for (store, interface, workers), by_fault in counts.items():
        for faults, count in by_fault.items():
            configs.append(Config(store, interface, workers, faults, max(1, round(count * scale))))
    return configs


class Tally:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.histories = self.ops = self.linearizable = self.violations = self.unknown = 0
        self.explained_by_75 = 0
        self.not_applied = self.unknown_outcome = 0
        self.killed = self.killed_mid_call = self.terminated = 0
        self.seconds = 0.0
        self.findings: list[str] = []

    FIELDS = ("histories", "ops", "linearizable", "violations", "unknown", "explained_by_75",
              "not_applied", "unknown_outcome", "killed", "killed_mid_call", "terminated",
              "seconds", "findings")

    def to_dict(self) -> dict:
        return {"config": self.config.name, **{k: getattr(self, k) for k in self.FIELDS}}

    def load(self, data: dict) -> None:
        for k in self.FIELDS:
            setattr(self, k, data[k])

    def add(self, hist: int, ops: list[Op], result: Result, stats: dict, saved: Path | None) -> None:
        self.histories += 1
        self.ops += len(ops)
        self.not_applied += sum(1 for op in ops if op.outcome == "fail")
        self.unknown_outcome += sum(1 for op in ops if op.outcome == "info")
        self.killed += stats["killed"]
        self.killed_mid_call += stats["killed_mid_call"]
        self.terminated += stats["terminated"]
        if result.verdict == LINEARIZABLE:
            self.linearizable += 1
        elif result.verdict == UNKNOWN:
            self.unknown += 1
        else:
            self.violations += 1
            if any(p.culprits for p in result.partitions):
                self.explained_by_75 += 1
            self.findings.append(f"history {hist} ({self.config.name}"
                                 + (f", saved as {saved.relative_to(REPO)}" if saved else "")
                                 + "):\n" + result.explain())


def record(configs: list[Config], store_urls: dict, pg_name: str | None, workdir: Path,
           save_dir: Path | None, time_limit: float, keep_clean: int,
           progress, partial=None, resume: Path | None = None) -> tuple[list[Tally], list[list[Op]]]:
    tallies: list[Tally] = []
    clean: list[list[Op]] = []
    hist = 0
    rng = random.Random()
    done = {}
    if resume is not None and resume.exists():
        done = {d["config"]: d for d in json.loads(resume.read_text())}
    for config in configs:
        tally = Tally(config)
        tallies.append(tally)
        if config.name in done:
            tally.load(done[config.name])
            progress(f"{config.name}: kept from {resume}")
            continue
        hist = max(hist, 10000 * len(tallies))
        started = time.monotonic()
        with Pool(config.interface, store_urls[config.store], config.workers, workdir,
                  pgdb.server_url(), pg_name if config.store == "postgres" else None) as pool:
            for _ in range(config.histories):
                hist += 1
                tasks = [f"v{hist}-t{i}" for i in range(rng.randint(2, 4))]
                ops, stats = pool.run(hist, tasks, config.ops_per_worker, faults=config.faults)
                result = check_history(ops, time_limit)
                saved = None
                if result.verdict != LINEARIZABLE and save_dir is not None:
                    save_dir.mkdir(parents=True, exist_ok=True)
                    saved = save_dir / f"{config.name}-h{hist}.jsonl"
                    save_history(saved, ops, {"config": config.name, "hist": hist})
                tally.add(hist, ops, result, stats, saved)
                if (result.verdict == LINEARIZABLE and len(clean) < keep_clean
                        and clean_tasks(ops)):
                    clean.append(ops)
        tally.seconds = time.monotonic() - started
        progress(f"{config.name}: {tally.histories} histories, {tally.ops} ops, "
                 f"{tally.violations} violations, {tally.unknown} unknown "
                 f"({tally.seconds:.0f}s)")
        if resume is not None:
            resume.parent.mkdir(parents=True, exist_ok=True)
            resume.write_text(json.dumps([t.to_dict() for t in tallies]))
        if partial is not None:
            partial(tallies)
    return tallies, clean


def self_test(histories: list[list[Op]], per_kind: int = 3, seed: int = 1) -> dict[str, list[int]]:
    """Mutate each clean history up to ``per_kind`` times per kind; returns, per kind,
    ``[applied, flagged]``, and the descriptions of any mutation the checker missed."""
    rng = random.Random(seed)
    counts: dict[str, list] = {kind: [0, 0, []] for kind in KINDS}
    for ops in histories:
        for kind in KINDS:
            for _ in range(per_kind):
                mutated = mutate(ops, kind, rng)
                if mutated is None:
                    break
                new_ops, description = mutated
                counts[kind][0] += 1
                if check_history(new_ops, 10.0).verdict == VIOLATION:
                    counts[kind][1] += 1
                else:
                    counts[kind][2].append(description)
    return counts


def stall_runs(store: str, url: str, runs: int, duration: float, workdir: Path, progress) -> dict:
    from leasehold import Ledger

    total = {"runs": 0, "events": 0, "grants": 0, "renewals": 0, "heartbeats": 0, "takeovers": 0,
             "lost": 0,
             "client_grants": 0, "expired_when_returned": 0, "violations": []}
    with Pool("api", url, 8, workdir) as pool:
        for run in range(runs):
            tasks = [f"s{run}-{store}-t{i}" for i in range(random.randint(2, 4))]
            logs, _ = pool.run_raw(100000 + run, {"mode": "stalls", "tasks": tasks,
                                                  "duration": duration, "stall": 0.4})
            records = read_records(logs)
            with Ledger.open(url) as ledger:
                events = [e for t in tasks for e in ledger.events(t)]
            events.sort(key=lambda e: e.id)
            violations, counts = check_event_log(events, records)
            total["runs"] += 1
            for key, value in counts.items():
                total[key] += value
            total["violations"] += [f"run {run}: {v}" for v in violations]
    progress(f"{store} short TTLs: {total['runs']} runs, {total['grants']} grants, "
             f"{total['takeovers']} takeovers, {len(total['violations'])} violations")
    return total


def ledger_verification(label: str, url: str, progress) -> dict | None:
    """``leasehold verify`` (hash chains, checkpoints, the event log's invariants, task rows) on a
    ledger the campaign wrote, after an anchor (a checkpoint of every table): the histories'
    writers were killed mid-call and their backends terminated, and the ledger must still verify
    clean."""
    from leasehold import Ledger
    from leasehold.errors import ConfigError
    from leasehold.verify import verify_ledger

    try:
        ledger = Ledger.open(url)
    except ConfigError:  # nothing was written there (every configuration resumed)
        return None
    with ledger:
        ledger.store.checkpoint()
        report = verify_ledger(ledger.store)
    out = {"ok": report.ok, "rows": sum(report.rows.values()), "chains": report.chains,
           "tasks": report.tasks, "breaks": [str(b) for b in report.breaks[:10]],
           "break_count": report.total}
    progress(f"{label}: leasehold verify {'clean' if report.ok else 'BROKEN'} "
             f"({out['rows']} rows, {out['chains']} chains, {out['tasks']} tasks)")
    return out


def render(tallies: list[Tally], selftest: dict, stalls: dict, seconds: float, quick: bool,
           ledgers: dict | None = None) -> str:
    lines = ["# Verification: linearizability of recorded histories", "",
             f"`make verify` ({'quick sample' if quick else 'full run'}), "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {seconds / 60:.1f} min. "
             "How to read this: README, section \"Verification (`make verify`)\".", "",
             "| store | interface | workers | faults | histories | ops | linearizable | violations "
             "| (explained by a 75 that applied) | unknown | exit 75 ops | unknown-outcome ops "
             "| clients killed (mid-call) | backends terminated | time |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    tot = {k: 0 for k in ("histories", "ops", "linearizable", "violations", "explained_by_75",
                          "unknown", "not_applied", "unknown_outcome", "killed", "killed_mid_call",
                          "terminated")}
    for t in tallies:
        c = t.config
        lines.append(f"| {c.store} | {c.interface} | {c.workers} | {c.faults} | {t.histories} | {t.ops} "
                     f"| {t.linearizable} | {t.violations} | {t.explained_by_75} | {t.unknown} "
                     f"| {t.not_applied} | {t.unknown_outcome} | {t.killed} ({t.killed_mid_call}) "
                     f"| {t.terminated} | {t.seconds:.0f}s |")
        for k in tot:
            tot[k] += getattr(t, k)
    lines.append(f"| **all** | | | | {tot['histories']} | {tot['ops']} | {tot['linearizable']} "
                 f"| {tot['violations']} | {tot['explained_by_75']} | {tot['unknown']} "
                 f"| {tot['not_applied']} | {tot['unknown_outcome']} "
                 f"| {tot['killed']} ({tot['killed_mid_call']}) | {tot['terminated']} | |")
    lines += ["", "## Checker self-test (mutated histories)", "",
              "| mutation | applied | flagged |", "|---|---:|---:|"]
    for kind, (applied, flagged, _missed) in selftest.items():
        lines.append(f"| {kind} | {applied} | {flagged} |")
    missed = [d for _, _, m in selftest.values() for d in m]
    if missed:
        lines += ["", "Mutations the checker did NOT flag:", ""] + [f"- {d}" for d in missed]
    lines += ["", "## Short TTLs (1-2 s) with stalled heartbeats, checked on the event log", "",
              "| store | runs | events | grants | re-claims by the holder | heartbeats applied | takeovers "
              "| heartbeats lost | leases expired when returned | violations |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for store, s in stalls.items():
        lines.append(f"| {store} | {s['runs']} | {s['events']} | {s['grants']} | {s['renewals']} "
                     f"| {s['heartbeats']} | {s['takeovers']} | {s['lost']} | {s['expired_when_returned']} "
                     f"| {len(s['violations'])} |")
    if ledgers:
        lines += ["", "## Ledger verification (`leasehold verify`) of the ledgers written above", "",
                  "| ledger | rows | chains | tasks checked | breaks |", "|---|---:|---:|---:|---:|"]
        for label, v in ledgers.items():
            if v is None:
                continue
            lines.append(f"| {label} | {v['rows']} | {v['chains']} | {v['tasks']} | {v['break_count']} |")
        for label, v in ledgers.items():
            lines += [f"- {label}: {b}" for b in (v or {}).get("breaks", [])]
    findings = [f for t in tallies for f in t.findings[:5]]
    stall_findings = [v for s in stalls.values() for v in s["violations"][:10]]
    lines += ["", "## Findings", ""]
    if not findings and not stall_findings:
        lines.append("None: every history was linearizable or unknown, and the event logs held.")
    for f in findings:
        lines += ["```", f, "```"]
    for v in stall_findings:
        lines.append(f"- {v}")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small sample of every kind")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the history counts")
    parser.add_argument("--out", default=None, help="the report (default benchmarks/VERIFY.md; "
                        "with --quick none)")
    parser.add_argument("--save", default=str(REPO / ".verify" / "histories"),
                        help="folder for histories that are not linearizable")
    parser.add_argument("--time-limit", type=float, default=20.0,
                        help="seconds per task partition before the verdict is 'unknown'")
    parser.add_argument("--stall-runs", type=int, default=None,
                        help="short-TTL runs per store (default 6, quick 1)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--check", metavar="FILE", help="re-check one saved history")
    parser.add_argument("--resume", action="store_true",
                        help="keep the configurations a cut-short run finished "
                             "(.verify/tallies.json) and run the others")
    args = parser.parse_args(argv)

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.check:
        ops, meta = load_history(Path(args.check))
        result = check_history(ops, args.time_limit)
        print(f"{meta}: {result.verdict}\n{result.explain()}")
        return 0 if result.verdict != VIOLATION else 1

    started = time.monotonic()
    configs = configurations(args.quick, args.scale)
    why_not = None if args.no_postgres else pgdb.available()
    if args.no_postgres or why_not:
        if why_not:
            progress(f"skipping PostgreSQL: {why_not}")
        configs = [c for c in configs if c.store != "postgres"]
    stall_count = args.stall_runs if args.stall_runs is not None else (1 if args.quick else 6)
    out = args.out or (None if args.quick else str(REPO / "benchmarks" / "VERIFY.md"))
    resume = None if args.quick else REPO / ".verify" / "tallies.json"
    if resume is not None and not args.resume:
        resume.unlink(missing_ok=True)

    def partial(tallies: list[Tally]) -> None:
        """Write what is known so far: a run cut short still leaves its figures."""
        if out:
            Path(out).write_text(render(tallies, {}, {}, time.monotonic() - started, args.quick)
                                 .replace("# Verification: linearizability of recorded histories",
                                          "# Verification: linearizability of recorded histories "
                                          f"(PARTIAL: {len(tallies)} of {len(configs)} "
                                          "configurations so far)", 1))
    with tempfile.TemporaryDirectory(prefix="leasehold-verify-") as tmp:
        workdir = Path(tmp)
        urls = {"sqlite": str(workdir / "ledger.db")}
        stalls: dict = {}
        ledgers: dict = {}
        if any(c.store == "postgres" for c in configs):
            with pgdb.temporary_database() as (url, name):
                urls["postgres"] = url
                tallies, clean = record(configs, urls, name, workdir / "logs", Path(args.save),
                                        args.time_limit, 40, progress, partial, resume)
                if stall_count:
                    stalls["postgres"] = stall_runs("postgres", url, stall_count, 6.0,
                                                    workdir / "stalls", progress)
                ledgers["postgres"] = ledger_verification("postgres", url, progress)
        else:
            tallies, clean = record(configs, urls, None, workdir / "logs", Path(args.save),
                                    args.time_limit, 40, progress, partial, resume)
        ledgers = {"sqlite": ledger_verification("sqlite", urls["sqlite"], progress), **ledgers}
        if stall_count:
            stalls = {"sqlite": stall_runs("sqlite", str(workdir / "stalls.db"), stall_count, 6.0,
                                           workdir / "stalls", progress), **stalls}
            ledgers["sqlite short TTLs"] = ledger_verification(
                "sqlite short TTLs", str(workdir / "stalls.db"), progress)
    selftest = self_test(clean)
    report = render(tallies, selftest, stalls, time.monotonic() - started, args.quick, ledgers)
    if out:
        Path(out).write_text(report)
        progress(f"wrote {out}")
    else:
        print(report)
    bad = (sum(t.violations for t in tallies) + sum(v is not None and not v["ok"] for v in ledgers.values())
           + sum(applied - flagged for applied, flagged, _ in selftest.values())
           + sum(len(s["violations"]) for s in stalls.values()))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
