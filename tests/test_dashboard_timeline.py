"""The Task page's lease timeline, built from events (pure: no store, no browser), and the
dashboard's sign-in redirect rule."""

from __future__ import annotations

from leasehold.model import Event
from leasehold.server.dashboard import _safe_next
from leasehold.server.dashboard.timeline import Scale, bars, scale_for


def ev(i: int, ts: float, kind: str, who: str | None = None, fence: int | None = None, **details):  # type: ignore[no-untyped-def]
    actor, _, session = (who or "").partition(":")
    return Event(id=i, ts=ts, kind=kind, task_id="t", actor=actor or None, session=session or None,
                 fence=fence, details=details)


def test_bars_follow_grants_heartbeats_takeovers_and_endings() -> None:
    events = [
        ev(1, 100, "created", "a:1"),
        ev(2, 100, "claimed", "a:1", 1, expires_at=110.0, ttl=10.0),
        ev(3, 105, "extended", "a:1", 1, expires_at=115.0),
        ev(4, 106, "claimed", "a:1", 1, expires_at=120.0, renewed=True),
        ev(5, 130, "claimed", "b:2", 2, expires_at=190.0, previous_holder="a:1", previous_until=120.0),
        ev(6, 140, "force_released", "admin:dashboard", 2, holder="b:2", reason="stuck"),
        ev(7, 150, "claimed", "c:3", 3, expires_at=160.0),
        ev(8, 170, "expired", "c:3", 3, expired_at=160.0),
        ev(9, 180, "claimed", "d:4", 4, expires_at=200.0),
        ev(10, 185, "completed", "d:4", 4),
        ev(11, 190, "reopened", None),
        ev(12, 195, "claimed", "e:5", 5, expires_at=205.0),
    ]
    found = bars(events, now=210.0)
    assert [(b.holder, b.fence, b.end_kind) for b in found] == [
        ("a:1", 1, "taken_over"), ("b:2", 2, "force_released"), ("c:3", 3, "expired"),
        ("d:4", 4, "completed"), ("e:5", 5, "expired_unswept")]
    first, forced, swept, done, last = found
    assert (first.start, first.end, first.ended_at, first.end_by) == (100, 120.0, 130, "b:2")  # ended at expiry
    assert (first.extensions, first.renewals) == (1, 1)
    assert found[1].takeover_of == "a:1"
    assert (forced.end, forced.end_by, forced.reason) == (140, "admin:dashboard", "stuck")
    assert (swept.end, swept.ended_at) == (160.0, 170)
    assert done.end == 185 and last.end == 205.0
    held = bars(events[:5], now=150.0)[-1]
    assert (held.end_kind, held.end) == ("held", 190.0)


def test_scale_keeps_history_readable_beside_a_long_lease() -> None:
    events = [ev(1, 1000, "claimed", "a:1", 1, expires_at=1000 + 7 * 86400.0)]
    found = bars(events, now=1010.0)
    scale = scale_for(found, events, 1010.0)
    assert scale.x(1000) < 10 and scale.x(1010) < 90  # a week's TTL does not squash ten seconds
    assert scale.x(1000 + 7 * 86400.0) == 100.0  # the bar runs off the edge
    assert all(0 <= pct <= 100 for pct, _ in Scale(0, 10).ticks())


def test_sign_in_returns_only_to_local_paths() -> None:
    assert _safe_next("/tasks/x?y=1") == "/tasks/x?y=1"
    for bad in (None, "", "https://evil.example/", "//evil.example/", "/\\evil.example", "tasks"):
        assert _safe_next(bad) == "/"
