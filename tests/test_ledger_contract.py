"""The store contract, through the Ledger API, on every backend (``db_url`` is parametrized)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from leasehold import (
    Holder,
    InvalidInput,
    LeaseExpired,
    LeaseHeld,
    Ledger,
    NotFound,
    NotHolder,
    StaleFence,
    TaskDone,
)
from tests.conftest import REMOTE_BACKENDS, _backend_params, make_db_url, sql_only

JOHN = Holder("john", "abc123")
PI = Holder("pi-orch", "xyz456")


@pytest.fixture(params=[*_backend_params(), *REMOTE_BACKENDS])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every backend, and a ``leasehold serve`` server over SQLite and over PostgreSQL."""
    return make_db_url(request, tmp_path)



def kinds(ledger: Ledger, task_id: str) -> list[str]:
    return [e.kind for e in ledger.events(task_id)]


def test_claim_creates_task_and_grants_fence_1(ledger: Ledger) -> None:
    lease = ledger.claim("99927", JOHN, ttl=60)
    assert lease.fence == 1
    assert lease.holder == JOHN
    assert lease.ttl_seconds == 60
    assert lease.expires_at - lease.acquired_at == pytest.approx(60, abs=0.01)
    task = ledger.show("99927")
    assert task.status == "in_progress"
    assert task.lease_holder == "john:abc123"
    assert kinds(ledger, "99927") == ["created", "claimed"]


def test_claim_held_by_other_raises_with_holder_and_expiry(ledger: Ledger) -> None:
    lease = ledger.claim("99927", JOHN, ttl=60)
    with pytest.raises(LeaseHeld) as info:
        ledger.claim("99927", PI, ttl=60)
    err = info.value
    assert err.holder == "john:abc123"
    assert err.expires_at == pytest.approx(lease.expires_at)
    assert err.fence == 1
    assert str(err).startswith("Task 99927 held by john:abc123 until ")
    assert kinds(ledger, "99927") == ["created", "claimed"]  # a refused claim writes nothing


def test_reclaim_by_same_holder_refreshes_and_keeps_fence(ledger: Ledger) -> None:
    first = ledger.claim("t1", JOHN, ttl=60)
    again = ledger.claim("t1", JOHN, ttl=120)
    assert again.fence == first.fence == 1
    assert again.expires_at > first.expires_at
    assert again.acquired_at == pytest.approx(first.acquired_at)
    assert ledger.events("t1")[-1].details.get("renewed") is True


def test_fence_increments_on_every_new_grant(ledger: Ledger) -> None:
    assert ledger.claim("t1", JOHN, ttl=60).fence == 1
    ledger.release("t1", JOHN)
    assert ledger.claim("t1", PI, ttl=60).fence == 2
    ledger.force_release("t1", "stuck", by=JOHN)
    assert ledger.claim("t1", JOHN, ttl=60).fence == 3
    assert ledger.extend("t1", JOHN).fence == 3


def test_extend_by_holder_only(ledger: Ledger) -> None:
    lease = ledger.claim("t1", JOHN, ttl=60)
    extended = ledger.extend("t1", JOHN, ttl=300)
    assert extended.fence == lease.fence
    assert extended.ttl_seconds == 300
    with pytest.raises(LeaseHeld):
        ledger.extend("t1", PI)
    with pytest.raises(StaleFence):
        ledger.extend("t1", JOHN, fence=7)
    with pytest.raises(NotFound):
        ledger.extend("nope", JOHN)
    ledger.release("t1", JOHN)
    with pytest.raises(NotHolder):
        ledger.extend("t1", JOHN)


def test_extend_defaults_to_the_leases_own_ttl(ledger: Ledger) -> None:
    ledger.claim("t1", JOHN, ttl=90)
    lease = ledger.extend("t1", JOHN)
    assert lease.ttl_seconds == 90
    assert lease.expires_at - ledger.now() == pytest.approx(90, abs=2)


