"""Value objects and the input rules they enforce.

All times are UTC, carried as float seconds since the Unix epoch and printed as ISO 8601 with a
``Z``. The module imports nothing beyond the standard library's cheapest modules: it sits on the
hook and CLI fast paths.
"""

from __future__ import annotations

import time as _time

from leasehold.errors import InvalidInput

TYPE_CHECKING = False  # typing costs ~5 ms to import; this module is on the hook fast path

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

#: Characters a task id may contain besides ASCII letters and digits.
TASK_ID_PUNCTUATION = frozenset("._:/#-")
TASK_ID_MAX = 200
#: TTL bounds, in seconds: 1 s to 7 days.
TTL_MIN = 1.0
TTL_MAX = 7 * 24 * 3600.0
#: The default lease TTL, in seconds (10 minutes), unless ``default_ttl`` in leasehold.toml says otherwise.
DEFAULT_TTL = 600.0
STATUSES = ("open", "in_progress", "done")
#: The longest duration any setting or option takes, in seconds (10 years): past it, times
#: overflow what the stores and timers hold.
DURATION_MAX = 10 * 365 * 86400.0

_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_CHARS = _ASCII_ALNUM | TASK_ID_PUNCTUATION
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def validate_task_id(task_id: str) -> str:
    """Return ``task_id`` if valid: 1-200 characters of ASCII letters, digits and ``._:/#-``.

    Raises :class:`InvalidInput` otherwise.
    """
    if not isinstance(task_id, str) or not task_id:
        raise InvalidInput("task id must not be empty")
    if len(task_id) > TASK_ID_MAX:
        raise InvalidInput(f"task id is {len(task_id)} characters long; the limit is {TASK_ID_MAX}")
    bad = set(task_id) - _ID_CHARS
    if bad:
        shown = "".join(sorted(bad))
        raise InvalidInput(
            f"task id {task_id!r} has characters outside letters, digits and '._:/#-': {shown!r}"
        )
    return task_id


def validate_op_id(op_id: str) -> str:
    """Return ``op_id`` if valid: an operation id (idempotency key) is 1-200 characters of ASCII
    letters, digits and ``._:/#-``, like a task id. Raises :class:`InvalidInput` otherwise."""
    if not isinstance(op_id, str) or not op_id or len(op_id) > TASK_ID_MAX or set(op_id) - _ID_CHARS:
        raise InvalidInput(
            f"operation id {op_id!r} must be 1-{TASK_ID_MAX} letters, digits and '._:/#-'")
    return op_id


def new_op_id() -> str:
    """A fresh operation id: 32 random hex digits (128 bits)."""
    import os

    return os.urandom(16).hex()


def is_task_id(token: str) -> bool:
    """True when ``token`` would pass :func:`validate_task_id`."""
    return 0 < len(token) <= TASK_ID_MAX and not (set(token) - _ID_CHARS)


def validate_name(value: str, what: str, limit: int = 200) -> str:
    """Validate an actor or session name: 1-``limit`` printable characters, no ``:``.

    The actor may contain spaces (``git config user.name``); the session may not.
    Raises :class:`InvalidInput`.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > limit:
        raise InvalidInput(f"{what} is {len(value)} characters long; the limit is {limit}")
    if ":" in value:
        raise InvalidInput(f"{what} {value!r} must not contain ':' (it separates actor:session)")
    if not value.isprintable() or (what == "session" and any(c.isspace() for c in value)):
        raise InvalidInput(f"{what} {value!r} has whitespace or control characters")
    return value


def parse_duration(text: str | float | int, what: str = "TTL") -> float:
    """Parse a duration into seconds: ``90s``, ``10m``, ``2h``, ``1d``, or a bare number of seconds.

    Raises :class:`InvalidInput` for anything else, for zero, negative or non-finite values and
    for more than :data:`DURATION_MAX`.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        try:
            seconds = float(text)
        except OverflowError:
            raise InvalidInput(f"{what} {text!r} is longer than 10 years") from None
    else:
        raw = str(text).strip().lower()
        unit = _UNITS.get(raw[-1:]) if raw else None
        number = raw[:-1] if unit else raw
        try:
            seconds = float(number) * (unit or 1.0)
        except ValueError:
            raise InvalidInput(
                f"{what} {text!r} is not a duration; use e.g. 90s, 10m, 2h or 1d"
            ) from None
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise InvalidInput(f"{what} must be positive, got {text!r}")
    if seconds > DURATION_MAX:
        raise InvalidInput(f"{what} {text!r} is longer than 10 years")
    return seconds


