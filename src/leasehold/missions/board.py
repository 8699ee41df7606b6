"""The missions tree (``queue/ -> active/ -> done/``) backed by ledger leases.

Implements the mission coordination protocol: missions are Markdown files with YAML
frontmatter; the folder a file is in is its state. The protocol's weak spot — two sessions both
check ``active/``, both see the mission free, both move it — is closed by the ledger: every
transition first takes (or proves) the lease on the mission id (the mission id is the task id),
and only the lease holder moves or edits the file. The ledger decides atomically who wins; the
file system only records the outcome.

Order of steps, and what a crash between them leaves:

- claim: lease, then ``rename queue/ -> active/``, then one atomic rewrite (status, claimed_at,
  claimed_by and the ``CLAIMED`` log line together). A crash after the lease leaves the file in
  ``queue/`` under a lease: other sessions skip it while the lease is valid, the holder's next
  ``claim`` finishes the move, and once the lease expires anyone may claim it. A crash after the
  rename leaves an ``active/`` file not yet rewritten: the holder's next ``claim`` finishes the
  rewrite; after expiry it is resumable (``resume``).
- done / requeue: prove the lease, move and rewrite, then complete / release the lease; a rerun
  finishes what is left.

``claimed_at`` is the lease's grant time, so a file's claim and the lease that made it can be
matched after a crash.
"""

from __future__ import annotations

import os
import re

from leasehold.errors import (
    Conflict,
    InvalidInput,
    LeaseExpired,
    LeaseHeld,
    NoneAvailable,
    NotFound,
    NotHolder,
    TaskDone,
)
from leasehold.missions import files
from leasehold.missions.document import Document, InvalidMission
from leasehold.model import Holder, format_ts, is_task_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from leasehold.ledger import Ledger
    from leasehold.model import Lease, Task

FOLDERS = ("queue", "active", "done")
STATUS = {"queue": "QUEUED", "active": "ACTIVE", "done": "DONE"}
#: Seconds after which a claimed mission without a valid lease is stale (the protocol's 24 h;
#: ``stale_after`` in leasehold.toml).
DEFAULT_STALE_AFTER = 24 * 3600.0
TEMPLATE_NAME = "TEMPLATE.md"

#: ``priority`` words and their rank (higher is taken first); numbers are used as they are.
PRIORITY_WORDS = {
    "critical": 3, "urgent": 3, "highest": 3, "p0": 3,
    "high": 2, "p1": 2,
    "medium": 1, "normal": 1, "default": 1, "p2": 1,
    "low": 0, "p3": 0,
    "lowest": -1, "p4": -1,
}
DEFAULT_RANK = 1

DEFAULT_TEMPLATE = """\
---
mission_id:
status: QUEUED
assigned_to:
created:
claimed_at:
claimed_by:
---

# Title

## Objectives

1. First objective.

## Execution Log
"""


def priority_rank(value: Any) -> int:
    """The rank of a ``priority`` value: an integer as is, a word by :data:`PRIORITY_WORDS`,
    anything else (or none) :data:`DEFAULT_RANK`."""
    if isinstance(value, bool) or value is None:
        return DEFAULT_RANK
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value).strip().lower()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return PRIORITY_WORDS.get(text, DEFAULT_RANK)


def local_time(ts: float) -> Any:
    """UTC seconds -> an aware ``datetime`` in the local time zone, to the second."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(ts), UTC).astimezone()


def iso_local(ts: float) -> str:
    """UTC seconds -> ``2025-12-22T02:30:00+01:00`` (local time with its offset)."""
    return local_time(ts).isoformat()


def to_timestamp(value: Any) -> float | None:
    """A frontmatter time (datetime, date, ISO string) -> UTC seconds; None if absent or unreadable.
    A time without an offset is local time."""
    from datetime import date, datetime

    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.astimezone()).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).astimezone().timestamp()
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.astimezone()).timestamp()


#: Times :meth:`Missions._write` redoes an edit on a file a person keeps changing.
WRITE_ATTEMPTS = 5


#: The largest mission file read (bytes); anything larger is reported as an invalid mission.
MAX_MISSION_BYTES = 16 * 1024 * 1024


def _read_bytes(path: str) -> bytes:
    """The mission file's bytes (a regular file of at most :data:`MAX_MISSION_BYTES`). Raises
    :class:`FileNotFoundError` or :class:`InvalidMission`."""
    from leasehold.safefiles import read_regular

    try:
        return read_regular(path, MAX_MISSION_BYTES)
    except FileNotFoundError:
        raise
    except OSError as exc:
        problem = exc.strerror or str(exc).replace(f"{path} is ", "", 1) + "; not read"
        raise InvalidMission(path, None, problem) from None


def validate_mission_id(mission_id: str) -> str:
    """Return ``mission_id`` if it can name a mission file: a task id (1-200 letters, digits,
    ``._:/#-``) that is one path component (no ``/``) and not hidden (no leading ``.``: hidden
    names are temporary files). Raises :class:`InvalidInput`."""
    from leasehold.model import validate_task_id

    validate_task_id(mission_id)
    if "/" in mission_id or mission_id.startswith("."):
        raise InvalidInput(f"mission id {mission_id!r} must be one file name: no '/', no "
                           "leading '.'")
    return mission_id


def slugify(title: str, limit: int = 60) -> str:
    """``"Thaifa migration (critical)"`` -> ``thaifa-migration-critical``."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "mission"


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


