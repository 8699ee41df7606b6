"""Ticket namespaces and reservations: the ticket-reservation doctrine's Protocol A.

Several seats (cron jobs, agent sessions, people) file tickets into shared namespaces such as
``CMB-NNNN``; the ledger owns the counter, so no seat derives the next number from its own view
of the feed. A reservation takes the next number in one write transaction; the store's unique
constraints on ``(prefix, period, seq)`` and ``ticket_id`` guarantee a number is never handed out
twice, and reservations are never deleted, so an abandoned number is never reused.

Formats are Python format strings over ``prefix``, ``seq`` and ``date`` (a UTC
:class:`datetime.datetime`): the default ``{prefix}-{seq:04d}`` gives ``CMB-0036``; a format that
uses ``date`` (``FLT-{date:%Y%m%d}{seq:02d}`` -> ``FLT-2026112101``) restarts ``seq`` at 1 each UTC
day (the reservation's *period* is that day, ``YYYY-MM-DD``).
"""

from __future__ import annotations

from datetime import UTC

from leasehold.errors import Conflict, InvalidInput, LaneRefused, NotFound
from leasehold.model import Holder, format_uses_date, validate_name, validate_task_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.model import Namespace, Post, Reservation
    from leasehold.store.sql_tickets import TicketTx
    from leasehold.store.sqlbase import SQLStore

