"""The feed's stored per-item state (feed_items, kept in the posting transaction) equals a full
re-reduction of every post, over random feeds: posts of every kind, provisional filings, imports
with colliding timestamps, amendments (subject, renumbering to a fresh or a given id), confirmations,
and lease changes on the items' tasks (the overlay)."""

from __future__ import annotations

import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leasehold import Ledger
from leasehold.errors import LeaseholdError
from tests.conftest import FakeClock

ITEMS = ["CMB-0001", "CMB-0002", "CMB-0003", "OPS-7"]
SEATS = ["ann:s1", "bob:s2", "cy:s3"]
KINDS = ["actionable", "claimed", "done", "release", "repair", "info"]

item = st.sampled_from(ITEMS)
seat = st.sampled_from(SEATS)
operation = st.one_of(
    st.tuples(st.just("post"), st.sampled_from(KINDS), item, seat, st.booleans()),
    st.tuples(st.just("provisional"), item, seat),
    st.tuples(st.just("import"), st.lists(
        st.tuples(st.integers(0, 5), seat, st.sampled_from(["actionable", "done", "claimed", "info"]), item),
        min_size=1, max_size=4)),
    st.tuples(st.just("amend"), st.integers(0, 30), st.sampled_from([None, "", "subject"] + ITEMS)),
    st.tuples(st.just("confirm"), st.integers(0, 30)),
    st.tuples(st.sampled_from(["claim", "done", "release"]), item, seat),
    st.tuples(st.just("clock"), st.sampled_from([1.0, 600.0, 3600.0, 8000.0])),
)


def apply(ledger: Ledger, clock: FakeClock, op: tuple) -> None:
    feed = ledger.feed
    kind = op[0]
    if kind == "post":
        _, post_kind, it, who, proof = op
        feed.post(post_kind, f"{post_kind} {it}", who, item=it,
                  release_proof="evidence" if proof and post_kind == "actionable" else None)
    elif kind == "provisional":
        feed.post("actionable", f"filed {op[1]}", op[2], provisional=op[1])
    elif kind == "import":
        records = [{"ts": clock.now - 100 + ts, "seat": who, "kind": k, "item": it, "subject": f"imp {it}",
                    "body": ""} for ts, who, k, it in op[1]]
        feed.import_posts(records, "importer:s9")
    elif kind == "amend":
        posts = feed.posts()
        if not posts:
            return
        post = posts[op[1] % len(posts)]
        change = op[2]
        if change == "subject":
            feed.amend(post.id, "ann:s1", subject="amended subject")
        elif change is None:
            feed.amend(post.id, "ann:s1", body="amended body")
        else:
            feed.amend(post.id, "ann:s1", renumber=change)
    elif kind == "confirm":
        posts = feed.posts()
        if posts:
            feed.confirm(posts[op[1] % len(posts)].id, "bob:s2")
    elif kind == "claim":
        ledger.claim(op[1], op[2], ttl=900)
    elif kind == "done":
        ledger.complete(op[1], op[2])
    elif kind == "release":
        ledger.release(op[1], op[2])
    elif kind == "clock":
        clock.advance(op[1])


@settings(max_examples=int(os.environ.get("LEASEHOLD_FEED_EXAMPLES", "25")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=25))
# An item named only by an info post is not in the queue, even while its task is held.
@example(ops=[("post", "actionable", "CMB-0002", "ann:s1", False), ("claim", "CMB-0001", "ann:s1"),
              ("import", [(0, "ann:s1", "info", "CMB-0001")])])