#: How every TTL error ends: the one statement of the limits.
TTL_LIMITS = "a TTL is 1s to 7d, e.g. 90s, 10m, 2h or 1d"


def validate_ttl(seconds: float, what: str = "TTL") -> float:
    """Return ``seconds`` if it is a valid lease TTL (1 s to 7 days), else raise
    :class:`InvalidInput` (``"<what> 8d is out of range; a TTL is 1s to 7d, ..."``)."""
    if not (isinstance(seconds, (int, float)) and TTL_MIN <= seconds <= TTL_MAX):
        try:
            shown = format_duration(float(seconds))
        except (TypeError, ValueError, OverflowError):
            shown = repr(seconds)
        raise InvalidInput(f"{what} {shown} is out of range; {TTL_LIMITS}")
    return float(seconds)


def parse_ttl(value: str | float | int, what: str = "TTL") -> float:
    """Parse and check a lease TTL: a duration (``90s``, ``10m``, ``2h``, ``1d`` or seconds)
    from 1 s to 7 days. Every failure raises :class:`InvalidInput` with one message shape,
    ``"<what> <value> is not a duration|is out of range; a TTL is 1s to 7d, e.g. ..."``."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidInput(f"{what} {value!r} is not a duration; {TTL_LIMITS}")
    try:
        seconds = parse_duration(value, what)
    except InvalidInput as exc:
        if "not a duration" in str(exc):
            raise InvalidInput(f"{what} {value!r} is not a duration; {TTL_LIMITS}") from None
        raise InvalidInput(f"{what} {value!r} is out of range; {TTL_LIMITS}") from None
    if not TTL_MIN <= seconds <= TTL_MAX:
        raise InvalidInput(f"{what} {value!r} is out of range; {TTL_LIMITS}")
    return seconds


def format_duration(seconds: float) -> str:
    """``90`` -> ``90s``; ``600`` -> ``10m``; ``7200`` -> ``2h``; fractions keep seconds."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def format_ts(ts: float | None) -> str:
    """UTC seconds since the epoch -> ``2026-05-08T12:30:00Z`` (to the second, for people)."""
    if ts is None:
        return "-"
    return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(ts))


def format_ts_precise(ts: float | None) -> str | None:
    """UTC seconds -> ``2026-05-08T12:30:00.123456Z`` (full precision, for JSON)."""
    if ts is None:
        return None
    whole = int(ts // 1)
    micros = int(round((ts - whole) * 1_000_000))
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(whole)) + f".{micros:06d}Z"


def parse_ts(text: str) -> float:
    """Parse an ISO 8601 timestamp (``Z`` or an offset; naive means UTC) into UTC seconds.

    Raises :class:`InvalidInput`.
    """
    from datetime import UTC, datetime

    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{text!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class Holder:
    """Who holds a lease: an ``actor`` (a person, a bot, an agent name) and a ``session``.

    Its canonical display is ``actor:session`` (e.g. ``john:abc123``), used in every output,
    event and error.
    """

    __slots__ = ("actor", "session")
    actor: str
    session: str

    def __init__(self, actor: str, session: str) -> None:
        self.actor = validate_name(actor, "actor")
        self.session = validate_name(session, "session")

    @classmethod
    def parse(cls, text: str | Holder) -> Holder:
        """``"john:abc123"`` -> ``Holder("john", "abc123")``. Raises :class:`InvalidInput`."""
        if isinstance(text, Holder):
            return text
        actor, sep, session = str(text).rpartition(":")
        if not sep:
            raise InvalidInput(f"holder {text!r} must be actor:session")
        return cls(actor, session)

    def __str__(self) -> str:
        return f"{self.actor}:{self.session}"

    def __repr__(self) -> str:
        return f"Holder({self.actor!r}, {self.session!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Holder)
            and self.actor == other.actor
            and self.session == other.session
        )

    def __hash__(self) -> int:
        return hash((self.actor, self.session))


def holder_text(actor: str | None, session: str | None) -> str | None:
    """The canonical ``actor:session`` display, or None when there is no holder."""
    if actor is None:
        return None
    return f"{actor}:{session}"