#: The format of a namespace nobody defined: ``CMB-0036``.
DEFAULT_FORMAT = "{prefix}-{seq:04d}"
#: Most numbers one ``reserve`` call hands out.
MAX_COUNT = 1000
#: Numbers skipped because their id is already in use (a task, a post, another namespace's
#: ticket) before a reservation gives up.
MAX_SKIP = 10_000
PREFIX_MAX = 32
_FIELDS = ("prefix", "seq", "date")
_PREFIX_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if valid: 1-32 ASCII letters, digits or ``_``, starting with a letter.

    Raises :class:`InvalidInput`.
    """
    if not isinstance(prefix, str) or not prefix:
        raise InvalidInput("namespace prefix must not be empty")
    if len(prefix) > PREFIX_MAX or not prefix[0].isascii() or not prefix[0].isalpha() \
            or set(prefix) - _PREFIX_CHARS:
        raise InvalidInput(
            f"namespace prefix {prefix!r} must be 1-{PREFIX_MAX} letters, digits or '_', "
            "starting with a letter"
        )
    return prefix


def _utc(ts: float) -> Any:
    from datetime import datetime

    return datetime.fromtimestamp(ts, tz=UTC)


def period_of(fmt: str, ts: float) -> str:
    """The numbering period of a format at ``ts`` (UTC seconds): the UTC day ``YYYY-MM-DD`` when
    the format uses ``date``, else ``""`` (one period forever)."""
    if not format_uses_date(fmt):
        return ""
    import time

    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def render(fmt: str, prefix: str, seq: int, ts: float) -> str:
    """The ticket id ``fmt`` gives for ``seq`` at ``ts`` (UTC seconds). Raises
    :class:`InvalidInput` if the format cannot render it or the result is not a valid task id."""
    try:
        text = fmt.format(prefix=prefix, seq=seq, date=_utc(ts))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise InvalidInput(f"format {fmt!r} cannot render seq {seq}: {exc}") from None
    try:
        return validate_task_id(text)
    except InvalidInput as exc:
        raise InvalidInput(f"format {fmt!r} renders {text!r}, not a valid ticket id: {exc}") from None


#: The widest field (and precision) a ticket format may ask for: a width is memory and output.
MAX_FIELD_WIDTH = 32
#: Sequence numbers a new format is rendered with, each of which must give a valid, new id.
_SAMPLE_SEQS = (2, 9, 10, 99, 100, 999, 1000, 9999, 10_000, 100_000, 10**6, 10**9, 10**12)
#: A standard format spec (``[[fill]align][sign][#][0][width][grouping][.precision][type]``).
_SPEC = (r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?#?0?(?P<width>\d+)?"
         r"(?P<grouping>[,_])?(?:\.(?P<precision>\d+))?(?P<type>[a-zA-Z%])?")
#: A ``{date:...}`` spec: strftime directives of digits and names, and id characters.
_DATE_SPEC = r"(?:%[YmdjyHMSGVuUWaAbB]|[A-Za-z0-9._:/#-])*"


def _check_spec(fmt: str, field: str, spec: str) -> None:
    """Refuse a field spec that could render something huge or not an id, before anything
    is rendered with it. Raises :class:`InvalidInput`."""
    import re

    if field == "date":
        if not re.fullmatch(_DATE_SPEC, spec):
            raise InvalidInput(f"format {fmt!r}: {{date:{spec}}} may hold only the strftime codes "
                               "%Y %m %d %j %y %H %M %S %G %V %u %U %W %a %A %b %B and id characters")
        return
    match = re.fullmatch(_SPEC, spec)
    if match is None:
        raise InvalidInput(f"format {fmt!r}: {{{field}:{spec}}} is not a valid format spec")
    for part in ("width", "precision"):
        value = match.group(part)
        if value is not None and (len(value) > 3 or int(value) > MAX_FIELD_WIDTH):
            raise InvalidInput(f"format {fmt!r}: the {part} of {{{field}}} is {value}; "
                               f"at most {MAX_FIELD_WIDTH}")
    if match.group("grouping"):
        raise InvalidInput(f"format {fmt!r}: {{{field}:{spec}}} groups digits with "
                           f"{match.group('grouping')!r}, which a ticket id cannot hold")


def validate_format(fmt: str, prefix: str = "CMB") -> str:
    """Return ``fmt`` if it is a usable ticket format, else raise :class:`InvalidInput`.

    Rules: only the fields ``prefix``, ``seq`` and ``date`` (no attribute or index access, no
    conversions, no nested fields); widths and precisions up to :data:`MAX_FIELD_WIDTH`, no
    digit grouping, ``date`` only with digit/name strftime codes; ``seq`` must appear; every
    sequence number must render a valid task id (checked over a sample up to 10**12), different
    numbers differently, and a format that uses ``date`` must render different UTC days differently
    (else restarting ``seq`` each day would repeat ids).
    """
    import string

    if not isinstance(fmt, str) or not fmt.strip():
        raise InvalidInput("format must not be empty")
    try:
        parts = list(string.Formatter().parse(fmt))
    except ValueError as exc:
        raise InvalidInput(f"format {fmt!r} is not a valid format string: {exc}") from None
    fields = set()
    for _literal, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in _FIELDS:
            raise InvalidInput(
                f"format {fmt!r} uses {{{field}}}; only {{prefix}}, {{seq}} and {{date}} are allowed"
            )
        if conversion or (spec and "{" in spec):
            raise InvalidInput(f"format {fmt!r}: conversions and nested fields are not allowed")
        _check_spec(fmt, field, spec or "")
        fields.add(field)
    if "seq" not in fields:
        raise InvalidInput(f"format {fmt!r} must contain {{seq}} (e.g. {DEFAULT_FORMAT})")
    day = 1_779_321_600.0  # 2026-05-21T00:00:00Z
    first = render(fmt, prefix, 1, day)
    rendered = {first}
    for seq in _SAMPLE_SEQS:  # every number must give a valid, distinct id (`{seq:,}` fails at 1000)
        text = render(fmt, prefix, seq, day)
        if text in rendered:
            raise InvalidInput(f"format {fmt!r} renders seq {seq} as {text!r}, like a smaller seq")
        rendered.add(text)
    if "date" in fields and render(fmt, prefix, 1, day + 86_400) == first:
        raise InvalidInput(
            f"format {fmt!r} uses {{date}} but not the day: seq restarts each UTC day, so "
            "include the day (e.g. {date:%Y%m%d})"
        )
    return fmt


def reserve_in(w: TicketTx, prefix: str, count: int, holder: Holder, **details: Any) -> list[Reservation]:
    """Reserve ``count`` consecutive free numbers in ``prefix`` inside the write transaction
    ``w`` (used by :meth:`Tickets.reserve` and by the feed, which reserves and posts atomically).

    An unknown prefix is created with :data:`DEFAULT_FORMAT`. The next number is the highest ever
    reserved in the period plus one; ids already in use elsewhere (a task, a post's item, another
    namespace's ticket) are skipped and recorded in the event. Raises :class:`LaneRefused` for a
    lane-private namespace of another actor, :class:`Conflict` when no free id is found.
    """
    namespace, _ = w.ensure_namespace(prefix, DEFAULT_FORMAT, holder.actor, holder.session)
    if namespace.lane_actor is not None and namespace.lane_actor != holder.actor:
        raise LaneRefused(
            f"namespace {prefix} is lane-private to {namespace.lane_actor}; "
            f"{holder.actor} may not reserve in it"
        )
    period = period_of(namespace.format, w.now)
    seq = w.last_seq(prefix, period)
    out = []
    for _ in range(count):
        skipped: list[str] = []
        while True:
            seq += 1
            ticket = render(namespace.format, prefix, seq, w.now)
            if not w.ticket_in_use(ticket):
                break
            skipped.append(ticket)
            if len(skipped) > MAX_SKIP:
                raise Conflict(f"no free number in namespace {prefix}: {len(skipped)} ids in a row are in use")
        extra = dict(details)
        if skipped:
            extra["skipped"] = skipped
        out.append(w.insert_reservation(prefix, period, seq, ticket, holder.actor, holder.session, **extra))
    return out


def _fields(obj: Any) -> dict[str, Any]:
    """A model object (Reservation, Post) as its stored fields (recorded with an operation)."""
    return {name: getattr(obj, name) for name in obj.__slots__}


def files_under(posts: list[Post], ticket_id: str) -> bool:
    """True when an actionable thread among ``posts`` files under ``ticket_id`` now: its
    original names it and no renumbering moved it away, or a renumbering amendment (the last of
    its thread) moved it there (the rule of the feed's reducer, ``feed.threads``)."""
    by_id = {p.id: p for p in posts}
    live: dict[int, str | None] = {}
    for post in sorted(posts, key=lambda p: p.id):
        if post.kind == "actionable":
            live[post.id] = post.item
        elif post.kind == "amendment" and post.details.get("renumbered_from") is not None:
            root, seen = post, set()
            while root.kind in ("amendment", "confirmed") and root.refs in by_id and root.id not in seen:
                seen.add(root.id)
                root = by_id[root.refs]
            if root.id in live:
                live[root.id] = post.item
    return ticket_id in live.values()


class Tickets:
    """Namespaces and reservations over one store (``ledger.tickets``).

    Holders are :class:`~leasehold.model.Holder` or ``"actor:session"`` strings. Every method may
    raise :class:`~leasehold.errors.StoreBusy` / :class:`~leasehold.errors.StoreUnavailable`.
    """

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    def add_namespace(self, prefix: str, fmt: str | None = None, lane: str | None = None,
                      by: Holder | str | None = None) -> tuple[Namespace, bool]:
        """Define namespace ``prefix`` with format ``fmt`` (default :data:`DEFAULT_FORMAT`);
        ``lane`` (an actor name) makes it lane-private: only that actor may reserve in it.

        Adding an identical definition again is a no-op (``created`` False). Raises
        :class:`InvalidInput` for a bad prefix or format, :class:`Conflict` when the prefix
        exists with another format or lane (a definition never changes: numbers were handed out
        under it).
        """
        validate_prefix(prefix)
        fmt = validate_format(DEFAULT_FORMAT if fmt is None else fmt, prefix)
        if lane is not None:
            validate_name(lane, "lane actor")
        who = Holder.parse(by) if by is not None else None
        namespace, created = self.store.add_namespace(prefix, fmt, lane, who.actor if who else None,
                                                      who.session if who else None)
        if not created and (namespace.format != fmt or namespace.lane_actor != lane):
            lane_text = f", lane {namespace.lane_actor}" if namespace.lane_actor else ""
            raise Conflict(
                f"namespace {prefix} already exists with format {namespace.format!r}{lane_text}; "
                "a namespace's definition never changes"
            )
        return namespace, created

    def namespaces(self) -> list[tuple[Namespace, dict[str, Any]]]:
        """Every namespace with ``{"reserved", "abandoned", "last_ticket", "next_ticket"}``, by
        prefix. ``next_ticket`` is the id the next reservation takes now (in the current UTC day
        for a dated format), unless that id is in use elsewhere and gets skipped."""
        found = self.store.list_namespaces()
        if not found:
            return found
        now = self.store.now()
        periods = {ns.prefix: period_of(ns.format, now) for ns, _ in found}
        last = self.store.last_seqs(periods)
        for ns, counts in found:
            try:
                counts["next_ticket"] = render(ns.format, ns.prefix, last.get(ns.prefix, 0) + 1, now)
            except InvalidInput:  # the format cannot render it: no next number to show
                counts["next_ticket"] = None
        return found

    def namespace(self, prefix: str) -> Namespace:
        """Raises :class:`NotFound`."""
        validate_prefix(prefix)
        found = self.store.get_namespace(prefix)
        if found is None:
            raise NotFound(f"namespace {prefix} not found")
        return found

    def reserve(self, prefix: str, holder: Holder | str, count: int = 1, *,
                op_id: str | None = None) -> list[Reservation]:
        """Reserve the next ``count`` numbers in ``prefix`` for ``holder``, atomically (an unknown
        prefix gets the default format). Returns the reservations in order.

        ``op_id``: the operation id (idempotency key, 1-200 of ``A-Za-z0-9._:/#-``; a fresh one
        when None) recorded with the reservations: a retry with the same id and arguments
        returns the numbers the first call reserved instead of reserving more
        (:mod:`leasehold.ops`).

        Raises :class:`InvalidInput` (bad prefix, count outside 1-1000, a malformed op id or one
        used for a different call), :class:`LaneRefused` (a lane-private namespace of another
        actor: exit 1).
        """
        from leasehold.model import Reservation
        from leasehold.ops import run_op

        validate_prefix(prefix)
        who = Holder.parse(holder)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            raise InvalidInput(f"count must be 1-{MAX_COUNT}, got {count!r}")

        def attempt(op: str) -> list[Reservation]:
            with self.store.ticket_tx(op) as w:
                out = reserve_in(w, prefix, count, who)
                w.record_op("reserve", None, who.actor, who.session,
                            {"reservations": [_fields(r) for r in out]})
                return out

        out, record, _ = run_op(self.store, op_id, "reserve", {"prefix": prefix, "count": count},
                                attempt, holder=(who.actor, who.session))
        if record is not None:
            return [Reservation(**r) for r in record["result"]["reservations"]]
        return out  # type: ignore[no-any-return]

    def reservation(self, ticket_id: str) -> Reservation:
        """The reservation of ``ticket_id``. Raises :class:`NotFound`."""
        validate_task_id(ticket_id)
        found = self.store.get_reservation(ticket_id)
        if found is None:
            raise NotFound(f"reservation {ticket_id} not found")
        return found

    def abandon(self, ticket_id: str, by: Holder | str, reason: str | None = None,
                force: bool = False) -> tuple[Reservation, bool]:
        """Give up a reservation: it is marked ``abandoned`` and its number is never handed out
        again. Only the reserving actor may, unless ``force``. Returns ``(reservation,
        changed)``; abandoning twice changes nothing.

        Raises :class:`NotFound`; :class:`Conflict` when another actor holds it (without
        ``force``) or an actionable post already files a ticket under it.
        """
        validate_task_id(ticket_id)
        who = Holder.parse(by)
        res, outcome = self.store.abandon_reservation(ticket_id, who.actor, who.session, reason,
                                                      force, lambda posts: files_under(posts, ticket_id))
        if res is None:
            raise NotFound(f"reservation {ticket_id} not found")
        if outcome == "not_holder":
            raise Conflict(f"reservation {ticket_id} is held by {res.holder}; pass --force to abandon it anyway")
        if outcome == "in_use":
            raise Conflict(f"{ticket_id} is in use by an actionable post; amend the post instead")
        return res, outcome == "abandoned"