class Mission:
    """A mission file as read: ``id``, ``folder`` (queue/active/done), ``path`` and its
    :class:`~leasehold.missions.document.Document` ``doc``."""

    __slots__ = ("id", "folder", "path", "doc")

    def __init__(self, mission_id: str, folder: str, path: str, doc: Document) -> None:
        self.id = mission_id
        self.folder = folder
        self.path = path
        self.doc = doc

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def title(self) -> str:
        return self.doc.title or self.id

    @property
    def status(self) -> str | None:
        return _text(self.doc.get("status"))

    @property
    def priority(self) -> Any:
        return self.doc.get("priority")

    @property
    def created(self) -> str | None:
        return _text(self.doc.get("created"))

    @property
    def claimed_at(self) -> str | None:
        return _text(self.doc.get("claimed_at"))

    @property
    def claimed_ts(self) -> float | None:
        return to_timestamp(self.doc.get("claimed_at"))

    @property
    def claimed_by(self) -> str | None:
        return _text(self.doc.get("claimed_by"))

    def claimed_under(self, acquired_at: float | None) -> bool:
        """True when this file records the claim of a lease granted at ``acquired_at``."""
        claimed = self.claimed_ts
        return (acquired_at is not None and claimed is not None and self.status == "ACTIVE"
                and abs(claimed - acquired_at) < 1.0)

    def sort_key(self) -> tuple[int, str, str]:
        """Queue order: priority (highest first), then created, then file name."""
        return (-priority_rank(self.priority), self.created or "\uffff", self.name)

    def __repr__(self) -> str:
        return f"Mission({self.id!r}, {self.folder!r})"


class Problem:
    """A file that is not a usable mission: ``path``, ``line`` (or None), ``message`` (one
    line) and the ``mission_id`` when known."""

    __slots__ = ("path", "line", "message", "mission_id")

    def __init__(self, path: str, line: int | None, message: str, mission_id: str | None = None) -> None:
        self.path = path
        self.line = line
        self.message = message
        self.mission_id = mission_id

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path, "line": self.line, "error": self.message}


class MissionView:
    """A mission with its lease, as of one instant: what ``list`` and ``start`` show.

    ``lease_valid``: a lease is held now. ``stale``: an ``active/`` mission without a valid
    lease whose claim is older than ``stale_after`` seconds, or was never completed (no
    ``status: ACTIVE`` with a readable ``claimed_at``: a session crashed half-way).
    """

    __slots__ = ("mission", "task", "lease_valid", "stale", "claimed_ts", "now")

    def __init__(self, mission: Mission, task: Task | None, lease_now: float, now: float,
                 stale_after: float) -> None:
        self.mission = mission
        self.task = task
        self.now = now
        self.lease_valid = task is not None and task.lease_valid(lease_now)
        claimed = mission.claimed_ts if mission.status == "ACTIVE" else None
        self.claimed_ts = claimed
        self.stale = (mission.folder == "active" and not self.lease_valid
                      and (claimed is None or now - claimed > stale_after))

    @property
    def state(self) -> str:
        """``held``, ``stale``, ``expired`` (lease expired, not yet stale), ``unleased`` or,
        in the queue, ``queued`` / ``leased`` (a claim in progress)."""
        m = self.mission
        if m.folder == "queue":
            return "leased" if self.lease_valid else "queued"
        if m.folder == "done":
            return "done"
        if self.lease_valid:
            return "held"
        if self.stale:
            return "stale"
        return "expired" if self.task is not None and self.task.lease_until is not None else "unleased"

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape of a mission (see the README)."""
        from leasehold.model import format_ts_precise

        m, t = self.mission, self.task
        held = self.lease_valid
        return {
            "id": m.id,
            "title": m.title,
            "folder": m.folder,
            "file": m.path,
            "status": m.status,
            "priority": m.priority if m.priority is None or isinstance(m.priority, int | str) else str(m.priority),
            "created": m.created,
            "claimed_at": m.claimed_at,
            "claimed_by": m.claimed_by,
            "lease_holder": t.lease_holder if t is not None and held else None,
            "lease_until": format_ts_precise(t.lease_until) if t is not None and held else None,
            "lease_valid": held,
            "fence": t.fence if t is not None else None,
            "state": self.state,
            "stale": self.stale,
            "age_seconds": None if self.claimed_ts is None else round(self.now - self.claimed_ts, 3),
        }

    def describe(self) -> str:
        """One line for people: free text (the title, who claimed it, the holder, even the id
        taken from a file name) escaped, the title in quotes nothing inside can close."""
        from leasehold.untrusted import escape, in_quotes

        m, t = self.mission, self.task
        state = self.state
        if state in ("held", "leased"):
            lease = (f"held by {escape(t.lease_holder, 200)} until {format_ts(t.lease_until)} "  # type: ignore[union-attr]
                     f"(fence {t.fence})")  # type: ignore[union-attr]
        elif state == "stale":
            if self.claimed_ts is None:
                lease = "STALE: no valid lease, the claim was never completed"
            else:
                lease = f"STALE: no valid lease, claimed {_age(self.now, self.claimed_ts)} ago"
        elif state == "expired":
            lease = f"lease expired {format_ts(t.lease_until)}; resumable"  # type: ignore[union-attr]
        elif state == "unleased":
            lease = "no lease; resumable"
        else:
            lease = escape(state)
        claim = ""
        if m.claimed_at or m.claimed_by:
            claim = f"  claimed {escape(m.claimed_at or '?')} by {in_quotes(m.claimed_by or '?')}"
        extra = ""
        if m.folder == "queue":
            bits = [f"priority {escape(m.priority)}" if m.priority is not None else "",
                    f"created {escape(m.created)}" if m.created else ""]
            extra = "  " + ", ".join(b for b in bits if b) if any(bits) else ""
        return f"{escape(m.id)}  {in_quotes(m.title)}{claim}{extra}  [{lease}]"


def _age(now: float, then: float | None) -> str:
    if then is None:
        return "at an unknown time"
    seconds = max(0.0, now - then)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


class NoMission(NoneAvailable):
    """No queued mission could be claimed (exit 1). ``problems``: invalid files met."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


