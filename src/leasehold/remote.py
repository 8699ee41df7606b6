"""A ledger served by ``leasehold serve``: the :class:`~leasehold.ledger.Ledger` surface over
HTTP, so the CLI, the hooks, missions and Python code work unchanged against
``LEASEHOLD_DB=https://host:7432``.

The token: ``LEASEHOLD_TOKEN``, else ``token_file`` in leasehold.toml (a file readable by its
owner only: mode 0600, else :class:`~leasehold.errors.ConfigError`). The actor of every call is
the token's; naming another is refused by the server (:class:`PermissionDenied`, exit 77).

Each method validates its input as the local ledger does, sends one request and rebuilds the
same results and exceptions (same classes, same messages) from the answer.
"""

from __future__ import annotations

import os

from leasehold.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    LeaseHeld,
    NoneAvailable,
    NotFound,
)
from leasehold.ledger import Ledger, ReleaseResult, Verdict
from leasehold.model import Holder, Lease, validate_name, validate_task_id
from leasehold.store.remote import Client
from leasehold.wire import event_in, path_in, slots_in, task_in

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from leasehold.config import Settings
    from leasehold.ledger import TTL
    from leasehold.model import Event, PathReservation, Task

_ACTORS: dict[tuple[str, str], str] = {}


def token_for(settings: Settings, environ: Any = None) -> str | None:
    """The token for a remote ledger: ``LEASEHOLD_TOKEN``, else the ``token_file`` of
    leasehold.toml (relative to that file; must not be readable by group or others).
    Raises :class:`ConfigError` for an unreadable or too-open token file, or a token that is
    not printable ASCII without spaces (it goes into an HTTP header)."""
    env = os.environ if environ is None else environ
    if env.get("LEASEHOLD_TOKEN"):
        return _checked_token(str(env["LEASEHOLD_TOKEN"]).strip(), "LEASEHOLD_TOKEN")
    if not settings.get("token_file"):
        return None
    path = settings.path("token_file", "")
    try:
        st = os.stat(path)
        if st.st_mode & 0o077:
            raise ConfigError(f"token_file {path} is readable by others (mode {st.st_mode & 0o777:o}): "
                              "chmod 600 it")
        with open(path, encoding="utf-8") as fh:
            text = fh.read().strip()
    except OSError as exc:
        raise ConfigError(f"token_file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"token_file {path} is not UTF-8 text (byte {exc.start}); it must "
                          "hold only the token") from None
    return _checked_token(text, f"token_file {path}") or None


def _checked_token(token: str, source: str) -> str:
    if token and not all("!" <= ch <= "~" for ch in token):
        from leasehold.untrusted import escape

        bad = next(ch for ch in token if not "!" <= ch <= "~")
        raise ConfigError(f"{source} holds '{escape(bad)}' (or another character that is not "
                          "printable ASCII): a token is one word of printable ASCII")
    return token


def token_actor(settings: Settings) -> str:
    """The actor of the configured token (one ``whoami`` request, remembered per process)."""
    token = token_for(settings) or ""
    key = (settings.db, token)
    if key not in _ACTORS:
        client = Client(settings.db, token)
        try:
            _ACTORS[key] = str(client.call("whoami")["actor"])
        finally:
            client.close()
    return _ACTORS[key]


