"""Decide-then-write paths on PostgreSQL under READ COMMITTED: a decision read from a snapshot
must still hold when the write lands. Each race is set up deterministically by holding a row
lock from a separate connection so the real ``leasehold`` processes queue behind it in a known
order, then letting go.
"""

from __future__ import annotations

import json

import pytest

from leasehold import Ledger
from tests import pg
from tests.conftest import CLI, wait_for
from tests.test_pg_faults import RowLock

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_cli(pg_url: str, base_env: dict[str, str], tmp_path) -> CLI:
    return CLI(pg_url, base_env, tmp_path)


def blocked_behind(pids: list[int]) -> list[int]:
    """Backends waiting on a lock held by any of ``pids``."""
    with pg.admin() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE pg_blocking_pids(pid) && %s::int[]",
            (pids,),
        ).fetchall()
    return [row[0] for row in rows]


def test_sweep_never_clears_a_lease_granted_after_it_read_the_expired_one(
        pg_url: str, pg_cli: CLI) -> None:
    with Ledger.open(pg_url) as ledger:
        lease = ledger.claim("T1", "old:1", ttl=1)
        wait_for(lambda: ledger.now() > lease.expires_at + 0.05, what="the lease to expire")
    lock = RowLock(pg_url, "T1")
    try:
        claim = pg_cli.popen("claim", "T1", "--actor", "new", "--session", "2", "--ttl", "10m",
                             stdout=-1, stderr=-1)
        claimer = wait_for(lambda: blocked_behind([lock.pid]), what="the claim to queue")[0]
        sweep = pg_cli.popen("sweep", "--auto-release", "--json", stdout=-1, stderr=-1)
        # The sweep has read the expired lease and queues behind the claim, or skips the row.
        wait_for(lambda: sweep.poll() is not None
                 or len(blocked_behind([lock.pid, claimer])) >= 2, what="the sweep to queue")
    finally:
        lock.release()
    out, err = claim.communicate(timeout=30)
    assert claim.returncode == 0, err
    out, err = sweep.communicate(timeout=30)
    assert sweep.returncode == 0, err
    with Ledger.open(pg_url) as ledger:
        task = ledger.show("T1")
        assert task.lease_holder == "new:2", "the sweep cleared a lease granted after its read"
        assert task.lease_valid(ledger.now())
        assert [e.kind for e in ledger.events("T1")][-1] == "claimed"


def test_confirm_rechecks_the_post_after_taking_the_items_lock(pg_url: str, pg_cli: CLI) -> None:
    """``feed confirm`` read the thread before locking its item; a renumbering committed in
    between left it confirming an item the post no longer files (a traceback, exit 70)."""
    with Ledger.open(pg_url) as ledger:
        post = ledger.feed.post("actionable", "offline filing", "ann:s1", provisional="CMB-0105")
    lock = RowLock(pg_url, "CMB-0105")
    try:
        confirm = pg_cli.popen("feed", "confirm", str(post.id), "--json", "--actor", "bob",
                               "--session", "s2", stdout=-1, stderr=-1)
        confirmer = wait_for(lambda: blocked_behind([lock.pid]), what="the confirm to queue")[0]
        amend = pg_cli.popen("feed", "amend", str(post.id), "--renumber", "", "--actor", "ann",
                             "--session", "s1", stdout=-1, stderr=-1)
        wait_for(lambda: amend.poll() is not None
                 or len(blocked_behind([lock.pid, confirmer])) >= 2,
                 what="the amend to finish or queue")
    finally:
        lock.release()
    out, err = confirm.communicate(timeout=30)
    assert confirm.returncode == 0, err
    result = json.loads(out)
    _, err = amend.communicate(timeout=30)
    assert amend.returncode == 0, err
    with Ledger.open(pg_url) as ledger:
        posts = ledger.feed.posts(item="CMB-0105") + ledger.feed.posts(item="CMB-0001")
        kinds = sorted({p.id: p.kind for p in posts}.values())
        if result["already"]:  # the renumbering came first: it resolved the post
            assert kinds == ["actionable", "amendment"]
        else:  # the confirmation came first, then the renumbering
            assert kinds == ["actionable", "amendment", "confirmed"]
            assert result["confirmed"]["refs"] == post.id
        assert ledger.feed.drift() == []