def test_stored_item_state_equals_full_reduction(ops: list) -> None:
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as folder:
        with Ledger.open(os.path.join(folder, "ledger.db"), clock=clock, create=True) as ledger:
            for op in ops:
                try:
                    apply(ledger, clock, op)
                except LeaseholdError:
                    pass  # refused (duplicate, not the holder, not actionable, ...): nothing changed
                feed = ledger.feed
                assert feed.queue() == feed.queue_by_reduction(), op
                assert feed.drift() == feed.drift_by_reduction(), op
            # The first N entries are the first N of the whole queue, with each filter.
            everything = ledger.feed.queue_by_reduction()
            for limit in (1, 2, 5):
                assert ledger.feed.queue(limit=limit) == everything[:limit]
            for state in {e["state"] for e in everything}:
                assert ledger.feed.queue(state=state) == [e for e in everything if e["state"] == state]
            for it in ITEMS:
                assert ledger.feed.queue(item=it) == [e for e in everything if e["item"] == it]


def test_ledger_with_posts_before_the_table_is_rebuilt_once(ledger: Ledger) -> None:
    """A ledger whose posts predate feed_items (migration 0007) gets the table built from the
    posts on first read, then kept incrementally."""
    feed = ledger.feed
    feed.post("actionable", "first", "ann:s1", item="CMB-0001")
    feed.post("actionable", "second", "bob:s2", provisional="CMB-0002")
    expected = feed.queue_by_reduction()
    store = ledger.store
    with store._write() as tx:  # the state of a ledger migrated with posts: table empty, not built
        tx.cursor.execute("UPDATE feed_state SET rebuilt = 0")
        tx.run("feed_items_clear")  # (PostgreSQL: allowed only while a rebuild is pending)
    assert not store.feed_rebuilt()
    assert feed.queue() == expected
    assert store.feed_rebuilt()
    feed.post("done", "finished", "ann:s1", item="CMB-0001")
    assert feed.queue() == feed.queue_by_reduction()


def test_queue_pages_through_many_items(ledger: Ledger) -> None:
    """Paging (keyset on filing time and item) returns every item once, in order."""
    records = [{"ts": 1_700_000_000 + (i % 7), "seat": f"s{i % 3}", "kind": "actionable",
                "item": f"P-{i:04d}", "subject": "x", "body": ""} for i in range(450)]
    records += [{"ts": 1_700_000_100, "seat": "s0", "kind": "done", "item": f"P-{i:04d}",
                 "subject": "x", "body": ""} for i in range(0, 450, 3)]
    ledger.feed.import_posts(records, "imp:s")
    expected = ledger.feed.queue_by_reduction()
    assert ledger.feed.queue() == expected
    assert [e["item"] for e in ledger.feed.iter_queue(page=50)] == [e["item"] for e in expected]
    assert ledger.feed.queue(limit=120) == expected[:120]
    assert json.dumps(ledger.feed.drift()) == json.dumps(ledger.feed.drift_by_reduction())


@pytest.mark.parametrize("limit", [0, -1])
def test_queue_limit_must_be_positive(ledger: Ledger, limit: int) -> None:
    with pytest.raises(LeaseholdError):
        ledger.feed.queue(limit=limit)


def test_queue_finds_feed_done_items_held_again_from_either_side(ledger: Ledger) -> None:
    """An item done in the feed whose task is validly held again is CLAIMED (the overlay); the
    queue finds it from the fewer of the items done in the feed and the valid leases, each way."""
    feed = ledger.feed
    for i in range(3):
        feed.post("actionable", f"file CMB-000{i}", "ann:s1", item=f"CMB-000{i}")
    for i in range(2):
        feed.post("done", f"done CMB-000{i}", "ann:s1", item=f"CMB-000{i}")
    ledger.claim("CMB-0000", "bob:s2", ttl=900)  # 2 items done in the feed, 1 valid lease
    expected = feed.queue_by_reduction()
    assert [e["state"] for e in expected if e["item"] == "CMB-0000"] == ["CLAIMED"]
    assert feed.queue() == expected
    assert feed.queue(state="CLAIMED") == [e for e in expected if e["state"] == "CLAIMED"]
    for i in range(4):  # now more valid leases than items done in the feed
        ledger.claim(f"X-{i}", "cy:s3", ttl=900)
    assert feed.queue() == feed.queue_by_reduction()
    assert [e["item"] for e in feed.queue(limit=1)] == ["CMB-0000"]