class RemoteStore:
    """The few store calls the domain modules and the hooks make directly, over the client.
    ``dialect`` is ``remote``; the schema is the server's business (``migrate`` applies
    nothing from here)."""

    dialect = "remote"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.applied_on_open: list[str] = []

    def now(self) -> float:
        return self.client.now()

    def close(self) -> None:
        self.client.close()

    def clone(self) -> RemoteStore:
        return RemoteStore(Client(self.client.url, self.client.token))

    def migrate(self) -> list[str]:
        return []

    def restore_guards(self) -> list[str]:
        """Nothing: the append-only guards are repaired where the database is (``leasehold
        migrate`` on the server's ledger)."""
        return []

    def checkpoint(self) -> dict[str, tuple[int, str]]:
        """Refused (:class:`InvalidInput`): an anchor is taken where the database is, so that
        it vouches for the stored hash chains rather than for what a server answers."""
        raise InvalidInput("'leasehold anchor' reads the database's hash chains: run it against the "
                           "server's database (LEASEHOLD_DB=<its URL>), not through the server")

    def extend(self, task_id: str, actor: str, session: str, ttl: float | None,
               fence: int | None) -> tuple[Task | None, bool]:
        try:
            return task_in(self.client.call("extend", task_id=task_id, holder=f"{actor}:{session}",
                                            ttl=ttl, fence=fence)), True
        except NotFound:
            return None, False
        except Conflict:
            return task_in(self.client.call("status", task_id=task_id)), False

    def reserve_paths(self, patterns: list[str], actor: str, session: str, ttl: float,
                      exclusive: bool, reason: str | None, conflicts: Any, *, op: str | None = None,
                      ) -> tuple[list[PathReservation], list[tuple[str, PathReservation]]]:
        from leasehold.paths import PathReserved

        try:
            found = self.client.call("reserve_paths", patterns=list(patterns), holder=f"{actor}:{session}",
                                     ttl=ttl, shared=not exclusive, reason=reason, op_id=op)
        except PathReserved as exc:
            return [], exc.conflicts
        return [path_in(r) for r in found], []

    def release_paths(self, patterns: list[str], actor: str, session: str, *,
                      op: str | None = None) -> list[tuple[str, PathReservation | None]]:
        found = self.client.call("release_paths", patterns=list(patterns), holder=f"{actor}:{session}",
                                 op_id=op)
        return [(pattern, path_in(r)) for pattern, r in found]

    def sweep_paths(self, auto_release: bool) -> list[PathReservation]:
        return [path_in(r) for r in self.client.call("sweep_paths", auto_release=auto_release)]

    def force_release_paths(self, patterns: list[str], actor: str | None, session: str | None,
                            reason: str, *, op: str | None = None,
                            ) -> list[tuple[str, list[PathReservation]]]:
        by = None if actor is None else f"{actor}:{session}"
        found = self.client.call("force_release_paths", patterns=list(patterns), reason=reason, by=by,
                                 op_id=op)
        return [(pattern, [path_in(r) for r in gone]) for pattern, gone in found]

    def valid_paths(self) -> list[PathReservation]:
        return [path_in(r) for r in self.client.call("active_paths")]

    def exclusive_paths_not_of_session(self, session: str) -> list[PathReservation]:
        return [path_in(r) for r in self.client.call("exclusive_paths_not_of_session", session=session)]


def _lease(data: Any) -> Lease:
    return Lease(task_in(data))


def _by(by: Holder | str | None) -> str | None:
    return None if by is None else str(Holder.parse(by))