class Task:
    """A task row and its current lease, as the store read it.

    ``lease_until`` / ``lease_acquired_at`` / ``created_at`` / ``updated_at`` are UTC seconds
    since the epoch. The lease fields stay set after expiry until a sweep or a new grant clears
    them: use :meth:`lease_valid` to ask whether the lease holds at a given time.
    """

    __slots__ = (
        "id", "title", "status", "priority", "lease_actor", "lease_session",
        "lease_acquired_at", "lease_until", "lease_ttl", "fence", "created_at", "updated_at",
    )
    id: str
    title: str | None
    status: str
    priority: int
    lease_actor: str | None
    lease_session: str | None
    lease_acquired_at: float | None
    lease_until: float | None
    lease_ttl: float | None
    fence: int
    created_at: float
    updated_at: float

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))
        if self.fence is None:
            self.fence = 0
        if self.priority is None:
            self.priority = 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Task:
        task = cls.__new__(cls)
        for name in cls.__slots__:
            setattr(task, name, row[name])
        return task

    @property
    def lease_holder(self) -> str | None:
        return holder_text(self.lease_actor, self.lease_session)

    def lease_valid(self, now: float) -> bool:
        """True while a lease is recorded and ``now < lease_until`` (the lease rule)."""
        return self.lease_until is not None and now < self.lease_until

    def held_by(self, holder: Holder, now: float) -> bool:
        return (
            self.lease_valid(now)
            and self.lease_actor == holder.actor
            and self.lease_session == holder.session
        )

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """The documented JSON shape of a task and its lease (see the README)."""
        now = _time.time() if now is None else now
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "priority": self.priority,
            "lease_holder": self.lease_holder,
            "lease_actor": self.lease_actor,
            "lease_session": self.lease_session,
            "lease_until": format_ts_precise(self.lease_until),
            "lease_valid": self.lease_valid(now),
            "lease_acquired_at": format_ts_precise(self.lease_acquired_at),
            "ttl_seconds": self.lease_ttl,
            "fence": self.fence,
            "created_at": format_ts_precise(self.created_at),
            "updated_at": format_ts_precise(self.updated_at),
        }

    def __repr__(self) -> str:
        return f"Task({self.id!r}, status={self.status!r}, holder={self.lease_holder!r}, fence={self.fence})"


class Lease:
    """A granted lease: ``task_id``, ``holder``, ``acquired_at`` and ``expires_at`` (UTC seconds),
    ``ttl_seconds`` and the fencing token ``fence``.

    ``fence`` increases by one on every new grant of the task and stays the same on extend or a
    re-claim by the same holder; pass it to the resource you protect so that it can reject writes
    from a holder whose lease was since taken over (fencing tokens: Kleppmann 2016).

    ``lost`` is set by :meth:`leasehold.Ledger.hold` the moment a heartbeat fails.
    """

    __slots__ = ("task", "holder", "lost", "lost_reason")
    task: Task
    holder: Holder
    lost: bool
    lost_reason: str | None

    def __init__(self, task: Task) -> None:
        self.task = task
        holder = Holder.__new__(Holder)  # the store's values were validated when written
        holder.actor, holder.session = task.lease_actor or "", task.lease_session or ""
        self.holder = holder
        self.lost = False
        self.lost_reason = None

    @property
    def task_id(self) -> str:
        return self.task.id

    @property
    def fence(self) -> int:
        return self.task.fence

    @property
    def acquired_at(self) -> float:
        return self.task.lease_acquired_at or 0.0

    @property
    def expires_at(self) -> float:
        return self.task.lease_until or 0.0

    @property
    def ttl_seconds(self) -> float:
        return self.task.lease_ttl or 0.0

    def __repr__(self) -> str:
        return (
            f"Lease({self.task_id!r}, holder={str(self.holder)!r}, fence={self.fence}, "
            f"until={format_ts(self.expires_at)})"
        )


