"""Hash chains under concurrent writers (real OS processes released together through a barrier):
rows of one chain written by racing transactions must chain in id order, so `verify` is clean.

On PostgreSQL an id drawn before the chain lock (the column default) can order two rows of one
chain against the order the lock gave them: the row with the lower id then names the higher one
as its predecessor, and verify reports a false break. Item-less feed posts (one shared chain),
posts on one item and task-less events are the chains with no other lock to order them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from leasehold import Ledger
from leasehold.verify import verify_ledger
from tests.conftest import REPO, wait_for
from tests.racers import Gate

pytestmark = pytest.mark.slow

WORKER = r"""
import sys
from leasehold import Ledger
db, name, go, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with Ledger.open(db, busy_timeout=60) as led:  # a loaded machine must not fail the race
    led.now()  # connected and migrated before the barrier
    from tests.racers import barrier
    barrier(go, go + '.' + name)  # ready, then wait at the test's Gate
    who = name + ':s'
    for i in range(rounds):
        led.feed.post('info', f'{name} says {i}', who)             # the shared item-less chain
        led.feed.post('info', f'{name} on X {i}', who, item='X-1')  # one item, no task row
        led.record_bypass([], who, {'i': i})                        # an event with no task
"""


def _race(db_url: str, tmp_path, workers: int, rounds: int) -> None:  # type: ignore[no-untyped-def]
    gate = Gate(tmp_path / "go")
    go = str(gate)
    names = [f"w{i}" for i in range(workers)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, db_url, n, go, str(rounds)],
                              stderr=subprocess.PIPE, text=True, env=env) for n in names]
    try:
        wait_for(lambda: all(os.path.exists(f"{go}.{n}") for n in names)
                 or any(p.poll() is not None for p in procs), what="racers ready", timeout=120)
        gate.release()
        for p in procs:
            _, err = p.communicate(timeout=180)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_concurrent_feed_posts_and_taskless_events_chain_in_id_order(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Ledger.open(db_url):
        pass
    workers, rounds = 10, 20
    _race(db_url, tmp_path, workers, rounds)
    with Ledger.open(db_url) as ledger:
        report = verify_ledger(ledger.store)
        assert report.ok, "\n".join(str(b) for b in report.breaks)
        assert report.rows["feed_posts"] == workers * rounds * 2
        # post ids stay dense (nothing rolled back here): post #1 is the first post
        ids = sorted(p.id for p in ledger.store.all_posts())
        assert ids == list(range(1, workers * rounds * 2 + 1))
        ledger.store.checkpoint()
        assert verify_ledger(ledger.store).ok