class Outcome:
    """What a command did: ``action`` (claimed, resumed, logged, done, requeued, unchanged),
    the ``mission`` after it, the ``lease`` (or None), ``recovered`` (it finished a step a crash
    had left undone), ``skipped`` (``claim --next``: missions leased by others) and
    ``problems`` (invalid files met on the way)."""

    __slots__ = ("action", "mission", "lease", "recovered", "skipped", "problems", "message")

    def __init__(self, action: str, mission: Mission, lease: Lease | None, message: str, *,
                 recovered: bool = False, skipped: list[dict[str, Any]] | None = None,
                 problems: list[Problem] | None = None) -> None:
        self.action = action
        self.mission = mission
        self.lease = lease
        self.message = message
        self.recovered = recovered
        self.skipped = skipped or []
        self.problems = problems or []


#: The longest operation id a mission command takes: its steps' ids add ``/KIND-N``.
MISSION_OP_ID_MAX = 180
_STEPS = ("claim", "extend", "release", "force_release", "complete", "reopen")
#: The steps returning a lease: a replayed one is used only while it is still the task's lease.
_LEASE_STEPS = ("claim", "extend")


class _Steps:
    """The ledger as one mission command with an operation id sees it: each mutating call
    carries ``ID/KIND-N`` (the command's id, the call's kind, its rank among the command's calls
    of that kind), so rerunning the command with the same id replays the ledger changes that
    applied instead of applying them again (the file steps are idempotent on their own)."""

    def __init__(self, ledger: Ledger, base: str) -> None:
        self._ledger = ledger
        self._base = base
        self._count: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._ledger, name)
        if name not in _STEPS:
            return attr

        def step(*args: Any, **kwargs: Any) -> Any:
            rank = self._count[name] = self._count.get(name, 0) + 1
            given = "op_id" in kwargs
            kwargs.setdefault("op_id", f"{self._base}/{name}-{rank}")
            value = attr(*args, **kwargs)
            if name in _LEASE_STEPS and not given and not self._current(value):
                # A replayed lease (the first run's) that has since expired or been taken over:
                # acting on it would write another session's mission. The step is decided anew
                # (and refused, or granted afresh), as without an operation id. Checked on every
                # ledger: a remote one does not say whether its answer was replayed.
                del kwargs["op_id"]
                value = attr(*args, **kwargs)
            return value

        return step

    def _current(self, lease: Lease) -> bool:
        """True when ``lease`` (a replayed grant or extension) is still the task's valid lease."""
        task = self._ledger.status(lease.task_id)
        return (task is not None and task.fence == lease.fence
                and task.held_by(lease.holder, self._ledger.now()))


def _with_op_id(method: Callable[..., Outcome]) -> Callable[..., Outcome]:
    """A mission command taking ``op_id=`` (see :class:`_Steps`). Raises
    :class:`InvalidInput` for a malformed id or one longer than :data:`MISSION_OP_ID_MAX`."""
    import functools

    @functools.wraps(method)
    def run(self: Missions, *args: Any, op_id: str | None = None, **kwargs: Any) -> Outcome:
        if op_id is None or self._steps is not None:
            return method(self, *args, **kwargs)
        from leasehold.model import validate_op_id

        validate_op_id(op_id)
        if len(op_id) > MISSION_OP_ID_MAX:
            raise InvalidInput(f"a mission command's operation id may be {MISSION_OP_ID_MAX} "
                               f"characters long, got {len(op_id)}")
        self._steps = _Steps(self._ledger, op_id)
        try:
            return method(self, *args, **kwargs)
        finally:
            self._steps = None

    return run