class PathReservation:
    """A file reservation: a lease on a gitignore-style path ``pattern`` (relative to the
    repository root) held by ``actor:session``, ``exclusive`` or shared.

    ``acquired_at`` / ``expires_at`` / ``updated_at`` are UTC seconds since the epoch, ``ttl`` is
    in seconds; the reservation is valid while ``now < expires_at``. ``fence`` is its fencing
    token: it increases on every new grant and stays the same on renewal and heartbeat.
    """

    __slots__ = ("pattern", "actor", "session", "exclusive", "reason", "acquired_at",
                 "expires_at", "ttl", "fence", "updated_at")
    pattern: str
    actor: str
    session: str
    exclusive: bool
    reason: str | None
    acquired_at: float
    expires_at: float
    ttl: float
    fence: int
    updated_at: float

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))
        self.exclusive = bool(self.exclusive)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PathReservation:
        return cls(**{name: row[name] for name in cls.__slots__})

    @property
    def holder(self) -> str:
        return f"{self.actor}:{self.session}"

    def valid(self, now: float) -> bool:
        """True while ``now < expires_at`` (the lease rule)."""
        return now < self.expires_at

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """The documented JSON shape of a file reservation (see the README)."""
        now = _time.time() if now is None else now
        return {
            "pattern": self.pattern,
            "holder": self.holder,
            "actor": self.actor,
            "session": self.session,
            "exclusive": self.exclusive,
            "reason": self.reason,
            "acquired_at": format_ts_precise(self.acquired_at),
            "expires_at": format_ts_precise(self.expires_at),
            "valid": self.valid(now),
            "ttl_seconds": self.ttl,
            "fence": self.fence,
        }

    def __repr__(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        return (f"PathReservation({self.pattern!r}, holder={self.holder!r}, {kind}, "
                f"fence={self.fence}, until={format_ts(self.expires_at)})")


class Event:
    """One row of the append-only event log: ``id``, ``ts`` (UTC seconds), ``kind``,
    ``task_id``, ``actor``/``session`` (the holder), ``fence`` and ``details`` (a dict)."""

    __slots__ = ("id", "ts", "kind", "task_id", "actor", "session", "fence", "details")
    id: int
    ts: float
    kind: str
    task_id: str | None
    actor: str | None
    session: str | None
    fence: int | None
    details: dict[str, Any]

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Event:
        import json

        details = row["details"]
        if isinstance(details, str):
            details = json.loads(details)
        fields = {name: row[name] for name in cls.__slots__ if name != "details"}
        return cls(details=details or {}, **fields)

    @property
    def holder(self) -> str | None:
        return holder_text(self.actor, self.session)

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape of an event."""
        return {
            "id": self.id,
            "ts": format_ts_precise(self.ts),
            "kind": self.kind,
            "task_id": self.task_id,
            "holder": self.holder,
            "fence": self.fence,
            "details": self.details,
        }

    def __repr__(self) -> str:
        return f"Event({self.id}, {self.kind!r}, {self.task_id!r}, {self.holder!r}, fence={self.fence})"


# -- tickets and the feed ------------------------------------------------------------------------
def _details(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        import json

        return json.loads(raw) if raw else {}
    return dict(raw or {})


def format_uses_date(fmt: str) -> bool:
    """True when a ticket format has a ``{date}`` field (then ``seq`` restarts each UTC day)."""
    import string

    try:
        return any(field == "date" for _, field, _, _ in string.Formatter().parse(fmt))
    except ValueError:
        return False


class Namespace:
    """A ticket-number namespace: ``prefix`` (``CMB``), ``format`` (a Python format string over
    ``prefix``, ``seq`` and ``date``), ``lane_actor`` (the only actor allowed to reserve in a
    lane-private namespace, else None), ``created_at`` (UTC seconds) and ``created_by``."""

    __slots__ = ("prefix", "format", "lane_actor", "created_at", "created_by")
    prefix: str
    format: str
    lane_actor: str | None
    created_at: float
    created_by: str | None

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Namespace:
        return cls(**{name: row[name] for name in cls.__slots__})

    @property
    def dated(self) -> bool:
        """True when the format uses ``date``: ``seq`` then restarts at 1 each UTC day."""
        return format_uses_date(self.format)

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape of a namespace."""
        return {
            "prefix": self.prefix,
            "format": self.format,
            "dated": self.dated,
            "lane": self.lane_actor,
            "created_at": format_ts_precise(self.created_at),
            "created_by": self.created_by,
        }

    def __repr__(self) -> str:
        return f"Namespace({self.prefix!r}, {self.format!r}, lane={self.lane_actor!r})"


class Reservation:
    """One reserved ticket number: ``ticket_id`` (``CMB-0036``), its ``prefix``, ``period``
    (the UTC day ``YYYY-MM-DD`` for date-based formats, else ``""``) and ``seq``; the holder
    (``actor``/``session``) and ``reserved_at`` (UTC seconds); ``status`` ``reserved`` or
    ``abandoned`` (an abandoned number is never handed out again), ``abandoned_at``,
    ``abandoned_by`` and ``abandon_reason``."""

    __slots__ = ("ticket_id", "prefix", "period", "seq", "actor", "session", "reserved_at",
                 "status", "abandoned_at", "abandoned_by", "abandon_reason")
    ticket_id: str
    prefix: str
    period: str
    seq: int
    actor: str
    session: str
    reserved_at: float
    status: str
    abandoned_at: float | None
    abandoned_by: str | None
    abandon_reason: str | None

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Reservation:
        return cls(**{name: row[name] for name in cls.__slots__})

    @property
    def holder(self) -> str | None:
        return holder_text(self.actor, self.session)

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape of a reservation."""
        return {
            "ticket_id": self.ticket_id,
            "prefix": self.prefix,
            "period": self.period or None,
            "seq": self.seq,
            "holder": self.holder,
            "reserved_at": format_ts_precise(self.reserved_at),
            "status": self.status,
            "abandoned_at": format_ts_precise(self.abandoned_at),
            "abandoned_by": self.abandoned_by,
            "abandon_reason": self.abandon_reason,
        }

    def __repr__(self) -> str:
        return f"Reservation({self.ticket_id!r}, holder={self.holder!r}, status={self.status!r})"


class Post:
    """One immutable post of the feed.

    ``id``; ``ts`` (UTC seconds: when it was filed — the original time for imported posts);
    ``recorded_at`` (when this ledger recorded it); ``seat`` (``actor:session`` of a live post,
    the seat name of an imported one); ``kind``; ``item`` (the ticket id it is about, or None);
    ``subject``; ``body``; ``refs`` (the post an amendment or confirmation is about); ``flags``
    (a tuple, e.g. ``("CONFIRM-PENDING",)``); ``origin`` (``local`` or ``import``);
    ``proof_kind`` (``release-proof``, ``repair`` or ``auto``) and ``proof`` when a re-post of an
    item was accepted on evidence; ``details`` (a dict: ``renumbered_from``, ...).
    """

    __slots__ = ("id", "ts", "recorded_at", "seat", "actor", "session", "kind", "item", "subject",
                 "body", "refs", "flags", "origin", "proof_kind", "proof", "details")
    id: int
    ts: float
    recorded_at: float
    seat: str
    actor: str | None
    session: str | None
    kind: str
    item: str | None
    subject: str
    body: str
    refs: int | None
    flags: tuple[str, ...]
    origin: str
    proof_kind: str | None
    proof: str | None
    details: dict[str, Any]

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))
        flags = fields.get("flags")
        self.flags = tuple(flags.split()) if isinstance(flags, str) else tuple(flags or ())
        self.details = _details(fields.get("details"))
        self.body = fields.get("body") or ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Post:
        return cls(**{name: row[name] for name in cls.__slots__})

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape of a post."""
        return {
            "id": self.id,
            "ts": format_ts_precise(self.ts),
            "seat": self.seat,
            "kind": self.kind,
            "item": self.item,
            "subject": self.subject,
            "body": self.body,
            "refs": self.refs,
            "flags": list(self.flags),
            "origin": self.origin,
            "proof": ({"kind": self.proof_kind, "text": self.proof}
                      if self.proof_kind else None),
            "recorded_at": format_ts_precise(self.recorded_at),
            "details": self.details,
        }

    def __repr__(self) -> str:
        return f"Post({self.id}, {self.kind!r}, {self.item!r}, seat={self.seat!r}, flags={self.flags})"


class Operation:
    """A recorded operation (:meth:`leasehold.Ledger.lookup_op`): ``op_id``; ``kind`` (``claim``,
    ``extend``, ``released``, ``force_released``, ``completed``, ``complete_many``, ``next``,
    ``sweep``, ``reopened``, ``add``, ``depend``, ``undepend``, ``reserve``, ``reserve_paths``,
    ``release_paths``, ``force_release_paths``, ``feed_post``, ``feed_amend``, ``feed_confirm``);
    ``task_id`` (None for calls over several tasks or items);
    ``holder`` (``actor:session`` or None); ``ts`` (UTC seconds, the store's clock, when it
    applied); ``tasks`` (the tasks as the call left them) and ``result`` (the recorded outcome)."""

    __slots__ = ("op_id", "kind", "task_id", "actor", "session", "ts", "result")
    op_id: str
    kind: str
    task_id: str | None
    actor: str | None
    session: str | None
    ts: float
    result: dict[str, Any]

    def __init__(self, record: Mapping[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, record[name])

    @property
    def holder(self) -> str | None:
        return holder_text(self.actor, self.session)

    @property
    def tasks(self) -> list[Task]:
        return [Task.from_row(row) for row in self.result.get("tasks", [])]

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape of an operation (see the README)."""
        extra = {k: v for k, v in self.result.items() if k != "tasks"}
        return {
            "op_id": self.op_id,
            "applied": True,
            "kind": self.kind,
            "task_id": self.task_id,
            "holder": self.holder,
            "ts": format_ts_precise(self.ts),
            "tasks": [task.to_dict(self.ts) for task in self.tasks],
            **extra,
        }

    def __repr__(self) -> str:
        return f"Operation({self.op_id!r}, {self.kind!r}, task={self.task_id!r})"
