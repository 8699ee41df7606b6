"""A task's lease timeline, drawn from its events: one bar per lease (holder, fence) from its
grant to its end — a release, a completion, a force-release, a sweep's expiry, or a takeover by
another holder after it expired — for the dashboard's Task page.

Pure functions over :class:`~leasehold.model.Event` values: no store, no I/O. Times are UTC
seconds since the epoch.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from leasehold.model import Event

#: How a bar ended (``end_kind``) -> words for people (the picture must not rely on colour).
ENDINGS = {
    "released": "released",
    "completed": "completed (done)",
    "force_released": "force-released",
    "expired": "expired (swept)",
    "taken_over": "expired, then taken over",
    "held": "held now",
    "expired_unswept": "expired (not swept yet)",
}


class Bar:
    """One lease: ``holder`` (``actor:session``), ``fence``, ``start`` (the grant), ``end``
    (when it ended, or its expiry while it is still recorded), ``expires_at`` (the last expiry
    the log gave it), ``end_kind`` (a key of :data:`ENDINGS`), ``ended_at`` (the event that
    recorded the end, if any), ``end_by`` (who force-released it or took it over),
    ``reason`` (a force-release's), ``takeover_of`` (the holder whose expired lease this grant
    took over), ``extensions`` (heartbeats) and ``renewals`` (re-claims by the same holder)."""

    __slots__ = ("holder", "fence", "start", "end", "expires_at", "end_kind", "ended_at", "end_by",
                 "reason", "takeover_of", "extensions", "renewals", "after_expiry")

    def __init__(self, holder: str, fence: int | None, start: float, expires_at: float | None) -> None:
        self.holder = holder
        self.fence = fence
        self.start = start
        self.expires_at = expires_at
        self.end: float | None = None
        self.end_kind: str | None = None
        self.ended_at: float | None = None
        self.end_by: str | None = None
        self.reason: str | None = None
        self.takeover_of: str | None = None
        self.extensions = 0
        self.renewals = 0
        self.after_expiry = False

    @property
    def ending(self) -> str:
        return ENDINGS.get(self.end_kind or "", self.end_kind or "")

    def close(self, kind: str, at: float, by: str | None = None) -> None:
        self.end_kind = kind
        self.ended_at = at
        self.end_by = by
        if kind in ("taken_over", "expired") and self.expires_at is not None:
            self.end = min(at, self.expires_at)  # it ended at its expiry; the event came later
        else:
            self.end = at


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def bars(events: Iterable[Event], now: float) -> list[Bar]:
    """The leases ``events`` (one task's, oldest first) record, oldest first. A lease still
    recorded at the end is ``held`` (until its expiry) or ``expired_unswept`` at ``now``."""
    out: list[Bar] = []
    current: Bar | None = None
    for event in events:
        details = event.details or {}
        kind = event.kind
        if kind == "claimed":
            expires = _number(details.get("expires_at"))
            if details.get("renewed") and current is not None and current.end_kind is None:
                current.expires_at = expires
                current.renewals += 1
                continue
            if current is not None and current.end_kind is None:
                current.close("taken_over", event.ts, event.holder)
            current = Bar(event.holder or "?", event.fence, event.ts, expires)
            current.takeover_of = details.get("previous_holder")
            out.append(current)
        elif current is None or current.end_kind is not None:
            continue
        elif kind == "extended":
            current.expires_at = _number(details.get("expires_at")) or current.expires_at
            current.extensions += 1
        elif kind in ("released", "completed"):
            current.close(kind, event.ts, event.holder)
        elif kind == "force_released":
            current.close(kind, event.ts, event.holder)
            current.reason = details.get("reason")
            current.after_expiry = bool(details.get("after_expiry"))
        elif kind == "expired":
            at = _number(details.get("expired_at")) or event.ts
            current.expires_at = current.expires_at or at
            current.close("expired", event.ts)
    if current is not None and current.end_kind is None:
        if current.expires_at is not None and current.expires_at > now:
            current.end_kind, current.end = "held", current.expires_at
        else:
            current.end_kind, current.end = "expired_unswept", current.expires_at or now
    return out


class Scale:
    """Maps times in ``[start, end]`` (UTC seconds) to percentages of the drawing's width."""

    def __init__(self, start: float, end: float) -> None:
        if end <= start:
            end = start + 1.0
        pad = (end - start) * 0.03
        self.start = start - pad
        self.end = end + pad

    def x(self, ts: float) -> float:
        """``ts`` as a percentage of the width, rounded to 0.01 (clamped to 0-100: a held
        lease's expiry may lie past the window's end)."""
        return min(100.0, max(0.0, round(100.0 * (ts - self.start) / (self.end - self.start), 2)))

    def width(self, start: float, end: float) -> float:
        return max(round(self.x(end) - self.x(start), 2), 0.3)

    def ticks(self, count: int = 6) -> list[tuple[float, str]]:
        """``[(percentage, label)]``: ``count`` evenly spaced axis marks, labelled with the UTC
        time of day (tenths of a second when the window is short, the date when it is long)."""
        import time

        step = (self.end - self.start) / count
        out = []
        for i in range(count):
            ts = self.start + step * (i + 0.5)
            if step < 10:
                label = time.strftime("%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 10)}"
            elif step < 12 * 3600:
                label = time.strftime("%H:%M:%S", time.gmtime(ts))
            else:
                label = time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))
            out.append((self.x(ts), label))
        return out


def scale_for(found: list[Bar], events: list[Event], now: float) -> Scale:
    """The time window that shows every bar and event, and ``now`` while a lease is held."""
    times = [e.ts for e in events]
    ahead = 0.0
    for bar in found:
        times.append(bar.start)
        if bar.end_kind == "held":
            times.append(now)
            ahead = (bar.end or now) - now
        elif bar.end is not None:
            times.append(bar.end)
        if bar.end_kind == "expired_unswept":
            times.append(now)
    if not times:
        return Scale(now - 60, now)
    start, end = min(times), max(times)
    # A held lease's time left shows up to a fifth of the picture, so that a long TTL does not
    # squash the history into a corner; the bar runs off the edge when it has more left.
    end += min(ahead, max((end - start) * 0.25, 1.0))
    return Scale(start, end)