def test_release_reopens_and_keep_status_only_unclaims(ledger: Ledger) -> None:
    ledger.claim("t1", JOHN, ttl=60)
    result = ledger.release("t1", JOHN)
    assert result.released and result.task is not None
    assert result.task.status == "open" and result.task.lease_holder is None
    ledger.claim("t2", JOHN, ttl=60)
    kept = ledger.release("t2", JOHN, keep_status=True)
    assert kept.task is not None and kept.task.status == "in_progress"
    assert kept.task.lease_holder is None


def test_release_not_held_is_not_an_error_and_other_holder_is(ledger: Ledger) -> None:
    ledger.add("t1")
    result = ledger.release("t1", JOHN)
    assert not result.released and "not held" in result.message
    ledger.claim("t1", JOHN, ttl=60)
    with pytest.raises(LeaseHeld):
        ledger.release("t1", PI)
    with pytest.raises(NotFound):
        ledger.release("missing", JOHN)


def test_force_release_needs_reason_and_is_recorded(ledger: Ledger) -> None:
    ledger.claim("t1", JOHN, ttl=60)
    with pytest.raises(InvalidInput):
        ledger.force_release("t1", "  ")
    result = ledger.force_release("t1", "session crashed", by=PI)
    assert result.released
    last = ledger.events("t1")[-1]
    assert last.kind == "force_released"
    assert last.details["reason"] == "session crashed"
    assert last.details["holder"] == "john:abc123"
    assert last.holder == "pi-orch:xyz456"


def test_force_release_of_an_unheld_task_changes_nothing(ledger: Ledger) -> None:
    # A forced release clears a lease; with none there it must not reopen a done task (that is
    # `reopen`'s job) nor append an event.
    ledger.claim("t1", JOHN, ttl=60)
    ledger.complete("t1", JOHN)
    ledger.add("t2")
    before = {t: len(ledger.events(t)) for t in ("t1", "t2")}
    for task_id, status in (("t1", "done"), ("t2", "open")):
        result = ledger.force_release(task_id, "cleanup", by=PI)
        assert not result.released
        assert ledger.status(task_id).status == status
        assert len(ledger.events(task_id)) == before[task_id]


def test_complete_by_holder_only_and_done_is_final(ledger: Ledger) -> None:
    ledger.claim("t1", JOHN, ttl=60)
    with pytest.raises(LeaseHeld):
        ledger.complete("t1", PI)
    with pytest.raises(StaleFence):
        ledger.complete("t1", JOHN, fence=9)
    task = ledger.complete("t1", JOHN, fence=1)
    assert task.status == "done" and task.lease_holder is None
    with pytest.raises(TaskDone):
        ledger.claim("t1", PI, ttl=60)
    with pytest.raises(NotHolder):
        ledger.complete("t1", JOHN)
    assert ledger.reopen("t1").status == "open"
    assert ledger.claim("t1", PI, ttl=60).fence == 2


def test_next_takes_priority_then_age_and_never_done_or_held(ledger: Ledger) -> None:
    ledger.add("low", priority=1)
    ledger.add("high", priority=5)
    ledger.add("high-later", priority=5)
    ledger.add("finished", priority=9)
    ledger.claim("finished", PI, ttl=60)
    ledger.complete("finished", PI)
    ledger.add("held", priority=8)
    ledger.claim("held", PI, ttl=60)
    got = [lease.task_id for lease in ledger.next(JOHN, ttl=60, count=10)]
    assert got == ["high", "high-later", "low"]
    assert ledger.next(JOHN, ttl=60) == []
    assert all(e.details.get("via") == "next" for e in ledger.events() if e.kind == "claimed"
               and e.actor == "john")


