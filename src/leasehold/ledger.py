"""The lease ledger: claim / extend / release / complete / status / sweep / next over a store.

A lease is valid while ``now < expires_at`` (the store's clock). Expiry is a lower bound on how
long a lease lasts, never a promise of exact timing: a sweep or a new claim clears it after.
Every new grant of a task increments its fencing token; extend and a re-claim by the same
holder keep it (fencing tokens: Kleppmann 2016, "How to do distributed locking").
"""

from __future__ import annotations

from leasehold.errors import (
    DependencyCycle,
    InvalidInput,
    LeaseExpired,
    LeaseHeld,
    NotFound,
    NotHolder,
    OutcomeUnknown,
    StaleFence,
    StoreError,
    TaskDone,
)
from leasehold.model import (
    DEFAULT_TTL,
    Holder,
    Lease,
    Task,
    format_ts,
    is_task_id,
    parse_ttl,
    validate_name,
    validate_op_id,
    validate_task_id,
    validate_ttl,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from datetime import timedelta
    from typing import Any

    from leasehold.config import Settings
    from leasehold.feed import Feed
    from leasehold.model import Event, Operation, PathReservation
    from leasehold.store.sqlbase import SQLStore
    from leasehold.tickets import Tickets
    from leasehold.tokens import Tokens

    TTL = float | int | str | timedelta | None


#: Task priorities are 32-bit signed integers on every store (PostgreSQL's INTEGER).
PRIORITY_MIN, PRIORITY_MAX = -(2**31), 2**31 - 1


def _priority(priority: int | None) -> int | None:
    """``priority`` if None or within :data:`PRIORITY_MIN`..:data:`PRIORITY_MAX`; else
    :class:`InvalidInput`."""
    if priority is not None and not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise InvalidInput(f"priority must be between {PRIORITY_MIN} and {PRIORITY_MAX}, got {priority}")
    return priority


def _by(by: Holder | str | None) -> tuple[str | None, str | None]:
    """``(actor, session)`` of who acts, from a Holder, an ``"actor:session"`` string or None."""
    if by is None:
        return None, None
    who = Holder.parse(by)
    return who.actor, who.session


def _held_error(task: Task) -> LeaseHeld:
    return LeaseHeld(task.id, task.lease_holder or "?", task.lease_until or 0.0, task.fence)


class ReleaseResult:
    """What ``release`` did: ``released`` (bool), ``task`` (after, or None if unknown), and a
    one-line ``message`` for people."""

    __slots__ = ("released", "task", "message")

    def __init__(self, released: bool, task: Task | None, message: str) -> None:
        self.released = released
        self.task = task
        self.message = message


class Verdict:
    """The dispatch gate's answer for one task: ``clear`` (bool), the ``task`` (or None) and
    the ``reason`` when blocked."""

    __slots__ = ("clear", "task", "reason")

    def __init__(self, clear: bool, task: Task | None, reason: str | None) -> None:
        self.clear = clear
        self.task = task
        self.reason = reason


class Ledger:
    """The coordination ledger over one store.

    Open it with :meth:`Ledger.open`; use it as a context manager to close the connection.
    Holders are :class:`~leasehold.model.Holder` or ``"actor:session"`` strings. TTLs are
    seconds (int/float), ``timedelta`` or duration strings (``"90s"``, ``"10m"``), 1 s to 7 days;
    None means the default (10 minutes, or ``default_ttl`` in leasehold.toml).

    Every method may raise :class:`~leasehold.errors.StoreBusy` or
    :class:`~leasehold.errors.StoreUnavailable` (nothing applied: retry later) and
    :class:`~leasehold.errors.InvalidInput`.

    Operation ids (idempotency keys): every mutating call (claim, extend, release,
    force_release, complete, complete_many, next, sweep with auto_release, reopen, add,
    add_blocked, depend, undepend) takes
    ``op_id=`` (1-200 letters, digits, ``._:/#-``; a fresh random id when None) and records it
    in the same transaction as its effect; ``last_op_id`` holds the id of the latest call. A
    call repeated with the id of one that applied does not apply again: it returns the first
    call's recorded outcome (an id reused for a different call, or with other arguments, is
    :class:`InvalidInput`: a digest of the kind and arguments is recorded with the id). Ticket
    reservations, file reservations and feed posts take ``op_id=`` the same way
    (:mod:`leasehold.ops`). A
    call that changed nothing (a conflict, not found) records nothing. When the connection is
    lost after the commit was sent and the ledger cannot be asked whether it applied, the call
    raises :class:`~leasehold.errors.OutcomeUnknown` (exit 76) carrying the id: look it up
    with :meth:`lookup_op` or retry with the same id.
    """

    def __init__(self, store: SQLStore, default_ttl: float = DEFAULT_TTL) -> None:
        self.store = store
        self.default_ttl = default_ttl
        #: The operation id of the latest mutating call (given or generated).
        self.last_op_id: str | None = None
        #: The store's clock (UTC seconds) when the latest call's outcome was replayed from the
        #: record of an earlier call with its operation id; None when it applied now. Judge a
        #: replayed lease's validity at this instant, not at its grant.
        self.replayed_at: float | None = None
        #: An operation id its caller vouches was never sent before (a client's first attempt
        #: with an id it generated for this call): the next call with it skips the lookup
        #: that serves retries. A duplicate is still caught, by the record written in the
        #: call's own transaction (then replayed), so a wrong claim costs nothing but speed.
        self.fresh_op_id: str | None = None

    @classmethod
    def open(cls, url: str | None = None, *, create: bool = False,
             clock: Callable[[], float] | None = None, busy_timeout: float | None = None,
             default_ttl: float | None = None) -> Ledger:
        """Open the ledger at ``url`` (a path, ``sqlite:///path``, ``postgresql://...``, or
        ``http(s)://host:port`` for a ``leasehold serve`` server, with ``LEASEHOLD_TOKEN``);
        without one, resolve it like the CLI does (``LEASEHOLD_DB``, leasehold.toml, the
        per-user default). ``clock`` (SQLite only) returns UTC seconds; ``busy_timeout`` is in
        seconds.

        ``create``: make the ledger if there is none at that location (the SQLite file and its
        folder, or the schema in an existing PostgreSQL database). It defaults to False, the
        CLI's rule: a mistyped location raises :class:`~leasehold.errors.ConfigError` instead
        of quietly starting an empty ledger on which every claim and every gate check succeeds
        (two processes with two spellings of one path would both win). Pass ``create=True``
        where the program owns the ledger's life (a test, a service's first start, an
        installer); ``leasehold init`` does the same from the shell. The per-user default
        location (no ``url``, nothing configured) is created on first use either way.

        Raises :class:`~leasehold.errors.ConfigError` (exit 78) for a missing ledger (without
        ``create``), a malformed URL, a file that is not a leasehold ledger (left untouched) or
        a ledger with a newer schema; :class:`~leasehold.errors.StoreUnavailable` when the
        store cannot be reached."""
        from leasehold.config import load_settings

        return cls.from_settings(load_settings(url), create=create, clock=clock,
                                 busy_timeout=busy_timeout, default_ttl=default_ttl)

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = False,
                      clock: Callable[[], float] | None = None,
                      busy_timeout: float | None = None,
                      default_ttl: float | None = None) -> Ledger:
        """Open the ledger resolved settings name; explicit arguments win over them. The
        ledger is created only with ``create`` or at the per-user default location."""
        from leasehold.errors import ConfigError
        from leasehold.store import open_store

        if settings.db.startswith(("http://", "https://")):
            from leasehold.remote import RemoteLedger

            return RemoteLedger.from_remote_settings(settings, default_ttl)
        if busy_timeout is None:
            busy_timeout = settings.busy_timeout
        try:
            store = open_store(settings.db, clock=clock, busy_timeout=busy_timeout,
                               create=create or settings.is_default)
        except ConfigError as exc:
            if settings.db_source in ("--db", "default") or settings.db_source in str(exc):
                raise
            raise ConfigError(f"{exc} [ledger from {settings.describe_source()}]") from None
        return cls(store, settings.default_ttl if default_ttl is None else default_ttl)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> float:
        """The store's clock: UTC seconds since the epoch."""
        return self.store.now()

    @property
    def tickets(self) -> Tickets:
        """Ticket namespaces and reservations on this ledger's store (:mod:`leasehold.tickets`)."""
        from leasehold.tickets import Tickets

        return Tickets(self.store)

    @property
    def tokens(self) -> Tokens:
        """API tokens of ``leasehold serve`` on this ledger's store (:mod:`leasehold.tokens`)."""
        from leasehold.tokens import Tokens

        return Tokens(self.store)

    @property
    def feed(self) -> Feed:
        """The append-only feed on this ledger's store (:mod:`leasehold.feed`)."""
        from leasehold.feed import Feed

        return Feed(self.store)

    # -- operation ids ---------------------------------------------------------------------
    def lookup_op(self, op_id: str) -> Operation | None:
        """The operation recorded under ``op_id`` (it applied), or None (no call with that id
        applied: retrying with it is safe). Raises :class:`InvalidInput` for a malformed id."""
        from leasehold.model import Operation

        record = self.store.lookup_op(validate_op_id(op_id))
        return Operation(record) if record is not None else None

    def _apply(self, op_id: str | None, kinds: tuple[str, ...], task_id: str | None,
               call: Callable[[str], Any], *, holder: Holder | None = None,
               unchanged: Callable[[Any], bool] | None = None, args: Any = None,
               ) -> tuple[Any, dict[str, Any] | None]:
        """Run ``call(op)`` with the operation id (:func:`leasehold.ops.run_op`); ``(value,
        None)``, or ``(None, record)`` when the id is already recorded by the same call (a retry
        of a call that applied: its outcome is replayed). ``args``: the call's arguments besides
        its kind, task and holder, whose digest is recorded with the id; an id recorded for
        another kind, task, holder or arguments is a different call: :class:`InvalidInput`.
        ``unchanged(value)``: true when the call changed nothing (see ``run_op``)."""
        from leasehold.ops import run_op

        self.replayed_at = None
        self.last_op_id = None
        fresh, self.fresh_op_id = self.fresh_op_id, None
        who = (holder.actor, holder.session) if holder is not None else None
        try:
            value, record, key = run_op(
                self.store, op_id, kinds[0], [task_id, None if who is None else list(who), args],
                lambda key: self._run(key, call), kinds=kinds, task_id=task_id, holder=who,
                unchanged=unchanged, fresh=op_id is not None and op_id == fresh)
        finally:
            if self.last_op_id is None and op_id is not None and is_task_id(op_id):
                self.last_op_id = op_id  # a given, well-formed id: replayed or looked up
        if record is not None:
            self.replayed_at = record.get("read_at")
        return value, record

    def _run(self, key: str, call: Callable[[str], Any]) -> Any:
        self.last_op_id = str(key)
        return call(key)

    @staticmethod
    def _replayed(record: dict[str, Any]) -> list[Task]:
        return [Task.from_row(row) for row in record["result"].get("tasks", [])]

    def ttl_seconds(self, ttl: TTL) -> float:
        """Normalise a TTL argument to seconds and check its range. Raises :class:`InvalidInput`."""
        if ttl is None:
            return self.default_ttl
        if hasattr(ttl, "total_seconds"):
            return validate_ttl(float(ttl.total_seconds()))
        return parse_ttl(ttl)  # type: ignore[arg-type]

    # -- leases ----------------------------------------------------------------------------
    def claim(self, task_id: str, holder: Holder | str, ttl: TTL = None, *,
              title: str | None = None, priority: int | None = None,
              op_id: str | None = None, share_with: Iterable[str] | None = None) -> Lease:
        """Grant ``holder`` the lease on ``task_id`` for ``ttl``.

        Granted if the task is free, its lease expired (a takeover: new fence), or the same
        holder already holds it (expiry refreshed, same fence). An unknown task is created.
        ``share_with``: session ids the grant is shared with (:meth:`share`), in the same
        transaction as the grant. Raises :class:`LeaseHeld` (carrying holder, expiry and fence)
        if another holder has a valid lease, :class:`TaskDone` if the task is done,
        :class:`InvalidInput` for a malformed session name.
        """
        validate_task_id(task_id)
        who = Holder.parse(holder)
        seconds = self.ttl_seconds(ttl)
        priority = _priority(priority)
        shares = [validate_name(s, "session") for s in share_with or ()]
        extra = {"share_with": shares} if shares else {}
        outcome, record = self._apply(op_id, ("claim",), task_id, lambda op: self.store.claim(
            task_id, who.actor, who.session, seconds, title, priority, op=op, **extra), holder=who,
            unchanged=lambda outcome: not outcome.granted,
            args={"ttl": seconds, "title": title, "priority": priority, **extra})
        if record is not None:
            return Lease(self._replayed(record)[0])
        if not outcome.granted:
            if outcome.task.status == "done":
                raise TaskDone(f"Task {task_id} is done; reopen it to claim it again")
            raise _held_error(outcome.task)
        return Lease(outcome.task)

    def extend(self, task_id: str, holder: Holder | str, ttl: TTL = None,
               fence: int | None = None, *, op_id: str | None = None) -> Lease:
        """Heartbeat: the holder pushes its valid lease's expiry to now + ``ttl`` (default: the
        lease's own TTL). The fence stays the same; pass ``fence`` to require it.

        Raises :class:`NotFound`, :class:`LeaseHeld` (another holder has it),
        :class:`NotHolder`, :class:`LeaseExpired` (claim again: a new fence), :class:`StaleFence`.
        """
        validate_task_id(task_id)
        who = Holder.parse(holder)
        seconds = None if ttl is None else self.ttl_seconds(ttl)
        result, record = self._apply(op_id, ("extend",), task_id, lambda op: self.store.extend(
            task_id, who.actor, who.session, seconds, fence, op=op), holder=who,
            unchanged=lambda result: not result[1], args={"ttl": seconds, "fence": fence})
        if record is not None:
            return Lease(self._replayed(record)[0])
        task, ok = result
        if ok and task is not None:
            return Lease(task)
        if task is None:
            raise NotFound(f"Task {task_id} not found")
        raise self._lease_error(task, who, fence)

    def _lease_error(self, task: Task, who: Holder, fence: int | None) -> Exception:
        now = self.store.now()
        if task.lease_actor is None:
            return NotHolder(f"Task {task.id} is not held by {who}: it has no lease")
        own = task.lease_actor == who.actor and task.lease_session == who.session
        if not own:
            if task.lease_valid(now):
                return _held_error(task)
            return NotHolder(
                f"Task {task.id} is not held by {who} (the lease of {task.lease_holder} "
                f"expired at {format_ts(task.lease_until)})"
            )
        if fence is not None and fence != task.fence:
            return StaleFence(f"fence {fence} is stale: task {task.id} is at fence {task.fence}")
        return LeaseExpired(
            f"Lease of {who} on task {task.id} expired at {format_ts(task.lease_until)}; "
            "claim it again"
        )

    def release(self, task_id: str, holder: Holder | str, *, keep_status: bool = False,
                op_id: str | None = None) -> ReleaseResult:
        """The holder gives up its lease; status goes back to ``open`` unless ``keep_status``
        (unclaim only). Releasing a task nobody holds is not an error (``released`` False).

        Raises :class:`NotFound` for an unknown task and :class:`LeaseHeld` when another holder
        has a valid lease. The caller's own lease past its expiry has already ended: nothing is
        released (``released`` False), as ``extend`` and ``complete`` refuse it.
        """
        validate_task_id(task_id)
        who = Holder.parse(holder)
        status = None if keep_status else "open"
        result, record = self._apply(op_id, ("released",), task_id, lambda op: self.store.release(
            task_id, who.actor, who.session, status=status, kind="released", op=op), holder=who,
            unchanged=lambda result: result[1] != "released", args={"keep_status": keep_status})
        if record is not None:
            result = (self._replayed(record)[0], "released")
        return self._release_result(task_id, *result)

    def force_release(self, task_id: str, reason: str, by: Holder | str | None = None, *,
                      op_id: str | None = None) -> ReleaseResult:
        """Anyone clears the lease (the stuck-lease runbook), recorded as ``force_released``
        with ``reason`` and who did it. Status goes back to ``open``.

        Raises :class:`InvalidInput` without a reason, :class:`NotFound` for an unknown task.
        """
        validate_task_id(task_id)
        if not reason or not reason.strip():
            raise InvalidInput("--force needs --reason TEXT: say why the lease is cleared")
        who = Holder.parse(by) if by is not None else None
        result, record = self._apply(op_id, ("force_released",), task_id, lambda op: self.store.release(
            task_id, who.actor if who else None, who.session if who else None,
            status="open", kind="force_released", force=True, details={"reason": reason}, op=op,
        ), unchanged=lambda result: result[1] != "released",
            args={"reason": reason, "by": None if who is None else str(who)})
        if record is not None:
            result = (self._replayed(record)[0], "released")
        return self._release_result(task_id, *result)

    def _release_result(self, task_id: str, task: Task | None, outcome: str) -> ReleaseResult:
        if task is None:
            raise NotFound(f"Task {task_id} not found")
        if outcome == "held_by_other":
            raise _held_error(task)
        if outcome == "expired":
            return ReleaseResult(False, task, (
                f"Lease of {task.lease_holder} on task {task_id} expired at "
                f"{format_ts(task.lease_until)}; nothing to release"))
        if outcome == "not_held":
            note = ""
            if task.lease_actor is not None:
                note = f" (the lease of {task.lease_holder} expired at {format_ts(task.lease_until)})"
            return ReleaseResult(False, task, f"Task {task_id} is not held{note}; nothing to release")
        return ReleaseResult(True, task, f"released {task_id} (status {task.status})")

    def complete(self, task_id: str, holder: Holder | str, fence: int | None = None, *,
                 op_id: str | None = None) -> Task:
        """The holder marks the task done and releases its lease.

        Allowed while the holder's lease is valid: a lease ends at its expiry, for ``done`` as
        for ``extend`` and ``release`` (claim again: a new fence if nobody took it over).
        Raises :class:`NotFound`, :class:`LeaseHeld`, :class:`NotHolder`,
        :class:`LeaseExpired`, :class:`StaleFence`.
        """
        validate_task_id(task_id)
        who = Holder.parse(holder)
        result, record = self._apply(op_id, ("completed",), task_id, lambda op: self.store.release(
            task_id, who.actor, who.session, status="done", kind="completed", fence=fence,
            details={} if fence is None else {"fence_checked": fence}, op=op), holder=who,
            unchanged=lambda result: result[1] != "released", args={"fence": fence})
        if record is not None:
            return self._replayed(record)[0]
        task, outcome = result
        if task is None:
            raise NotFound(f"Task {task_id} not found")
        if outcome == "released":
            return task
        if outcome == "stale_fence":
            raise StaleFence(f"fence {fence} is stale: task {task_id} is at fence {task.fence}")
        if outcome == "held_by_other":
            raise _held_error(task)
        if outcome == "expired":
            raise LeaseExpired(f"Lease of {who} on task {task_id} expired at "
                               f"{format_ts(task.lease_until)}; claim it again")
        raise NotHolder(f"Task {task_id} is not held by {who}; claim it before marking it done")

    def complete_many(self, task_ids: Iterable[str], holder: Holder | str, *,
                      op_id: str | None = None) -> list[Task]:
        """Mark done, in one transaction (one statement on PostgreSQL), every task among
        ``task_ids`` that ``holder`` holds, under the rules of :meth:`complete`. Returns the
        tasks completed; the others are unchanged (ask :meth:`complete` for the reason).
        Raises :class:`InvalidInput` for a malformed id."""
        ids = [validate_task_id(task_id) for task_id in task_ids]
        who = Holder.parse(holder)
        done, record = self._apply(op_id, ("complete_many",), None, lambda op: self.store.complete_many(
            ids, who.actor, who.session, op=op), holder=who, unchanged=lambda done: not done,
            args={"ids": ids})
        return self._replayed(record) if record is not None else done

    def next(self, holder: Holder | str, ttl: TTL = None, count: int = 1, *,
             op_id: str | None = None) -> list[Lease]:
        """Atomically claim up to ``count`` tasks of the ready queue (not done, no valid lease,
        every blocker done), highest priority first, then oldest. Returns the leases granted: empty when none is ready."""
        who = Holder.parse(holder)
        if count < 1:
            raise InvalidInput(f"count must be at least 1, got {count}")
        seconds = self.ttl_seconds(ttl)
        tasks, record = self._apply(op_id, ("next",), None, lambda op: self.store.next(
            who.actor, who.session, seconds, count, op=op), holder=who,
            unchanged=lambda tasks: not tasks, args={"ttl": seconds, "count": count})
        return [Lease(task) for task in (self._replayed(record) if record is not None else tasks)]

    def sweep(self, auto_release: bool = False, *, op_id: str | None = None) -> list[Task]:
        """Leases past expiry (as they were); with ``auto_release`` clear each (one ``expired``
        event each; ``in_progress`` goes back to ``open``)."""
        if not auto_release:
            return self.store.sweep(False)
        tasks, record = self._apply(op_id, ("sweep",), None, lambda op: self.store.sweep(
            True, op=op), args={"auto_release": True})
        return self._replayed(record) if record is not None else tasks

    # -- waiting and watching ----------------------------------------------------------------
    def wait_claim(self, task_id: str, holder: Holder | str, ttl: TTL = None, *,
                   timeout: float = 30.0, title: str | None = None,
                   priority: int | None = None, share_with: Iterable[str] | None = None) -> Lease:
        """:meth:`claim`, waiting up to ``timeout`` seconds for another holder's lease to end.

        Directly on a store this polls with backoff (5 ms doubling to 0.5 s, and at the
        blocking lease's expiry); through ``leasehold serve`` the server queues waiters per
        task in arrival order (FIFO) and wakes the next at once on a release. Raises
        :class:`LeaseHeld` when the time is up, :class:`TaskDone`, :class:`InvalidInput`."""
        import time

        if not 0 < timeout <= 86400:
            raise InvalidInput(f"the wait must be between 0 and 24h, got {timeout}")
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                return self.claim(task_id, holder, ttl, title=title, priority=priority,
                                  share_with=share_with)
            except LeaseHeld as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                until_expiry = exc.expires_at - self.now()
                time.sleep(max(0.001, min(delay, left, max(until_expiry, 0.001))))
                delay = min(delay * 2, 0.5)

    def wait_next(self, holder: Holder | str, ttl: TTL = None, count: int = 1, *,
                  timeout: float = 30.0) -> list[Lease]:
        """:meth:`next`, waiting up to ``timeout`` seconds for a ready task (polling with
        backoff directly, woken at once through ``leasehold serve``). Returns ``[]`` when the
        time is up."""
        import time

        if not 0 < timeout <= 86400:
            raise InvalidInput(f"the wait must be between 0 and 24h, got {timeout}")
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            leases = self.next(holder, ttl, count)
            left = deadline - time.monotonic()
            if leases or left <= 0:
                return leases
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.5)

    def watch(self, task_ids: Iterable[str] = (), kinds: Iterable[str] = (), after: int | None = None,
              timeout: float | None = None) -> Iterator[Event]:
        """Iterate over events as they commit (ids > ``after``; None: from now on), only those
        of ``task_ids`` / ``kinds`` when given, for ``timeout`` seconds (None: forever).
        Directly on a store this polls every 0.2 s; through ``leasehold serve`` it follows the
        server's event stream."""
        import time

        ids, wanted = set(task_ids), set(kinds)
        if after is None:
            newest = self.store.events(None, 1)
            after = newest[-1].id if newest else 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            for event in self.store.events(None, None, after):
                after = event.id
                if (not ids or event.task_id in ids) and (not wanted or event.kind in wanted):
                    yield event
            time.sleep(0.2)

    # -- reads -----------------------------------------------------------------------------
    def status(self, task_id: str) -> Task | None:
        """The task and its lease, or None if unknown. Read-only."""
        validate_task_id(task_id)
        return self.store.get_task(task_id)

    def show(self, task_id: str) -> Task:
        """The task and its lease. Raises :class:`NotFound`."""
        task = self.status(task_id)
        if task is None:
            raise NotFound(f"Task {task_id} not found")
        return task

    def check(self, task_id: str, holder: Holder | str | None) -> Verdict:
        """The dispatch gate: BLOCKED when another holder (not ``holder``, ``actor:session``)
        has a valid lease.

        With ``holder`` None every valid lease blocks. Raises :class:`InvalidInput`.
        """
        if holder is not None:
            holder = Holder.parse(holder)
        task = self.status(task_id)
        now = self.store.now()
        if task is None or not task.lease_valid(now):
            return Verdict(True, task, None)
        if holder is not None and task.lease_actor == holder.actor and task.lease_session == holder.session:
            return Verdict(True, task, None)
        return Verdict(False, task, f"held by {task.lease_holder} until {format_ts(task.lease_until)}")

    def who(self, limit: int | None = None) -> list[tuple[str, list[Task]]]:
        """Valid leases grouped by holder, the most recently active holder first; at most
        ``limit`` holders (all when None)."""
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        return self.store.who(limit)

    #: The most leases one :meth:`lease_board` page holds.
    BOARD_PAGE_MAX = 1000

    def lease_board(self, limit: int = 100, offset: int = 0) -> tuple[list[Task], dict[str, int]]:
        """A page of the lease board (the dashboard's Now page): the recorded leases — valid
        ones, and those past their expiry that no sweep or new grant has cleared yet (check
        :meth:`Task.lease_valid`) — grouped by holder, the most recently active holder first
        (the newest ``updated_at`` among its leases), each holder's leases by acquisition time.
        ``limit``: 1 to :data:`BOARD_PAGE_MAX` leases, from ``offset`` (0 or more).

        Returns ``(tasks, counts)``; ``counts`` is ``{"leases", "expired", "holders"}`` over the
        whole board (not only the page), read in the same snapshot as the page. Raises
        :class:`InvalidInput` for a limit or offset out of range."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= self.BOARD_PAGE_MAX:
            raise InvalidInput(f"limit must be between 1 and {self.BOARD_PAGE_MAX}, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 2**62:
            raise InvalidInput(f"offset must be 0 or more, got {offset!r}")
        return self.store.lease_board(limit, offset)

    def leases_of(self, holder: Holder | str) -> list[Lease]:
        """The valid leases ``holder`` has now."""
        who = Holder.parse(holder)
        return [Lease(task) for task in self.store.leases_of(who.actor, who.session)]

    # -- agent sessions (the hooks) ----------------------------------------------------------
    def held_among(self, ids: Iterable[str]) -> list[Task]:
        """The dispatch gate's batched lookup: the tasks among ``ids`` that have a valid lease
        now, with their holders, in one store query. Strings that are not valid task ids and
        unknown ids are skipped; every distinct id goes into the one query."""
        wanted = [i for i in dict.fromkeys(ids) if is_task_id(i)]
        return self.store.held_among(wanted)

    def heartbeat_session(self, session: str) -> tuple[list[Task], list[PathReservation]]:
        """Extend every valid lease and file reservation whose holder's session is ``session``
        by its own TTL (fences unchanged); one ``extended`` / ``path_extended`` event each.
        Returns what was extended."""
        return self.store.session_heartbeat(validate_name(session, "session"))

    def release_session(self, session: str) -> tuple[list[Task], list[PathReservation]]:
        """Release every lease and file reservation whose holder's session is ``session``
        (session end); a task ``in_progress`` goes back to ``open``. Returns what was released."""
        return self.store.session_release(validate_name(session, "session"))

    def share(self, task_id: str, holder: Holder | str, sessions: Iterable[str]) -> Lease:
        """Let ``sessions`` (agent teammates: each has its own session id) work under the valid
        lease ``holder`` has on ``task_id``: the dispatch gate lets them through while every
        other session is still denied. A share lasts as long as this grant (same fence; a new
        grant drops it); one ``shared`` event. Raises :class:`InvalidInput` (no or malformed
        sessions), :class:`NotFound`, :class:`LeaseHeld`, :class:`NotHolder`,
        :class:`LeaseExpired`."""
        validate_task_id(task_id)
        who = Holder.parse(holder)
        names = [validate_name(s, "session") for s in sessions]
        if not names:
            raise InvalidInput("name at least one session to share the lease with")
        task, ok = self.store.share_lease(task_id, who.actor, who.session, names)
        if task is None:
            raise NotFound(f"Task {task_id} not found")
        if not ok:
            raise self._lease_error(task, who, None)
        return Lease(task)

    def shared_among(self, ids: Iterable[str]) -> dict[str, list[str]]:
        """Task id -> the sessions its current valid lease is shared with (one query)."""
        return self.store.shares_among([i for i in dict.fromkeys(ids) if is_task_id(i)])

    def release_session_count(self, session: str) -> tuple[int, int]:
        """:meth:`release_session` returning only ``(leases, file reservations)`` released:
        nothing is read back, so its cost is that of the set-based release itself (the
        session-end hook). Raises :class:`InvalidInput` for a malformed session."""
        return self.store.session_release_count(validate_name(session, "session"))

    def record_bypass(self, tasks: list[Task], by: Holder | str | None, details: dict[str, Any]) -> None:
        """Append ``bypass`` events (one per task, or one without a task) recording that the
        dispatch gate was overridden by ``by``; ``details`` (tool, prompt hash, how) go along."""
        self.store.record_bypass(tasks, *_by(by),
                                 details)

    def add(self, task_id: str, *, title: str | None = None, priority: int | None = None,
            by: Holder | str | None = None, op_id: str | None = None) -> tuple[Task, bool]:
        """Create a task (or update the title/priority of an existing one). Returns
        ``(task, created)``. ``priority``: a 32-bit signed integer, higher first (else
        :class:`InvalidInput`)."""
        validate_task_id(task_id)
        priority = _priority(priority)
        result, record = self._apply(op_id, ("add",), task_id, lambda op: self.store.add_task(
            task_id, title, priority, *_by(by), op=op),
            args={"title": title, "priority": priority, "by": _by(by)})
        if record is not None:
            return self._replayed(record)[0], bool(record["result"].get("created"))
        return result

    # -- the ready queue with dependencies -------------------------------------------------
    def _blocker_ids(self, task_id: str, blocked_by: str | list[str] | tuple[str, ...]) -> list[str]:
        if isinstance(blocked_by, str):
            blocked_by = blocked_by.split(",")
        ids = [b.strip() for b in blocked_by if b.strip()]
        if not ids:
            raise InvalidInput("--blocked-by needs at least one task id")
        for blocker in ids:
            validate_task_id(blocker)
            if blocker == task_id:
                raise InvalidInput(f"task {task_id} cannot be blocked by itself")
        return list(dict.fromkeys(ids))

    def _dependency_outcome(self, task_id: str, outcome: str, ids: list[str]) -> None:
        if outcome == "not_found":
            raise NotFound(f"Task {task_id} not found")
        if outcome == "missing":
            raise NotFound(f"blocker task(s) not found: {', '.join(ids)}; add them first")
        if outcome == "cycle":
            raise DependencyCycle(
                f"refused: {ids[1]} already waits (directly or through others) on {ids[0]}; "
                f"making {ids[0]} wait on {ids[1]} would close a cycle"
            )

    def add_blocked(self, task_id: str, blocked_by: str | list[str] | tuple[str, ...], *,
                    title: str | None = None, priority: int | None = None,
                    by: Holder | str | None = None,
                    op_id: str | None = None) -> tuple[Task, bool, list[str]]:
        """Create ``task_id`` (or update its title/priority) waiting on every task of
        ``blocked_by`` (ids, or a comma-separated string), in one transaction.

        Returns ``(task, created, added)`` (``added``: the dependencies that were new). Raises
        :class:`InvalidInput`, :class:`NotFound` (an unknown blocker: nothing is written),
        :class:`DependencyCycle`.
        """
        validate_task_id(task_id)
        ids = self._blocker_ids(task_id, blocked_by)
        priority = _priority(priority)
        result, record = self._apply(op_id, ("depend",), task_id, lambda op: self.store.add_dependencies(
            task_id, ids, *_by(by), create=True, title=title, priority=priority, op=op),
            args={"blocked_by": ids, "title": title, "priority": priority, "by": _by(by)})
        if record is not None:
            rec = record["result"]
            return self._replayed(record)[0], rec.get("outcome") == "created", list(rec.get("ids", []))
        outcome, task, added = result
        self._dependency_outcome(task_id, outcome, added)
        assert task is not None
        return task, outcome == "created", added

    def depend(self, task_id: str, blocked_by: str | list[str] | tuple[str, ...], *,
               by: Holder | str | None = None, op_id: str | None = None) -> tuple[Task, list[str]]:
        """Make the existing task ``task_id`` wait until every task of ``blocked_by`` is done.

        Returns ``(task, added)``. Raises :class:`NotFound` (the task or a blocker),
        :class:`DependencyCycle` (a blocker already waits on ``task_id``: nothing is written),
        :class:`InvalidInput`.
        """
        validate_task_id(task_id)
        ids = self._blocker_ids(task_id, blocked_by)
        result, record = self._apply(op_id, ("depend",), task_id, lambda op: self.store.add_dependencies(
            task_id, ids, *_by(by), op=op), args={"blocked_by": ids, "by": _by(by)})
        if record is not None:
            return self._replayed(record)[0], list(record["result"].get("ids", []))
        outcome, task, added = result
        self._dependency_outcome(task_id, outcome, added)
        assert task is not None
        return task, added

    def undepend(self, task_id: str, blocked_by: str | list[str] | tuple[str, ...], *,
                 by: Holder | str | None = None, op_id: str | None = None) -> tuple[Task, list[str]]:
        """Stop ``task_id`` waiting on ``blocked_by``. Returns ``(task, removed)``: removing a
        dependency that does not exist is not an error. Raises :class:`NotFound` for an
        unknown task."""
        validate_task_id(task_id)
        ids = self._blocker_ids(task_id, blocked_by)
        result, record = self._apply(op_id, ("undepend",), task_id, lambda op: self.store.remove_dependencies(
            task_id, ids, *_by(by), op=op), args={"blocked_by": ids, "by": _by(by)})
        if record is not None:
            return self._replayed(record)[0], list(record["result"].get("ids", []))
        outcome, task, removed = result
        self._dependency_outcome(task_id, outcome, removed)
        assert task is not None
        return task, removed

    def blockers(self, task_id: str) -> list[tuple[str, str]]:
        """``[(blocker_id, status)]`` that ``task_id`` waits on (done ones included)."""
        validate_task_id(task_id)
        return self.store.blockers_of(task_id)

    def ready(self, limit: int | None = None) -> list[Task]:
        """The ready queue: open tasks with no valid lease whose blockers are all done, highest
        priority first, then oldest. ``next`` claims from exactly this set."""
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        return self.store.ready_tasks(limit)

    def blocked(self) -> list[tuple[Task, list[tuple[str, str]]]]:
        """Tasks not done that wait on blockers not done: ``[(task, [(blocker, status)])]``."""
        return self.store.blocked_tasks()

    def reopen(self, task_id: str, by: Holder | str | None = None, *,
               op_id: str | None = None) -> Task:
        """Set a task's status back to ``open`` (e.g. a done task that needs more work).
        Raises :class:`NotFound`."""
        validate_task_id(task_id)
        task, record = self._apply(op_id, ("reopened",), task_id, lambda op: self.store.set_status(
            task_id, "open", *_by(by), "reopened", op=op), args={"by": _by(by)})
        if record is not None:
            return self._replayed(record)[0]
        if task is None:
            raise NotFound(f"Task {task_id} not found")
        return task

    def tasks(self, *, status: str | None = None, held: bool | None = None,
              limit: int | None = None) -> list[Task]:
        """Tasks by priority then age; ``status`` filters; ``held`` True keeps validly held
        tasks, False the available ones (not done, no valid lease); at most ``limit``."""
        return list(self.iter_tasks(status=status, held=held, limit=limit))

    def iter_tasks(self, *, status: str | None = None, held: bool | None = None,
                   limit: int | None = None) -> Iterator[Task]:
        """:meth:`tasks`, streamed from the store one at a time (flat memory for any size)."""
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        if held is None:
            return self.store.iter_tasks(status=status, limit=limit)
        return self._filtered(self.store.iter_tasks(held=held, limit=None if status else limit),
                              status, limit)

    #: The most tasks one :meth:`tasks_page` returns.
    TASKS_PAGE_MAX = 1000

    def tasks_page(self, *, status: str | None = None, held: bool | None = None,
                   after: tuple[int, float, str] | None = None, limit: int = 500) -> list[Task]:
        """One page of :meth:`iter_tasks` (same order and filters): up to ``limit`` tasks
        (1 to :data:`TASKS_PAGE_MAX`) after the cursor ``after`` — the ``(priority,
        created_at, id)`` of the previous page's last task, None for the first page. Pages
        are read independently (keyset paging: a task changed between pages may be seen twice
        or missed, never torn). Raises :class:`InvalidInput` for a bad limit or status."""
        if not 1 <= limit <= self.TASKS_PAGE_MAX:
            raise InvalidInput(f"limit must be between 1 and {self.TASKS_PAGE_MAX}, got {limit}")
        if status is not None and status not in ("open", "in_progress", "done"):
            raise InvalidInput(f"status must be open, in_progress or done, got {status!r}")
        return self.store.tasks_page(status, held, after, limit)

    @staticmethod
    def _filtered(tasks: Iterator[Task], status: str | None, limit: int | None) -> Iterator[Task]:
        count = 0
        for task in tasks:
            if status is not None and task.status != status:
                continue
            yield task
            count += 1
            if limit is not None and count >= limit:
                return

    def iter_events(self, task_id: str | None = None, limit: int | None = None,
                    after: int = 0) -> Iterator[Event]:
        """:meth:`events`, streamed (without ``limit``: every event, one row at a time)."""
        if task_id is not None:
            validate_task_id(task_id)
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        return self.store.iter_events(task_id, limit, after)

    def events(self, task_id: str | None = None, limit: int | None = None,
               after: int = 0) -> list[Event]:
        """Events oldest first: the newest ``limit`` of them (all when None), ids > ``after``."""
        if task_id is not None:
            validate_task_id(task_id)
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        return self.store.events(task_id, limit, after)

    # -- holding with a heartbeat ----------------------------------------------------------
    def hold(self, task_id: str, holder: Holder | str, ttl: TTL = None, *,
             on_lost: Callable[[Lease], None] | None = None,
             interval: float | None = None, complete: bool = False) -> _Hold:
        """Claim ``task_id`` and keep the lease alive from a background thread until the
        block ends::

            with ledger.hold("99927", "john:abc123", ttl="30s") as lease:
                work(lease.fence)          # check lease.lost at safe points

        The heartbeat extends every ``interval`` seconds (default TTL/3). The moment an extend
        fails for good (another holder, expiry, or store trouble lasting until the lease's own
        expiry) it sets ``lease.lost`` and ``lease.lost_reason`` and calls ``on_lost(lease)``
        from the heartbeat thread: stop working on the protected resource then.

        On exit the lease is released (or completed when ``complete`` and the block raised
        nothing), unless it was lost. Raises what :meth:`claim` raises.
        """
        return _Hold(self, task_id, holder, ttl, on_lost, interval, complete)


class _Hold:
    """The context manager behind :meth:`Ledger.hold`."""

    def __init__(self, ledger: Ledger, task_id: str, holder: Holder | str, ttl: TTL,
                 on_lost: Callable[[Lease], None] | None, interval: float | None,
                 complete: bool) -> None:
        self.ledger = ledger
        self.task_id = task_id
        self.holder = Holder.parse(holder)
        self.ttl = ledger.ttl_seconds(ttl)
        self.on_lost = on_lost
        self.interval = interval if interval is not None else self.ttl / 3
        self.complete = complete
        self.lease: Lease | None = None

    def __enter__(self) -> Lease:
        import threading
        import time

        started = time.monotonic()
        self.lease = self.ledger.claim(self.task_id, self.holder, self.ttl)
        self._deadline = started + self.ttl
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"leasehold-heartbeat-{self.task_id}",
                                        daemon=True)
        self._thread.start()
        return self.lease

    def _lost(self, lease: Lease, reason: str) -> None:
        lease.lost = True
        lease.lost_reason = reason
        if self.on_lost is not None:
            self.on_lost(lease)

    def _beat(self) -> None:
        import time

        lease = self.lease
        assert lease is not None
        store = None
        wait = self.interval
        try:
            while not self._stop.wait(wait):
                started = time.monotonic()
                try:
                    if store is None:
                        store = self.ledger.store.clone()
                    task, ok = store.extend(self.task_id, self.holder.actor, self.holder.session,
                                            self.ttl, lease.fence)
                except (StoreError, OutcomeUnknown) as exc:
                    # OutcomeUnknown: an extend whose commit answer was lost; extending again
                    # is harmless (same holder, same fence).
                    if time.monotonic() >= self._deadline:
                        self._lost(lease, f"could not extend the lease before it expired: {exc}")
                        return
                    if store is not None:
                        try:
                            store.close()
                        except Exception:
                            pass
                        store = None
                    wait = min(self.interval, max(0.05, (self._deadline - time.monotonic()) / 4))
                    continue
                if ok and task is not None:
                    lease.task = task
                    self._deadline = started + self.ttl
                    wait = self.interval
                    continue
                error = self.ledger._lease_error(task, self.holder, lease.fence) if task else NotFound(
                    f"Task {self.task_id} not found")
                self._lost(lease, str(error))
                return
        finally:
            if store is not None:
                store.close()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._stop.set()
        self._thread.join()
        lease = self.lease
        if lease is None or lease.lost:
            return
        if self.complete and exc_type is None:
            self.ledger.complete(self.task_id, self.holder)
        else:
            self.ledger.release(self.task_id, self.holder)
