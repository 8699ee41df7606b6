"""Missions figures on the embedded SQLite ledger.

1. claim / done of one mission through the Python API (lease + rename + atomic rewrite with
   fsync) vs the bare protocol's floor (``rename`` + in-place rewrite, no lease, no fsync).
2. 16 real ``leasehold missions claim --next`` workers draining 64 queued missions: wall time,
   claims per second, lease conflicts skipped, missions claimed twice or never.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MISSIONS = 200
DRAIN = 64
WORKERS = 16
LEASEHOLD = str(Path(sys.executable).parent / "leasehold")


def make_tree(root: str, count: int) -> list[str]:
    from leasehold.missions import Missions

    board = Missions(root, None)
    board.init()
    return [board.new(f"Mission {i}", mission_id=f"m-{i:04d}").id for i in range(count)]


def api_cycle(folder: str) -> tuple[float, float]:
    from leasehold import Ledger
    from leasehold.missions import Missions

    root = os.path.join(folder, "api")
    ids = make_tree(root, MISSIONS)
    with Ledger.open(os.path.join(folder, "api.db"), create=True) as ledger:
        board = Missions(root, ledger)
        claims, dones = [], []
        for mission_id in ids:
            started = time.perf_counter()
            board.claim(mission_id, "bench:s1")
            claims.append(time.perf_counter() - started)
            started = time.perf_counter()
            board.done(mission_id, "bench:s1")
            dones.append(time.perf_counter() - started)
    return statistics.median(claims), statistics.median(dones)


def floor_cycle(folder: str) -> float:
    root = os.path.join(folder, "floor")
    ids = make_tree(root, MISSIONS)
    times = []
    for mission_id in ids:
        started = time.perf_counter()
        source = os.path.join(root, "queue", f"{mission_id}.md")
        target = os.path.join(root, "active", f"{mission_id}.md")
        os.rename(source, target)
        with open(target, encoding="utf-8") as fh:
            text = fh.read()
        text = text.replace("status: QUEUED", "status: ACTIVE") + "- 00:00 - **CLAIMED**\n"
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def drain(folder: str) -> dict[str, float]:
    root = os.path.join(folder, "drain")
    ids = make_tree(root, DRAIN)
    db = os.path.join(folder, "drain.db")
    env = dict(os.environ, LEASEHOLD_DB=db, LEASEHOLD_ACTOR="bench")
    script = ("import json, subprocess, sys\n"
              "got, skipped = [], 0\n"
              "while True:\n"
              "    r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
              "    if r.returncode != 0: break\n"
              "    data = json.loads(r.stdout); got.append(data['mission']['id']); skipped += len(data['skipped'])\n"
              "print(json.dumps({'got': got, 'skipped': skipped}))\n")
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", script, LEASEHOLD, "missions", "--dir", root, "claim",
                               "--next", "--session", f"w{i}", "--json"],
                              env=env, stdout=subprocess.PIPE, text=True) for i in range(WORKERS)]
    results = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    wall = time.perf_counter() - started
    got = [m for r in results for m in r["got"]]
    return {"wall": wall, "claims": len(got), "twice": len(got) - len(set(got)),
            "never": len(set(ids) - set(got)), "skipped": sum(r["skipped"] for r in results),
            "workers_with_claims": sum(1 for r in results if r["got"])}


def run(report) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as folder:
        claim, done = api_cycle(folder)
        floor = floor_cycle(folder)
        report.section(
            "Missions: one claim / done through the API vs the bare protocol",
            report.table(
                ["operation", "median ms", "vs floor"],
                [["claim (lease + rename + atomic rewrite, fsync)", f"{claim * 1000:.2f}", f"{claim / floor:.1f}x"],
                 ["done (extend + rename + rewrite + complete)", f"{done * 1000:.2f}", f"{done / floor:.1f}x"],
                 ["floor: rename + in-place rewrite, no lease, no fsync", f"{floor * 1000:.3f}", "1.0x"]],
            ) + f"\n\n{MISSIONS} missions each, SQLite ledger in a temporary folder.",
        )
        figures = drain(folder)
        report.section(
            f"Missions: {WORKERS} processes running `claim --next` over {DRAIN} queued missions",
            report.table(
                ["wall s", "claims/s", "claimed", "claimed twice", "never claimed", "lease conflicts skipped",
                 "workers that won"],
                [[f"{figures['wall']:.2f}", f"{figures['claims'] / figures['wall']:.1f}", figures["claims"],
                  figures["twice"], figures["never"], figures["skipped"], figures["workers_with_claims"]]],
            ) + "\n\nEach claim is a fresh `leasehold` process (interpreter start-up included).",
        )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import Report  # type: ignore[import-not-found]

    run(Report())