def test_status_check_who_and_lists(ledger: Ledger) -> None:
    assert ledger.status("ghost") is None
    assert ledger.check("ghost", JOHN).clear
    ledger.claim("a", JOHN, ttl=60)
    ledger.claim("b", JOHN, ttl=60)
    ledger.claim("c", PI, ttl=60)
    ledger.add("d")
    assert ledger.check("a", JOHN).clear
    blocked = ledger.check("a", PI)
    assert not blocked.clear and blocked.reason is not None
    assert blocked.reason.startswith("held by john:abc123 until ")
    assert not ledger.check("a", None).clear
    assert ledger.check("a", "john:abc123").clear  # "actor:session", as every other method takes
    assert not ledger.check("a", "pi-orch:xyz456").clear
    groups = dict(ledger.who())
    assert sorted(t.id for t in groups["john:abc123"]) == ["a", "b"]
    assert [t.id for t in groups["pi-orch:xyz456"]] == ["c"]
    assert [h for h, _ in ledger.who()][0] == "pi-orch:xyz456"  # most recently active first
    assert sorted(t.id for t in ledger.tasks(held=True)) == ["a", "b", "c"]
    assert [t.id for t in ledger.tasks(held=False)] == ["d"]
    assert [t.id for t in ledger.tasks(status="open")] == ["d"]
    assert sorted(lease.task_id for lease in ledger.leases_of(JOHN)) == ["a", "b"]


def test_add_updates_title_and_priority(ledger: Ledger) -> None:
    task, created = ledger.add("t1", title="first", priority=1)
    assert created and task.title == "first"
    task, created = ledger.add("t1", priority=4)
    assert not created and task.title == "first" and task.priority == 4
    assert kinds(ledger, "t1") == ["created", "updated"]


def test_events_limit_and_order(ledger: Ledger) -> None:
    for i in range(5):
        ledger.add(f"t{i}")
    events = ledger.events(limit=3)
    assert [e.task_id for e in events] == ["t2", "t3", "t4"]
    assert [e.id for e in events] == sorted(e.id for e in events)
    with pytest.raises(InvalidInput):
        ledger.events(limit=0)


def test_invalid_inputs(ledger: Ledger) -> None:
    for bad in ("", "a b", "x" * 201, "tab\there", "semi;colon"):
        with pytest.raises(InvalidInput):
            ledger.claim(bad, JOHN, ttl=60)
    for ttl in (0, -5, "abc", "8d", 0.5):
        with pytest.raises(InvalidInput):
            ledger.claim("t1", JOHN, ttl=ttl)
    with pytest.raises(InvalidInput):
        ledger.claim("t1", "no-colon", ttl=60)
    ledger.claim("x" * 200, JOHN, ttl="7d")


def test_events_table_is_append_only_at_the_database_level(ledger: Ledger) -> None:
    sql_only(ledger.client.url if hasattr(ledger, "client") else "")
    ledger.claim("t1", JOHN, ttl=60)
    before = [e.to_dict() for e in ledger.events()]
    conn = ledger.store.conn
    for statement in ("UPDATE events SET kind = 'forged'", "DELETE FROM events"):
        with pytest.raises(Exception, match="append-only"):
            conn.execute(statement)
        if ledger.store.dialect != "sqlite":
            conn.rollback()
    assert [e.to_dict() for e in ledger.events()] == before


def test_expiry_and_takeover_with_a_real_short_ttl(ledger: Ledger) -> None:
    first = ledger.claim("t1", JOHN, ttl=1)
    with pytest.raises(LeaseHeld):
        ledger.claim("t1", PI, ttl=60)
    deadline = time.monotonic() + 10
    while ledger.check("t1", PI).clear is False:
        assert time.monotonic() < deadline, "lease never expired"
        time.sleep(0.05)
    with pytest.raises(LeaseExpired):
        ledger.extend("t1", JOHN)
    taken = ledger.claim("t1", PI, ttl=60)
    assert taken.fence == first.fence + 1
    claimed = ledger.events("t1")[-1]
    assert claimed.details["previous_holder"] == "john:abc123"
    with pytest.raises(LeaseHeld):
        ledger.complete("t1", JOHN)


def test_sweep_lists_and_auto_releases_expired(ledger: Ledger) -> None:
    ledger.claim("short", JOHN, ttl=1)
    ledger.claim("long", JOHN, ttl=600)
    deadline = time.monotonic() + 10
    while not ledger.sweep():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [t.id for t in ledger.sweep()] == ["short"]
    released = ledger.sweep(auto_release=True)
    assert [t.id for t in released] == ["short"]
    assert ledger.sweep() == []
    task = ledger.show("short")
    assert task.lease_holder is None and task.status == "open"
    assert kinds(ledger, "short")[-1] == "expired"
    assert ledger.show("long").lease_holder == "john:abc123"