class RemoteLedger(Ledger):
    """:class:`Ledger` over a ``leasehold serve`` URL. Open it with :meth:`Ledger.open` (or
    ``RemoteLedger(url, token)``). Raises :class:`PermissionDenied` without a token."""

    #: Events per ``events_page`` request when :meth:`iter_events` walks the whole log.
    EVENT_PAGE = 1000

    def __init__(self, url: str, token: str | None, default_ttl: float | None = None) -> None:
        from leasehold.model import DEFAULT_TTL

        self.client = Client(url, token)
        super().__init__(RemoteStore(self.client), DEFAULT_TTL if default_ttl is None else default_ttl)  # type: ignore[arg-type]

    @classmethod
    def from_remote_settings(cls, settings: Settings, default_ttl: float | None = None) -> RemoteLedger:
        return cls(settings.db, token_for(settings),
                   settings.default_ttl if default_ttl is None else default_ttl)

    def _call(self, op: str, op_id: str | None = None, **args: Any) -> Any:
        if op_id is not None:
            from leasehold.model import validate_op_id

            validate_op_id(op_id)
        self.client.replayed_at = None
        try:
            return self.client.call(op, op_id=op_id, **args)
        finally:
            self.last_op_id = self.client.last_op_id
            self.replayed_at = self.client.replayed_at

    def _apply(self, op_id: str | None, kinds: tuple[str, ...], task_id: str | None,
               call: Any, **_checks: Any) -> tuple[Any, dict[str, Any] | None]:
        """Domain functions over this ledger's store (file reservations) send the operation id
        to the server, which records, looks up and replays it (a fresh id per request when
        None): ``(call(op_id), None)``."""
        from leasehold.model import validate_op_id

        if op_id is not None:
            validate_op_id(op_id)
        self.client.replayed_at = None
        try:
            return call(op_id), None
        finally:
            self.last_op_id = self.client.last_op_id
            self.replayed_at = self.client.replayed_at

    def lookup_op(self, op_id: str) -> Any:
        from leasehold.model import Operation, validate_op_id

        try:
            return Operation(self.client.call("op", operation_id=validate_op_id(op_id)))
        except NotFound:
            return None

    def close(self) -> None:
        self.client.close()

    def now(self) -> float:
        return self.client.now()

    def whoami(self) -> dict[str, Any]:
        """``{"actor", "role", "token_id"}`` of this client's token."""
        return self._call("whoami")  # type: ignore[no-any-return]

    @property
    def tokens(self) -> RemoteTokens:  # type: ignore[override]
        return RemoteTokens(self.client)

    @property
    def tickets(self) -> RemoteTickets:  # type: ignore[override]
        return RemoteTickets(self.client)

    @property
    def feed(self) -> RemoteFeed:  # type: ignore[override]
        return RemoteFeed(self.client)

    # -- leases ----------------------------------------------------------------------------
    def claim(self, task_id: str, holder: Holder | str, ttl: TTL = None, *,
              title: str | None = None, priority: int | None = None, op_id: str | None = None,
              share_with: Iterable[str] | None = None) -> Lease:
        validate_task_id(task_id)
        shares = [validate_name(s, "session") for s in share_with or ()]
        return _lease(self._call("claim", task_id=task_id, holder=str(Holder.parse(holder)),
                                 ttl=self.ttl_seconds(ttl), title=title, priority=priority, op_id=op_id,
                                 share_with=shares or None))

    def wait_claim(self, task_id: str, holder: Holder | str, ttl: TTL = None, *,
                   timeout: float = 30.0, title: str | None = None,
                   priority: int | None = None, share_with: Iterable[str] | None = None) -> Lease:
        validate_task_id(task_id)
        timeout = _timeout(timeout)
        shares = [validate_name(s, "session") for s in share_with or ()]
        return _lease(self.client.call("claim", extra_time=timeout, task_id=task_id,
                                       holder=str(Holder.parse(holder)), ttl=self.ttl_seconds(ttl),
                                       title=title, priority=priority, wait=timeout,
                                       share_with=shares or None))

    def wait_next(self, holder: Holder | str, ttl: TTL = None, count: int = 1, *,
                  timeout: float = 30.0) -> list[Lease]:
        if count < 1:
            raise InvalidInput(f"count must be at least 1, got {count}")
        timeout = _timeout(timeout)
        found = self.client.call("next", extra_time=timeout, holder=str(Holder.parse(holder)),
                                 ttl=self.ttl_seconds(ttl), count=count, wait=timeout)
        return [_lease(t) for t in found]

    def extend(self, task_id: str, holder: Holder | str, ttl: TTL = None,
               fence: int | None = None, *, op_id: str | None = None) -> Lease:
        validate_task_id(task_id)
        seconds = None if ttl is None else self.ttl_seconds(ttl)
        return _lease(self._call("extend", task_id=task_id, holder=str(Holder.parse(holder)),
                                 ttl=seconds, fence=fence, op_id=op_id))

    def _release_result(self, data: Any) -> ReleaseResult:  # type: ignore[override]
        return ReleaseResult(data["released"], task_in(data["task"]), data["message"])

    def release(self, task_id: str, holder: Holder | str, *, keep_status: bool = False,
                op_id: str | None = None) -> ReleaseResult:
        validate_task_id(task_id)
        return self._release_result(self._call("release", task_id=task_id, holder=str(Holder.parse(holder)),
                                               keep_status=keep_status, op_id=op_id))

    def force_release(self, task_id: str, reason: str, by: Holder | str | None = None, *,
                      op_id: str | None = None) -> ReleaseResult:
        validate_task_id(task_id)
        if not reason or not reason.strip():
            raise InvalidInput("--force needs --reason TEXT: say why the lease is cleared")
        return self._release_result(self._call("force_release", task_id=task_id, reason=reason, by=_by(by),
                                               op_id=op_id))

    def complete(self, task_id: str, holder: Holder | str, fence: int | None = None, *,
                 op_id: str | None = None) -> Task:
        validate_task_id(task_id)
        return task_in(self._call("complete", task_id=task_id, holder=str(Holder.parse(holder)), fence=fence,
                                  op_id=op_id))

    def complete_many(self, task_ids: Iterable[str], holder: Holder | str, *,
                      op_id: str | None = None) -> list[Task]:
        ids = [validate_task_id(task_id) for task_id in task_ids]
        return [task_in(t) for t in self._call("complete_many", task_ids=ids, holder=str(Holder.parse(holder)),
                                               op_id=op_id)]

    def next(self, holder: Holder | str, ttl: TTL = None, count: int = 1, *,
             op_id: str | None = None) -> list[Lease]:
        if count < 1:
            raise InvalidInput(f"count must be at least 1, got {count}")
        return [_lease(t) for t in self._call("next", holder=str(Holder.parse(holder)),
                                              ttl=self.ttl_seconds(ttl), count=count, op_id=op_id)]

    def sweep(self, auto_release: bool = False, *, op_id: str | None = None) -> list[Task]:
        return [task_in(t) for t in self._call("sweep", auto_release=auto_release, op_id=op_id)]

    # -- reads -----------------------------------------------------------------------------
    def status(self, task_id: str) -> Task | None:
        validate_task_id(task_id)
        return task_in(self._call("status", task_id=task_id))

    def check(self, task_id: str, holder: Holder | str | None) -> Verdict:
        validate_task_id(task_id)
        data = self._call("check", task_id=task_id, holder=_by(holder))
        return Verdict(data["clear"], task_in(data["task"]), data["reason"])

    def who(self, limit: int | None = None) -> list[tuple[str, list[Task]]]:
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        return [(holder, [task_in(t) for t in tasks]) for holder, tasks in self._call("who", limit=limit)]

    def leases_of(self, holder: Holder | str) -> list[Lease]:
        return [_lease(t) for t in self._call("leases_of", holder=str(Holder.parse(holder)))]

    def lease_board(self, limit: int = 100, offset: int = 0) -> tuple[list[Task], dict[str, int]]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= self.BOARD_PAGE_MAX:
            raise InvalidInput(f"limit must be between 1 and {self.BOARD_PAGE_MAX}, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 2**62:
            raise InvalidInput(f"offset must be 0 or more, got {offset!r}")
        data = self._call("lease_board", limit=limit, offset=offset)
        return [task_in(t) for t in data["tasks"]], data["counts"]

    def held_among(self, ids: Iterable[str]) -> list[Task]:
        from leasehold.model import is_task_id

        wanted = [i for i in dict.fromkeys(ids) if is_task_id(i)]
        if not wanted:
            return []
        return [task_in(t) for t in self._call("held_among", ids=wanted)]

    def heartbeat_session(self, session: str) -> tuple[list[Task], list[PathReservation]]:
        data = self._call("heartbeat_session", session=validate_name(session, "session"))
        return [task_in(t) for t in data["tasks"]], [path_in(r) for r in data["paths"]]

    def release_session(self, session: str) -> tuple[list[Task], list[PathReservation]]:
        data = self._call("release_session", session=validate_name(session, "session"))
        return [task_in(t) for t in data["tasks"]], [path_in(r) for r in data["paths"]]

    def release_session_count(self, session: str) -> tuple[int, int]:
        leases, reservations = self._call("release_session_count", session=validate_name(session, "session"))
        return int(leases), int(reservations)

    def share(self, task_id: str, holder: Holder | str, sessions: Iterable[str]) -> Lease:
        validate_task_id(task_id)
        who = Holder.parse(holder)
        names = [validate_name(s, "session") for s in sessions]
        if not names:
            raise InvalidInput("name at least one session to share the lease with")
        return _lease(self._call("share", task_id=task_id, holder=str(who), sessions=names))

    def shared_among(self, ids: Iterable[str]) -> dict[str, list[str]]:
        from leasehold.model import is_task_id

        wanted = [i for i in dict.fromkeys(ids) if is_task_id(i)]
        if not wanted:
            return {}
        return {str(k): list(v) for k, v in self._call("shared_among", ids=wanted).items()}

    def record_bypass(self, tasks: list[Task], by: Holder | str | None, details: dict[str, Any]) -> None:
        self._call("record_bypass", task_ids=[t.id for t in tasks], by=_by(by), details=details)

    def add(self, task_id: str, *, title: str | None = None, priority: int | None = None,
            by: Holder | str | None = None, op_id: str | None = None) -> tuple[Task, bool]:
        validate_task_id(task_id)
        data = self._call("add", task_id=task_id, title=title, priority=priority, by=_by(by), op_id=op_id)
        return task_in(data["task"]), data["created"]

    def add_blocked(self, task_id: str, blocked_by: str | list[str] | tuple[str, ...], *,
                    title: str | None = None, priority: int | None = None,
                    by: Holder | str | None = None, op_id: str | None = None) -> tuple[Task, bool, list[str]]:
        validate_task_id(task_id)
        ids = self._blocker_ids(task_id, blocked_by)
        data = self._call("add_blocked", task_id=task_id, blocked_by=ids, title=title,
                          priority=priority, by=_by(by), op_id=op_id)
        return task_in(data["task"]), data["created"], data["added"]

    def depend(self, task_id: str, blocked_by: str | list[str] | tuple[str, ...], *,
               by: Holder | str | None = None, op_id: str | None = None) -> tuple[Task, list[str]]:
        validate_task_id(task_id)
        data = self._call("depend", task_id=task_id, blocked_by=self._blocker_ids(task_id, blocked_by), by=_by(by),
                          op_id=op_id)
        return task_in(data["task"]), data["added"]

    def undepend(self, task_id: str, blocked_by: str | list[str] | tuple[str, ...], *,
                 by: Holder | str | None = None, op_id: str | None = None) -> tuple[Task, list[str]]:
        validate_task_id(task_id)
        data = self._call("undepend", task_id=task_id, blocked_by=self._blocker_ids(task_id, blocked_by), by=_by(by),
                          op_id=op_id)
        return task_in(data["task"]), data["removed"]

    def blockers(self, task_id: str) -> list[tuple[str, str]]:
        validate_task_id(task_id)
        return [(b, s) for b, s in self._call("blockers", task_id=task_id)]

    def ready(self, limit: int | None = None) -> list[Task]:
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        return [task_in(t) for t in self._call("ready", limit=limit)]

    def blocked(self) -> list[tuple[Task, list[tuple[str, str]]]]:
        return [(task_in(t), [(b, s) for b, s in pairs]) for t, pairs in self._call("blocked")]

    def reopen(self, task_id: str, by: Holder | str | None = None, *, op_id: str | None = None) -> Task:
        validate_task_id(task_id)
        return task_in(self._call("reopen", task_id=task_id, by=_by(by), op_id=op_id))

    def tasks(self, *, status: str | None = None, held: bool | None = None,
              limit: int | None = None) -> list[Task]:
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        return [task_in(t) for t in self._call("tasks", status=status, held=held, limit=limit)]

    #: Tasks per ``tasks_page`` request when :meth:`iter_tasks` walks the list.
    TASK_PAGE = 500

    def tasks_page(self, *, status: str | None = None, held: bool | None = None,
                   after: tuple[int, float, str] | None = None, limit: int = 500) -> list[Task]:
        if not 1 <= limit <= self.TASKS_PAGE_MAX:
            raise InvalidInput(f"limit must be between 1 and {self.TASKS_PAGE_MAX}, got {limit}")
        priority, created, last_id = after if after is not None else (None, None, None)
        return [task_in(t) for t in self._call("tasks_page", status=status, held=held, after_priority=priority,
                                               after_created=created, after_id=last_id, page=limit)]

    def iter_tasks(self, *, status: str | None = None, held: bool | None = None,
                   limit: int | None = None) -> Iterator[Task]:
        """:meth:`tasks`, fetched a page (:data:`TASK_PAGE` tasks) at a time, so neither the
        server nor this client ever holds the whole list (``list --all`` of any size)."""
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        if status is not None and status not in ("open", "in_progress", "done"):
            raise InvalidInput(f"status must be open, in_progress or done, got {status!r}")
        return self._task_pages(status, held, limit)

    def _task_pages(self, status: str | None, held: bool | None, limit: int | None) -> Iterator[Task]:
        after = None
        left = limit
        while left is None or left > 0:
            size = self.TASK_PAGE if left is None else min(self.TASK_PAGE, left)
            page = self.tasks_page(status=status, held=held, after=after, limit=size)
            yield from page
            if len(page) < size:
                return
            if left is not None:
                left -= len(page)
            last = page[-1]
            after = (last.priority, last.created_at, last.id)

    def iter_events(self, task_id: str | None = None, limit: int | None = None,
                    after: int = 0) -> Iterator[Event]:
        """:meth:`events`; without ``limit`` every event with id > ``after``, fetched a page
        (``events_page``, 1000 events) at a time, so the whole log is never in one answer."""
        if task_id is not None:
            validate_task_id(task_id)
        if limit is not None:
            return iter(self.events(task_id, limit, after))
        return self._event_pages(task_id, after)

    def _event_pages(self, task_id: str | None, after: int) -> Iterator[Event]:
        while True:
            page = [event_in(e) for e in self._call("events_page", task_id=task_id, after=after or None,
                                                    page=self.EVENT_PAGE)]
            yield from page
            if not page:
                return
            after = page[-1].id

    def events(self, task_id: str | None = None, limit: int | None = None,
               after: int = 0) -> list[Event]:
        if task_id is not None:
            validate_task_id(task_id)
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        return [event_in(e) for e in self._call("events", task_id=task_id, limit=limit, after=after or None)]

    def watch(self, task_ids: Iterable[str] = (), kinds: Iterable[str] = (), after: int | None = None,
              timeout: float | None = None) -> Iterator[Event]:
        """Events as they commit, from the server's event stream (``/v1/events``), reconnecting
        from the last id seen when the connection drops (no gap, no duplicate)."""
        from leasehold.store.remote_events import stream

        return stream(self.client, list(task_ids), list(kinds), after, timeout)


class RemoteTokens:
    """Token management through the server (an admin token)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def create(self, actor: str, role: str = "agent", expires: float | None = None,
               by: Any = None) -> tuple[Any, str]:
        from leasehold.tokens import TokenInfo

        data = self.client.call("token_create", actor=actor, role=role, expires=expires)
        return TokenInfo(**data["info"]), data["token"]

    def list(self) -> list[Any]:
        from leasehold.tokens import TokenInfo

        return [TokenInfo(**t) for t in self.client.call("token_list")]

    def revoke(self, token_id: str, by: Any = None) -> tuple[Any, bool]:
        from leasehold.tokens import TokenInfo

        data = self.client.call("token_revoke", token_id=token_id)
        return TokenInfo(**data["info"]), data["revoked"]


def _models() -> Any:
    from leasehold import model

    return model


class RemoteTickets:
    """:class:`leasehold.tickets.Tickets` through the server (same results and errors)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def add_namespace(self, prefix: str, fmt: str | None = None, lane: str | None = None,
                      by: Holder | str | None = None) -> tuple[Any, bool]:
        from leasehold.tickets import validate_prefix

        validate_prefix(prefix)
        data = self.client.call("ns_add", prefix=prefix, format=fmt, lane=lane, by=_by(by))
        return slots_in(_models().Namespace, data["namespace"]), data["created"]

    def namespaces(self) -> list[tuple[Any, dict[str, Any]]]:
        return [(slots_in(_models().Namespace, ns), counts) for ns, counts in self.client.call("ns_list")]

    def namespace(self, prefix: str) -> Any:
        from leasehold.tickets import validate_prefix

        validate_prefix(prefix)
        return slots_in(_models().Namespace, self.client.call("ns_get", prefix=prefix))

    def reserve(self, prefix: str, holder: Holder | str, count: int = 1, *,
                op_id: str | None = None) -> list[Any]:
        from leasehold.tickets import validate_prefix

        validate_prefix(prefix)
        found = self.client.call("reserve", prefix=prefix, holder=str(Holder.parse(holder)), count=count,
                                 op_id=_op_id(op_id))
        return [slots_in(_models().Reservation, r) for r in found]

    def reservation(self, ticket_id: str) -> Any:
        validate_task_id(ticket_id)
        return slots_in(_models().Reservation, self.client.call("reservation", ticket_id=ticket_id))

    def abandon(self, ticket_id: str, by: Holder | str, reason: str | None = None,
                force: bool = False) -> tuple[Any, bool]:
        validate_task_id(ticket_id)
        data = self.client.call("abandon", ticket_id=ticket_id, by=str(Holder.parse(by)), reason=reason,
                                force=force)
        return slots_in(_models().Reservation, data["reservation"]), data["changed"]


class RemoteFeed:
    """:class:`leasehold.feed.Feed` through the server (same results and errors)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def _post(self, data: Any) -> Any:
        return slots_in(_models().Post, data)

    def post(self, kind: str, subject: str, holder: Holder | str, *, op_id: str | None = None,
             **fields: Any) -> Any:
        return self._post(self.client.call("feed_post", kind=kind, subject=subject,
                                           holder=str(Holder.parse(holder)), op_id=_op_id(op_id),
                                           **fields))

    def amend(self, post_id: int, holder: Holder | str, *, op_id: str | None = None,
              **fields: Any) -> Any:
        return self._post(self.client.call("feed_amend", post_id=post_id, holder=str(Holder.parse(holder)),
                                           op_id=_op_id(op_id), **fields))

    def confirm(self, post_id: int, holder: Holder | str, prefix: str | None = None, *,
                op_id: str | None = None) -> Any:
        from leasehold.feed import ConfirmResult

        d = self.client.call("feed_confirm", post_id=post_id, holder=str(Holder.parse(holder)), prefix=prefix,
                             op_id=_op_id(op_id))
        return ConfirmResult(d["item"], self._post(d["post"]), self._post(d["winner"]), self._post(d["confirmed"]),
                             d["renumbered"], d["already"], d["message"])

    def import_file(self, path: str, by: Holder | str) -> Any:
        from leasehold.feed import ImportResult

        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            raise NotFound(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{path}: cannot read it ({exc})") from None
        d = self.client.call("feed_import", lines=lines, source=path, by=str(Holder.parse(by)))
        return ImportResult([self._post(p) for p in d["posts"]], d["skipped"])

    def get(self, post_id: int) -> Any:
        return self._post(self.client.call("feed_get", post_id=post_id))

    def posts(self, *, since: float | None = None, item: str | None = None, kind: str | None = None,
              limit: int | None = None) -> list[Any]:
        return [self._post(p) for p in self.client.call("feed_posts", since=since, item=item, kind=kind,
                                                         limit=limit)]

    def last(self, count: int) -> list[Any]:
        return [self._post(p) for p in self.client.call("feed_last", count=count)]

    def after(self, post_id: int, limit: int | None = None) -> list[Any]:
        return [self._post(p) for p in self.client.call("feed_after", post_id=post_id, limit=limit)]

    def last_id(self) -> int:
        posts = self.last(1)
        return posts[-1].id if posts else 0

    #: Posts per ``feed_page`` request when :meth:`iter_posts` walks the feed.
    POST_PAGE = 500
    POSTS_PAGE_MAX = 1000

    def posts_page(self, *, since: float | None = None, kind: str | None = None,
                   after: tuple[float, int] | None = None, limit: int = 500) -> list[Any]:
        if not 1 <= limit <= self.POSTS_PAGE_MAX:
            raise InvalidInput(f"limit must be between 1 and {self.POSTS_PAGE_MAX}, got {limit}")
        ts, post_id = after if after is not None else (None, None)
        return [self._post(p) for p in self.client.call("feed_page", since=since, kind=kind, after_ts=ts,
                                                         after_id=post_id, page=limit)]

    def iter_posts(self, *, since: float | None = None, kind: str | None = None) -> Iterator[Any]:
        """:meth:`posts` without a limit, fetched a page (:data:`POST_PAGE` posts) at a time,
        so neither the server nor this client holds the whole feed (``feed list --all``)."""
        after = None
        while True:
            page = self.posts_page(since=since, kind=kind, after=after, limit=self.POST_PAGE)
            yield from page
            if len(page) < self.POST_PAGE:
                return
            after = (page[-1].ts, page[-1].id)

    def queue(self, limit: int | None = None, state: str | None = None,
              item: str | None = None) -> list[dict[str, Any]]:
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        return self.client.call("feed_queue", limit=limit, state=state,  # type: ignore[no-any-return]
                                item=item)

    def iter_queue(self, state: str | None = None, item: str | None = None,
                   page: int = 200) -> Iterator[dict[str, Any]]:
        """:meth:`queue` in its order: the first ``page`` entries in one request, the rest (only
        if the caller reads past them) in a second one."""
        first = self.queue(max(1, page), state, item)
        yield from first
        if len(first) < max(1, page):
            return
        yield from self.queue(None, state, item)[len(first):]

    def drift(self) -> list[dict[str, Any]]:
        return self.client.call("feed_drift")  # type: ignore[no-any-return]


def _op_id(op_id: str | None) -> str | None:
    """A given operation id, validated before it is sent (None: the client draws one)."""
    if op_id is None:
        return None
    from leasehold.model import validate_op_id

    return validate_op_id(op_id)


def _timeout(timeout: float) -> float:
    if not 0 < timeout <= 86400:
        raise InvalidInput(f"the wait must be between 0 and 24h, got {timeout}")
    return float(timeout)


__all__ = ["RemoteLedger", "LeaseHeld", "NoneAvailable"]