class Missions:
    """The missions tree at ``root`` over ``ledger``.

    ``clock`` returns UTC seconds for file times (log lines, staleness); default the ledger's
    clock, so a clock injected into :meth:`leasehold.Ledger.open` drives both. ``stale_after``
    is in seconds. ``ttl``: the default lease TTL for mission claims (None: the ledger's).
    ``ledger`` may be None for :meth:`init` and :meth:`new`, which do not touch it.

    Methods raise :class:`~leasehold.errors.NotFound` (exit 3) for an unknown mission,
    :class:`~leasehold.missions.document.InvalidMission` (exit 2) for a mission whose file is
    invalid, :class:`~leasehold.errors.Conflict` subclasses (exit 1; :class:`LeaseHeld` names the
    holder) when the lease or the folder forbids the step, and store errors (exit 75).

    ``claim``, ``claim_next``, ``log``, ``done``, ``requeue`` and ``resume`` take ``op_id=`` (at
    most :data:`MISSION_OP_ID_MAX` characters): each ledger step then carries ``ID/KIND-N``,
    so rerunning the command with the same id replays the ledger changes that applied.
    """

    def __init__(self, root: str, ledger: Ledger | None, *, clock: Callable[[], float] | None = None,
                 stale_after: float = DEFAULT_STALE_AFTER, ttl: float | None = None) -> None:
        self.root = root
        self.ledger = ledger
        #: The ledger with step operation ids during a command given ``op_id``.
        self._steps: _Steps | None = None
        self.clock = clock
        self.stale_after = stale_after
        self.ttl = ttl

    # -- time ------------------------------------------------------------------------------
    def now(self) -> float:
        if self.clock is not None:
            return self.clock()
        if self.ledger is not None:
            return self.ledger.now()
        import time

        return time.time()

    def _stamp(self, ts: float) -> tuple[str, str]:
        """``(YYYY-MM-DD, HH:MM)`` in local time."""
        local = local_time(ts)
        return local.strftime("%Y-%m-%d"), local.strftime("%H:%M")

    @property
    def _ledger(self) -> Ledger:
        if self._steps is not None:
            return self._steps  # type: ignore[return-value]
        if self.ledger is None:
            raise InvalidInput("this operation needs the ledger")
        return self.ledger

    # -- the tree --------------------------------------------------------------------------
    def folder(self, name: str) -> str:
        return os.path.join(self.root, name)

    def init(self) -> list[str]:
        """Create ``queue/``, ``active/``, ``done/`` (each with a ``.keep`` for git) and
        ``TEMPLATE.md``; returns the paths created (none when all exist)."""
        created = []
        for name in FOLDERS:
            path = self.folder(name)
            if not os.path.isdir(path):
                os.makedirs(path, exist_ok=True)
                created.append(path)
                keep = os.path.join(path, ".keep")
                if not os.path.exists(keep):
                    files.atomic_write(keep, b"")
        template = os.path.join(self.root, TEMPLATE_NAME)
        if not os.path.exists(template):
            try:
                files.atomic_write(template, DEFAULT_TEMPLATE.encode("utf-8"), exclusive=True)
                created.append(template)
            except FileExistsError:
                pass
        return created

    def _check_tree(self) -> None:
        missing = [name for name in FOLDERS if not os.path.isdir(self.folder(name))]
        if missing:
            raise NotFound(f"{self.root} is not a missions folder (no {', '.join(m + '/' for m in missing)}); "
                           "run 'leasehold missions init'")

    def read(self, path: str, folder: str) -> Mission:
        """Read one file. Raises :class:`InvalidMission` and :class:`FileNotFoundError`."""
        raw = _read_bytes(path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidMission(path, raw[:exc.start].count(b"\n") + 1, "not UTF-8 text") from None
        doc = Document.parse(text, path)
        stem = os.path.basename(path)[:-3]
        raw_id = doc.get("mission_id")
        mission_id = str(raw_id).strip() if raw_id is not None and str(raw_id).strip() else stem
        if not is_task_id(mission_id):
            id_line = None
            if "mission_id" in doc.spans:
                id_line = doc.text.count("\n", 0, doc.spans["mission_id"][0]) + 1
            raise InvalidMission(path, id_line, f"mission_id {mission_id!r} must be 1-200 letters, digits or '._:/#-'")
        return Mission(mission_id, folder, path, doc)

    def scan(self, folders: Iterable[str] = FOLDERS) -> tuple[list[Mission], list[Problem]]:
        """The missions in ``folders`` (file-name order) and the files that are not usable:
        invalid frontmatter, or a mission id found in more than one file (all copies are then
        set aside). A file that moves away while being read is skipped."""
        self._check_tree()
        found: list[Mission] = []
        problems: list[Problem] = []
        wanted = list(folders)
        for folder in wanted:
            base = self.folder(folder)
            for name in sorted(os.listdir(base)):
                if name.startswith(".") or not name.endswith(".md"):
                    continue
                path = os.path.join(base, name)
                try:
                    found.append(self.read(path, folder))
                except FileNotFoundError:
                    continue  # moved by another session between listdir and open
                except IsADirectoryError:
                    continue
                except InvalidMission as exc:
                    problems.append(Problem(exc.path, exc.line, str(exc)))
        by_id: dict[str, list[Mission]] = {}
        for mission in found:
            by_id.setdefault(mission.id, []).append(mission)
        unique = []
        for mission in found:
            copies = by_id[mission.id]
            if len(copies) == 1:
                unique.append(mission)
                continue
            others = ", ".join(c.path for c in copies if c is not mission)
            problems.append(Problem(mission.path, None,
                                    f"{mission.path}: mission id {mission.id} is also in {others}",
                                    mission.id))
        return unique, problems

    def find(self, mission_id: str) -> Mission:
        """The mission with this id in any folder.

        Raises :class:`NotFound`; :class:`InvalidMission` when the file named ``ID.md`` is
        invalid; :class:`Conflict` when the id is in more than one file.
        """
        self._check_tree()
        if is_task_id(mission_id) and "/" not in mission_id:
            # fast path: the file named after the id (the usual case; scan() reports duplicates)
            named = []
            for folder in FOLDERS:
                path = os.path.join(self.folder(folder), f"{mission_id}.md")
                try:
                    named.append(self.read(path, folder))
                except FileNotFoundError:
                    continue
                except InvalidMission:
                    named = []
                    break
            if len(named) == 1 and named[0].id == mission_id:
                return named[0]
        missions, problems = self.scan()
        for mission in missions:
            if mission.id == mission_id:
                return mission
        for problem in problems:
            if problem.mission_id == mission_id:
                raise Conflict(problem.message)
        for problem in problems:
            if os.path.basename(problem.path) == f"{mission_id}.md":
                raise InvalidMission(problem.path, problem.line, problem.message.split(": invalid frontmatter: ", 1)[-1])
        raise NotFound(f"mission {mission_id} not found in {self.root}/queue, active or done")

    def views(self, missions: Iterable[Mission]) -> list[MissionView]:
        """Each mission with its lease as of now."""
        ledger = self._ledger
        lease_now = ledger.now()
        now = self.now() if self.clock is not None else lease_now
        return [MissionView(m, ledger.status(m.id), lease_now, now, self.stale_after) for m in missions]

    def view(self, mission: Mission) -> MissionView:
        return self.views([mission])[0]

    def overview(self, folders: Iterable[str] = ("queue", "active")) -> tuple[list[MissionView], list[Problem]]:
        """Views of the missions in ``folders`` (queue in claim order, others by file name)
        and the problems met."""
        missions, problems = self.scan(folders)
        missions.sort(key=lambda m: (FOLDERS.index(m.folder), m.sort_key() if m.folder == "queue" else ((0, "", m.name))))
        return self.views(missions), problems

    # -- writing ---------------------------------------------------------------------------
    def _write(self, mission: Mission, edit: Callable[[Document], Document]) -> Mission:
        """Apply ``edit`` to the file's current content and replace the file atomically.

        A person may edit the file while a session works on it: right before the replace the
        file is read again and compared with the content the edit was made on; if it changed,
        the edit is made again on the new content (its frontmatter keys and log line land on the
        person's version), so a person's bytes are never dropped. Raises :class:`Conflict` when
        the file keeps changing, :class:`InvalidMission` when the person's version is invalid
        (nothing is written)."""
        base = mission.doc
        expected = base.text.encode("utf-8")
        for _ in range(WRITE_ATTEMPTS):
            doc = edit(base)
            data = doc.text.encode("utf-8")
            current = _read_bytes(mission.path)
            if current == expected:
                files.atomic_write(mission.path, data)
                return Mission(mission.id, mission.folder, mission.path, doc)
            expected = current  # edited meanwhile: redo the edit on the new content
            try:
                base = Document.parse(current.decode("utf-8"), mission.path)
            except UnicodeDecodeError as exc:
                raise InvalidMission(mission.path, current[:exc.start].count(b"\n") + 1,
                                     "not UTF-8 text") from None
        raise Conflict(f"{mission.path} kept changing while it was being updated; try again")

    def _transition(self, mission: Mission, folder: str, fields: dict[str, Any],
                    at: float, line: str) -> Mission:
        """Move ``mission`` to ``folder`` (one rename) and rewrite it once with ``fields`` set
        and ``line`` appended to the execution log. The new text is built before anything is
        touched, so a bad edit changes nothing."""
        day, hhmm = self._stamp(at)

        def edit(doc: Document) -> Document:
            return doc.set_fields(fields).append_log(day, f"{hhmm} - {line}")

        edit(mission.doc)  # a bad edit raises here, before anything is moved
        if mission.folder != folder:
            target = os.path.join(self.folder(folder), mission.name)
            files.move(mission.path, target)
            mission = Mission(mission.id, folder, target, mission.doc)
        return self._write(mission, edit)

    # -- commands --------------------------------------------------------------------------
    def new(self, title: str, mission_id: str | None = None, priority: Any = None) -> Mission:
        """Create a QUEUED mission in ``queue/`` from ``TEMPLATE.md`` (or the built-in template).
        The id defaults to ``YYYY-MM-DD-slug-of-title``. Raises :class:`Conflict` if the id is
        taken, :class:`InvalidInput` for a bad id or title."""
        title = " ".join((title or "").split())
        if not title:
            raise InvalidInput("the mission needs a title")
        day, _ = self._stamp(self.now())
        mission_id = validate_mission_id(mission_id or f"{day}-{slugify(title)}")
        missions, problems = self.scan()
        for existing in missions:
            if existing.id == mission_id:
                raise Conflict(f"mission {mission_id} already exists: {existing.path}")
        template_path = os.path.join(self.root, TEMPLATE_NAME)
        if os.path.exists(template_path):
            template = self.read(template_path, "template").doc
        else:
            template = Document.parse(DEFAULT_TEMPLATE, template_path)
        fields: dict[str, Any] = {"mission_id": mission_id, "status": "QUEUED", "created": day}
        if priority is not None and str(priority).strip():
            raw = str(priority).strip()
            fields["priority"] = int(raw) if re.fullmatch(r"-?\d+", raw) else raw
        doc = template.set_fields(fields)
        text = doc.text
        body_at = text.find("\n", doc.yaml_end) + 1
        lines = text[body_at:].splitlines(keepends=True)
        for i, line in enumerate(lines):
            if re.match(r"^#[ \t]", line):
                ending = line[len(line.rstrip("\r\n")):]
                lines[i] = f"# {title}{ending}"
                break
        else:
            lines.insert(0, f"{doc.newline}# {title}{doc.newline}")
        doc = Document.parse(text[:body_at] + "".join(lines), template_path)
        path = os.path.join(self.folder("queue"), f"{mission_id}.md")
        try:
            files.atomic_write(path, doc.text.encode("utf-8"), exclusive=True)
        except FileExistsError:
            raise Conflict(f"{path} already exists") from None
        return Mission(mission_id, "queue", path, doc)

    def _lease(self, mission: Mission, holder: Holder, ttl: float | None) -> Lease:
        """Take the lease on a mission. A queued or active file whose task the ledger has as
        done was put back by hand: the task is reopened first."""
        ledger = self._ledger
        ttl = ttl if ttl is not None else self.ttl
        try:
            return ledger.claim(mission.id, holder, ttl, title=mission.title,
                                priority=priority_rank(mission.priority))
        except TaskDone:
            ledger.reopen(mission.id, by=holder)
            return ledger.claim(mission.id, holder, ttl)

    def _lease_noting(self, mission: Mission, holder: Holder, ttl: float | None) -> tuple[Lease, bool]:
        """:meth:`_lease`, and whether the holder already held the lease before (informational:
        it marks a claim that finishes what a crash left)."""
        ledger = self._ledger
        before = ledger.status(mission.id)
        held = before is not None and before.held_by(holder, ledger.now())
        return self._lease(mission, holder, ttl), held

    def _finish_claim(self, mission_id: str, lease: Lease, description: str, verb: str,
                      takeover: bool, renewed: bool = False) -> Outcome:
        """With the lease held: make the file say so (move to ``active/``, set the fields, log
        ``verb``). Idempotent: a file already recording this lease's claim is left alone.
        Without ``takeover``, an ``active/`` file recording another claim is not taken over:
        the lease is released and :class:`Conflict` raised."""
        ledger = self._ledger
        holder = lease.holder
        try:
            mission = self.find(mission_id)
        except (NotFound, Conflict, InvalidMission):
            ledger.release(mission_id, holder)
            raise
        acquired = lease.acquired_at
        if mission.folder == "active" and mission.claimed_under(acquired):
            return Outcome("unchanged", mission, lease,
                           f"mission {mission_id} is already {'claimed' if verb == 'CLAIMED' else 'held'} by "
                           f"{holder} (fence {lease.fence})")
        if mission.folder == "done":
            ledger.release(mission_id, holder)
            raise TaskDone(f"mission {mission_id} is done ({mission.path})")
        recovered = (mission.folder == "active" and mission.status != "ACTIVE") or (
            renewed and mission.folder == "queue")
        if mission.folder == "active" and not recovered and not takeover:
            ledger.release(mission_id, holder)
            raise Conflict(f"mission {mission_id} is active (claimed {mission.claimed_at or '?'} by "
                           f"\"{mission.claimed_by or '?'}\"); use 'leasehold missions resume {mission_id}'")
        line = f"**{verb}** by session \"{description}\""
        if verb == "RESUMED" and mission.claimed_by:
            line += f" (was claimed by \"{mission.claimed_by}\" at {mission.claimed_at or '?'})"
        fields = {"status": "ACTIVE", "claimed_at": iso_local(acquired), "claimed_by": description}
        try:
            mission = self._transition(mission, "active", fields, acquired, line)
        except InvalidInput:  # the edit cannot be made: nothing was moved or written
            ledger.release(mission_id, holder)
            raise
        action = "resumed" if verb == "RESUMED" else "claimed"
        return Outcome(action, mission, lease,
                       f"{action} {mission_id} as {holder} (fence {lease.fence}): {mission.path}",
                       recovered=recovered)

    @_with_op_id
    def claim(self, mission_id: str, holder: Holder | str, *, description: str | None = None,
              ttl: float | None = None) -> Outcome:
        """Claim a queued mission: the ledger lease first, then the move and the rewrite.

        Raises :class:`LeaseHeld` (naming the holder) when another session holds the lease;
        :class:`Conflict` when the mission is already active (use :meth:`resume`) and
        :class:`TaskDone` when it is done. The lease holder calling again finishes a claim a
        crash interrupted (``recovered``).
        """
        holder = Holder.parse(holder)
        description = description or str(holder)
        mission = self.find(mission_id)
        if mission.folder == "done":
            raise TaskDone(f"mission {mission_id} is done ({mission.path})")
        if mission.folder == "active":
            view = self.view(mission)
            task = view.task
            if view.lease_valid and task is not None and task.lease_holder != str(holder):
                raise LeaseHeld(mission_id, task.lease_holder or "?", task.lease_until or 0.0, task.fence)
            if not (view.lease_valid and mission.status != "ACTIVE") and not (
                    view.lease_valid and task is not None and mission.claimed_under(task.lease_acquired_at)):
                raise Conflict(f"mission {mission_id} is active (claimed {mission.claimed_at or '?'} by "
                               f"\"{mission.claimed_by or '?'}\", {view.state}); "
                               f"use 'leasehold missions resume {mission_id}'")
        lease, renewed = self._lease_noting(mission, holder, ttl)
        return self._finish_claim(mission_id, lease, description, "CLAIMED", takeover=False,
                                  renewed=renewed)

    @_with_op_id
    def claim_next(self, holder: Holder | str, *, description: str | None = None,
                   ttl: float | None = None) -> Outcome:
        """Claim the first queued mission (priority, then created, then file name) whose lease
        can be taken; missions leased by other sessions are skipped. A queued mission this
        holder already leases (a claim a crash interrupted) is finished first.

        Raises :class:`NoneAvailable` when no queued mission can be claimed.
        """
        holder = Holder.parse(holder)
        description = description or str(holder)
        ledger = self._ledger
        missions, problems = self.scan(("queue",))
        missions.sort(key=Mission.sort_key)
        mine = {lease.task_id for lease in ledger.leases_of(holder)}
        ordered = [m for m in missions if m.id in mine] + [m for m in missions if m.id not in mine]
        skipped: list[dict[str, Any]] = []
        for mission in ordered:
            try:
                lease = self._lease(mission, holder, ttl)
            except LeaseHeld as exc:
                skipped.append({"id": mission.id, "holder": exc.holder})
                continue
            try:
                outcome = self._finish_claim(mission.id, lease, description, "CLAIMED", takeover=False,
                                             renewed=mission.id in mine)
            except (NotFound, Conflict, InvalidInput) as exc:
                skipped.append({"id": mission.id, "holder": None, "reason": str(exc)})
                continue
            outcome.skipped = skipped
            outcome.problems = problems
            return outcome
        if not missions:
            detail = "the queue is empty"
        elif all(s.get("holder") for s in skipped):
            detail = f"all {len(missions)} queued mission(s) are leased by other sessions"
        else:
            detail = f"none of the {len(missions)} queued mission(s) could be claimed: " + "; ".join(
                f"{s['id']} is leased by {s['holder']}" if s.get("holder") else str(s.get("reason"))
                for s in skipped)
        if problems:
            detail += f" ({len(problems)} invalid file(s) skipped)"
        raise NoMission(f"no mission available to claim: {detail}", problems)

    def _hold(self, mission_id: str, holder: Holder, ttl: float | None) -> Lease:
        """Prove (and extend) the holder's lease. An own lease that expired without anyone
        taking over is granted again (a new fence)."""
        ledger = self._ledger
        try:
            return ledger.extend(mission_id, holder, ttl)
        except LeaseExpired:
            return ledger.claim(mission_id, holder, ttl if ttl is not None else self.ttl)
        except NotFound:
            raise NotHolder(f"mission {mission_id} has no lease; claim or resume it first") from None

    @_with_op_id
    def log(self, mission_id: str, holder: Holder | str, text: str, *, ttl: float | None = None) -> Outcome:
        """Append ``- HH:MM - text`` to an active mission's execution log and extend the lease.

        Raises :class:`NotHolder` / :class:`LeaseHeld` unless ``holder`` holds the lease,
        :class:`Conflict` unless the mission is in ``active/``.
        """
        holder = Holder.parse(holder)
        text = " ".join((text or "").split())
        if not text:
            raise InvalidInput("log needs some text")
        mission = self.find(mission_id)
        if mission.folder != "active":
            raise Conflict(f"mission {mission_id} is in {mission.folder}/, not active; claim it first")
        lease = self._hold(mission_id, holder, ttl)
        now = self.now()
        day, hhmm = self._stamp(now)
        mission = self._write(mission, lambda doc: doc.append_log(day, f"{hhmm} - {text}"))
        return Outcome("logged", mission, lease,
                       f"logged to {mission_id}; lease until {format_ts(lease.expires_at)} (fence {lease.fence})")

    @_with_op_id
    def done(self, mission_id: str, holder: Holder | str, *, description: str | None = None,
             note: str | None = None) -> Outcome:
        """Finish an active mission: prove the lease, move it to ``done/`` with ``status: DONE``
        and a ``DONE`` log line, then complete the lease. A rerun after a crash completes the
        lease of a mission already in ``done/``."""
        holder = Holder.parse(holder)
        ledger = self._ledger
        mission = self.find(mission_id)
        if mission.folder == "queue":
            raise Conflict(f"mission {mission_id} is queued, not active; claim it first")
        recovered = False
        if mission.folder == "done":
            task = ledger.status(mission_id)
            own = task is not None and task.status != "done" and task.lease_actor == holder.actor \
                and task.lease_session == holder.session
            if mission.status == "DONE":
                if own:  # a crash after the move and rewrite, before the lease was completed
                    ledger.complete(mission_id, holder)
                    return Outcome("done", mission, None, f"completed the lease of {mission_id} (already in done/)",
                                   recovered=True)
                return Outcome("unchanged", mission, None, f"mission {mission_id} is already done: {mission.path}")
            recovered = True  # a crash after the move, before the rewrite: finish it under the lease
        lease = self._hold(mission_id, holder, None)
        description = description or mission.claimed_by or str(holder)
        line = f"**DONE** by session \"{description}\""
        if note and note.strip():
            line += f": {' '.join(note.split())}"
        mission = self._transition(mission, "done", {"status": "DONE"}, self.now(), line)
        ledger.complete(mission_id, holder, fence=lease.fence)
        return Outcome("done", mission, lease, f"done {mission_id}: {mission.path}", recovered=recovered)

    @_with_op_id
    def requeue(self, mission_id: str, holder: Holder | str, *, force: bool = False,
                reason: str | None = None, description: str | None = None,
                ttl: float | None = None) -> Outcome:
        """Put an active mission back in ``queue/`` (``status: QUEUED``, claimed_at/claimed_by
        emptied, a ``REQUEUED`` log line) and release the lease.

        Allowed for the lease holder; for anyone else only when the mission is stale (no valid
        lease and claimed more than ``stale_after`` ago), or with ``force`` and a ``reason``
        (which also clears another session's valid lease, recorded as ``force_released``).
        Raises :class:`LeaseHeld`, :class:`Conflict` (not stale), :class:`InvalidInput`.
        """
        holder = Holder.parse(holder)
        ledger = self._ledger
        if force and not (reason and reason.strip()):
            raise InvalidInput("--force needs --reason TEXT: say why the mission is requeued")
        mission = self.find(mission_id)
        if mission.folder == "done":
            raise TaskDone(f"mission {mission_id} is done ({mission.path}); create a new mission instead")
        view = self.view(mission)
        task = view.task
        own = view.lease_valid and task is not None and task.lease_holder == str(holder)
        if mission.folder == "queue":
            if own:
                if mission.status != "QUEUED":  # a crash after the move, before the rewrite
                    self._transition(mission, "queue", {"status": "QUEUED", "claimed_at": None, "claimed_by": None},
                                     self.now(), f"**REQUEUED** by session \"{description or holder}\"")
                ledger.release(mission_id, holder)
                return Outcome("requeued", mission, None, f"released the lease on queued mission {mission_id}",
                               recovered=True)
            return Outcome("unchanged", mission, None, f"mission {mission_id} is already queued")
        if not own:
            if force:
                if task is not None and task.lease_actor is not None:
                    ledger.force_release(mission_id, reason or "", by=holder)
            elif view.lease_valid and task is not None:
                raise LeaseHeld(mission_id, task.lease_holder or "?", task.lease_until or 0.0, task.fence)
            elif not view.stale:
                raise Conflict(
                    f"mission {mission_id} is not stale (claimed {_age(view.now, view.claimed_ts)} ago; stale "
                    f"after {_age(self.stale_after, 0)} without a lease): pass --force --reason TEXT to requeue it"
                )
        lease = self._lease(mission, holder, ttl)  # atomic: fails if a session resumed it meanwhile
        description = description or str(holder)
        line = f"**REQUEUED** by session \"{description}\""
        if reason and reason.strip():
            line += f": {' '.join(reason.split())}"
        mission = self._transition(mission, "queue", {"status": "QUEUED", "claimed_at": None, "claimed_by": None},
                                   self.now(), line)
        ledger.release(mission_id, holder)
        return Outcome("requeued", mission, lease, f"requeued {mission_id}: {mission.path}")

    @_with_op_id
    def resume(self, mission_id: str, holder: Holder | str, *, description: str | None = None,
               ttl: float | None = None) -> Outcome:
        """Take over an active mission whose lease expired (or that never had one): a new lease
        (new fence), ``claimed_at``/``claimed_by`` set anew, a ``RESUMED`` log line.

        Raises :class:`LeaseHeld` (naming the holder) while another session's lease is valid,
        :class:`Conflict` unless the mission is in ``active/``.
        """
        holder = Holder.parse(holder)
        description = description or str(holder)
        mission = self.find(mission_id)
        if mission.folder != "active":
            hint = "use 'leasehold missions claim'" if mission.folder == "queue" else "it is finished"
            raise Conflict(f"mission {mission_id} is in {mission.folder}/, not active; {hint}")
        lease = self._lease(mission, holder, ttl)
        return self._finish_claim(mission_id, lease, description, "RESUMED", takeover=True)