def test_hold_heartbeats_past_the_ttl_and_releases(ledger: Ledger) -> None:
    # a TTL of 25 heartbeat intervals: a loaded machine may delay beats, not all of them
    with ledger.hold("t1", JOHN, ttl=5, interval=0.2) as lease:
        first_until = lease.expires_at
        deadline = time.monotonic() + 30
        while ledger.now() < first_until + 0.5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert ledger.check("t1", PI).clear is False  # still held after its first TTL
        assert not lease.lost
    assert ledger.show("t1").lease_holder is None
    assert "extended" in kinds(ledger, "t1")


def test_hold_reports_loss_the_moment_an_extend_fails(ledger: Ledger) -> None:
    import threading

    lost = threading.Event()
    with ledger.hold("t1", JOHN, ttl=2, interval=0.1, on_lost=lambda lease: lost.set()) as lease:
        ledger.force_release("t1", "taking over", by=PI)
        assert lost.wait(30), "heartbeat never noticed the lost lease"
        assert lease.lost and "it has no lease" in (lease.lost_reason or ""), lease.lost_reason
        # the takeover after the loss was noticed (a takeover naming the new holder, with no
        # heartbeat able to land in between, is tests/test_run.py's lost-lease test)
        ledger.claim("t1", PI, ttl=60)
    assert ledger.show("t1").lease_holder == "pi-orch:xyz456"  # a lost lease is not released


def test_hold_completes_on_success_when_asked(ledger: Ledger) -> None:
    with ledger.hold("t1", JOHN, ttl=30, complete=True):
        pass
    assert ledger.show("t1").status == "done"
    with pytest.raises(RuntimeError):
        with ledger.hold("t2", JOHN, ttl=30, complete=True):
            raise RuntimeError("work failed")
    assert ledger.show("t2").status == "open"


def test_a_constraint_violation_is_a_refusal_not_a_store_outage(ledger: Ledger) -> None:
    sql_only(ledger.client.url if hasattr(ledger, "client") else "")
    from leasehold import Refused

    ledger.add("dup")
    with pytest.raises(Refused, match="refused"):
        with ledger.store._write() as tx:
            tx.cursor.execute("INSERT INTO tasks (id, created_at, updated_at) VALUES ('dup', 0, 0)")
    ledger.add("after")  # the store is still usable
    assert ledger.status("after") is not None


def test_complete_many_completes_only_what_the_holder_has(ledger: Ledger) -> None:
    for task_id in ("a", "b", "c"):
        ledger.claim(task_id, JOHN, ttl=60)
    ledger.claim("theirs", PI, ttl=60)
    ledger.add("free")
    done = ledger.complete_many(["a", "b", "theirs", "free", "ghost", "a"], JOHN)
    assert sorted(t.id for t in done) == ["a", "b"]
    assert all(t.status == "done" and t.lease_holder is None for t in done)
    assert ledger.show("c").lease_holder == "john:abc123"
    assert ledger.show("theirs").lease_holder == "pi-orch:xyz456"
    assert ledger.show("free").status == "open"
    completed = [e for e in ledger.events() if e.kind == "completed"]
    assert sorted(e.task_id for e in completed) == ["a", "b"]
    assert all(e.holder == "john:abc123" and e.details["holder"] == "john:abc123" for e in completed)
    assert ledger.complete_many([], JOHN) == []
    with pytest.raises(InvalidInput):
        ledger.complete_many(["ok", "bad id"], JOHN)


def test_done_with_a_fence_from_an_earlier_grant_is_refused(ledger: Ledger) -> None:
    """The same holder re-claims after its lease expired (a new grant, fence 2): completing
    with the first grant's fence is refused, under the same lock as the completion."""
    first = ledger.claim("t1", JOHN, ttl=1)
    deadline = time.monotonic() + 10
    while not ledger.check("t1", PI).clear:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = ledger.claim("t1", JOHN, ttl=60)
    assert second.fence == first.fence + 1
    with pytest.raises(StaleFence):
        ledger.complete("t1", JOHN, fence=first.fence)
    assert ledger.show("t1").status == "in_progress"
    assert ledger.complete("t1", JOHN, fence=second.fence).status == "done"


# -- operation ids: the same id with the same arguments replays, with others is refused ---------
def test_an_op_id_reused_with_other_arguments_is_invalid_input(ledger: Ledger) -> None:
    """An idempotency key names one call, kind and arguments: a retry with the same arguments
    replays the first outcome; the same id with another argument is a different call (exit 2),
    not a silent replay of the first."""
    first = ledger.claim("T", JOHN, ttl=60, op_id="args-claim")
    assert ledger.claim("T", JOHN, ttl=60, op_id="args-claim").expires_at == first.expires_at
    with pytest.raises(InvalidInput, match="already used for claim with other arguments"):
        ledger.claim("T", JOHN, ttl=120, op_id="args-claim")
    ledger.extend("T", JOHN, ttl=90, op_id="args-extend")
    with pytest.raises(InvalidInput, match="other arguments"):
        ledger.extend("T", JOHN, ttl=90, fence=1, op_id="args-extend")
    ledger.add("U", title="one", op_id="args-add")
    with pytest.raises(InvalidInput, match="other arguments"):
        ledger.add("U", title="two", op_id="args-add")
    assert ledger.show("U").title == "one"
    assert ledger.show("T").lease_until == pytest.approx(ledger.extend("T", JOHN, ttl=90,
                                                                       op_id="args-extend").expires_at)
    assert kinds(ledger, "T") == ["created", "claimed", "extended"]


def test_ticket_reservations_replay_their_op_id(ledger: Ledger) -> None:
    first = ledger.tickets.reserve("CMB", JOHN, 2, op_id="res-1")
    again = ledger.tickets.reserve("CMB", JOHN, 2, op_id="res-1")
    assert [r.ticket_id for r in again] == [r.ticket_id for r in first] == ["CMB-0001", "CMB-0002"]
    with pytest.raises(InvalidInput, match="other arguments"):
        ledger.tickets.reserve("CMB", JOHN, 3, op_id="res-1")
    with pytest.raises(InvalidInput, match="already used for reserve"):
        ledger.tickets.reserve("CMB", PI, 2, op_id="res-1")
    with pytest.raises(InvalidInput, match="operation id"):
        ledger.tickets.reserve("CMB", JOHN, op_id="bad id")
    op = ledger.lookup_op("res-1")
    assert op is not None and op.kind == "reserve" and op.holder == "john:abc123"
    assert ledger.tickets.reserve("CMB", PI)[0].ticket_id == "CMB-0003"  # nothing reserved twice
    assert sum(e.kind == "reserved" for e in ledger.events()) == 3


def test_file_reservations_replay_their_op_id(ledger: Ledger) -> None:
    from leasehold import paths

    first = paths.reserve(ledger, ["src/**"], JOHN, 60, op_id="path-1")
    again = paths.reserve(ledger, ["src/**"], JOHN, 60, op_id="path-1")
    assert (again[0].fence, again[0].expires_at) == (first[0].fence, first[0].expires_at)
    with pytest.raises(InvalidInput, match="other arguments"):
        paths.reserve(ledger, ["src/**"], JOHN, 60, shared=True, op_id="path-1")
    assert paths.release(ledger, ["src/**"], JOHN, op_id="path-2")[0][1] is not None
    # the retry reports the release that applied, though nothing is held any more
    replayed = paths.release(ledger, ["src/**"], JOHN, op_id="path-2")
    assert replayed[0][0] == "src/**" and replayed[0][1] is not None
    assert replayed[0][1].fence == first[0].fence
    with pytest.raises(InvalidInput, match="other arguments"):
        paths.release(ledger, ["docs/**"], JOHN, op_id="path-2")
    events = [e.kind for e in ledger.events() if e.kind.startswith("path_")]
    assert events == ["path_reserved", "path_released"]


def test_feed_writes_replay_their_op_id(ledger: Ledger) -> None:
    post = ledger.feed.post("actionable", "{{ITEM_ID}}: fix it", JOHN, reserve="CMB", op_id="post-1")
    assert ledger.feed.post("actionable", "{{ITEM_ID}}: fix it", JOHN, reserve="CMB",
                            op_id="post-1").id == post.id
    with pytest.raises(InvalidInput, match="other arguments"):
        ledger.feed.post("actionable", "{{ITEM_ID}}: other", JOHN, reserve="CMB", op_id="post-1")
    amended = ledger.feed.amend(post.id, JOHN, subject="better", op_id="amend-1")
    assert ledger.feed.amend(post.id, JOHN, subject="better", op_id="amend-1").id == amended.id
    with pytest.raises(InvalidInput, match="other arguments"):
        ledger.feed.amend(post.id, JOHN, subject="best", op_id="amend-1")
    mine = ledger.feed.post("actionable", "mine", JOHN, provisional="CMB-0050")
    theirs = ledger.feed.post("actionable", "theirs", PI, provisional="CMB-0050")
    confirmed = ledger.feed.confirm(theirs.id, PI, op_id="confirm-1")
    replayed = ledger.feed.confirm(theirs.id, PI, op_id="confirm-1")
    assert replayed.winner is not None and replayed.winner.id == mine.id
    assert replayed.confirmed is not None and confirmed.confirmed is not None
    assert replayed.confirmed.id == confirmed.confirmed.id
    assert replayed.renumbered == confirmed.renumbered and not replayed.already
    assert [p.id for p in ledger.feed.posts()][-2:] == [confirmed.confirmed.id,
                                                        confirmed.renumbered[0]["amendment"]]
    assert len(ledger.feed.posts()) == 6  # post, amendment, two provisional, confirmed, renumbering
    op = ledger.lookup_op("post-1")
    assert op is not None and op.kind == "feed_post"


def test_tasks_and_posts_page_with_a_cursor_in_list_order(ledger: Ledger) -> None:
    """``tasks_page`` / ``feed.posts_page`` walk ``iter_tasks`` / ``iter_posts`` a page at a
    time (keyset cursor: the last item's sort key), every filter, same order, nothing twice;
    ``iter_tasks`` / ``iter_posts`` (what ``list --all`` and ``feed list --all`` read) give
    the same over a remote ledger, whose pages are what crosses the wire."""
    for i in range(23):
        ledger.add(f"pg-{i:02d}", priority=i % 3)
    ledger.claim("pg-04", JOHN, ttl=300)
    ledger.complete("pg-04", JOHN)
    ledger.claim("pg-07", JOHN, ttl=300)
    for i in range(12):
        ledger.feed.post("info", f"note {i}", JOHN)
    for status, held in [(None, None), ("open", None), ("done", None), (None, True), (None, False),
                         ("open", False), ("in_progress", True)]:
        want = [t.id for t in ledger.tasks(status=status, held=held)]
        got: list[str] = []
        after = None
        while True:
            page = ledger.tasks_page(status=status, held=held, after=after, limit=4)
            got += [t.id for t in page]
            if len(page) < 4:
                break
            after = (page[-1].priority, page[-1].created_at, page[-1].id)
        assert got == want, (status, held)
        assert [t.id for t in ledger.iter_tasks(status=status, held=held)] == want
        assert [t.id for t in ledger.iter_tasks(status=status, held=held, limit=5)] == want[:5]
    want_posts = [p.id for p in ledger.feed.posts()]
    got_posts: list[int] = []
    cursor = None
    while True:
        posts = ledger.feed.posts_page(after=cursor, limit=5)
        got_posts += [p.id for p in posts]
        if len(posts) < 5:
            break
        cursor = (posts[-1].ts, posts[-1].id)
    assert got_posts == want_posts and len(want_posts) == 12
    assert [p.id for p in ledger.feed.iter_posts()] == want_posts
    with pytest.raises(InvalidInput):
        ledger.tasks_page(limit=0)
    with pytest.raises(InvalidInput):
        ledger.feed.posts_page(limit=100000)
