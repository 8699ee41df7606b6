"""The API's handlers: one thin function per operation of :data:`leasehold.wire.OPS`, each a
call of the domain (:class:`~leasehold.ledger.Ledger`, :mod:`leasehold.paths`,
:mod:`leasehold.tokens`) and the encoding of its result. No policy lives here beyond who may
call what (:func:`authorize`)."""

from __future__ import annotations

from leasehold import wire
from leasehold.errors import InvalidInput, LeaseholdError, NotFound
from leasehold.model import Holder
from leasehold.tokens import RANK

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.ledger import Ledger, ReleaseResult


class Forbidden(LeaseholdError):
    """Permission denied: the token may not do this."""

    exit_code = 77


class Principal:
    """Who calls: the token's ``actor`` (None only in anonymous mode), ``role``, ``token_id``."""

    __slots__ = ("actor", "role", "token_id")

    def __init__(self, actor: str | None, role: str, token_id: str | None) -> None:
        self.actor = actor
        self.role = role
        self.token_id = token_id


def authorize(principal: Principal, op: str, role: str, args: dict[str, Any]) -> None:
    """Raise :class:`Forbidden` when ``principal`` may not run ``op`` with ``args``: a role
    below ``role``, or a change whose ``holder`` / ``by`` names another actor than the
    token's. Reads (:data:`leasehold.wire.READS`) may name any holder: ``check T --holder
    bob:s1`` or ``leases_of`` another actor only reads what every token may read."""
    if RANK[principal.role] < RANK[role]:
        article = "an" if principal.role[0] in "aeiou" else "a"
        raise Forbidden(f"{article} {principal.role} token may not {op.replace('_', ' ')} (needs {role})")
    if principal.actor is None or op in wire.READS:
        return
    for key in ("holder", "by"):
        value = args.get(key)
        if value is None:
            continue
        who = Holder.parse(value)
        if who.actor != principal.actor:
            raise Forbidden(f"this token acts as {principal.actor!r}, not as {who.actor!r}")


class Call:
    """One request's context: the ``ledger``, the ``principal``, the ``service``."""

    __slots__ = ("ledger", "principal", "service", "op_id")

    def __init__(self, ledger: Ledger, principal: Principal, service: Any, op_id: str | None = None) -> None:
        self.ledger = ledger
        self.principal = principal
        self.service = service
        #: The client's operation id (header ``Leasehold-Op-Id``): a retry with the same id
        #: replays the recorded outcome instead of applying twice.
        self.op_id = op_id

    def by(self, by: str | None, session: str = "api") -> str | None:
        """``by`` as given, else the token's actor with session ``api`` (who acted is recorded)."""
        if by is not None or self.principal.actor is None:
            return by
        return f"{self.principal.actor}:{session}"

    def own_session(self, session: str) -> None:
        """Refuse a session-wide operation on a session whose leases belong to another actor."""
        actor = self.principal.actor
        if actor is None:
            return
        from leasehold import paths

        others = {t.lease_actor for t in self.ledger.store.active_leases() if t.lease_session == session}
        others |= {r.actor for r in paths.active(self.ledger) if r.session == session}
        others.discard(actor)
        if others:
            raise Forbidden(f"session {session!r} holds leases of another actor; "
                            f"this token acts as {actor!r}")


T = wire.task_out


def _release(result: ReleaseResult) -> dict[str, Any]:
    return {"released": result.released, "task": T(result.task), "message": result.message}


def _lease(lease: Any) -> dict[str, Any] | None:
    return T(lease.task)


def whoami(c: Call) -> dict[str, Any]:
    p = c.principal
    return {"actor": p.actor, "role": p.role, "token_id": p.token_id}


def now(c: Call) -> float:
    return c.ledger.now()


def claim(c: Call, task_id: str, holder: str, ttl: float | None = None, title: str | None = None,
          priority: int | None = None, wait: float | None = None,
          share_with: list[str] | None = None) -> Any:
    return _lease(c.ledger.claim(task_id, holder, ttl, title=title, priority=priority, op_id=c.op_id,
                                 share_with=[str(s) for s in share_with or ()]))


async def claim_waiting(service: Any, task_id: str, holder: str, wait: float, ttl: float | None = None,
                        title: str | None = None, priority: int | None = None, op_id: str | None = None,
                        share_with: list[str] | None = None) -> Any:
    """``claim`` with ``wait`` seconds: FIFO per task, woken by changes (server/waits.py).
    Returns the answer and a function that undoes the grant (the client went away)."""
    from leasehold.server.waits import claim_wait

    lease, undo = await claim_wait(service.changes, service.ledger, task_id, holder, ttl, _wait(wait),
                                   title=title, priority=priority, op_id=op_id,
                                   share_with=[str(s) for s in share_with or ()])
    return _lease(lease), undo


def _wait(wait: float) -> float:
    if not 0 < wait <= 86400:
        raise InvalidInput(f"wait must be between 0 and 86400 seconds, got {wait}")
    return float(wait)


def extend(c: Call, task_id: str, holder: str, ttl: float | None = None, fence: int | None = None) -> Any:
    return _lease(c.ledger.extend(task_id, holder, ttl, fence, op_id=c.op_id))


def release(c: Call, task_id: str, holder: str, keep_status: bool = False) -> Any:
    return _release(c.ledger.release(task_id, holder, keep_status=keep_status, op_id=c.op_id))


def force_release(c: Call, task_id: str, reason: str, by: str | None = None) -> Any:
    return _release(c.ledger.force_release(task_id, reason, c.by(by), op_id=c.op_id))


def complete(c: Call, task_id: str, holder: str, fence: int | None = None) -> Any:
    return T(c.ledger.complete(task_id, holder, fence, op_id=c.op_id))


def complete_many(c: Call, task_ids: list[str], holder: str) -> Any:
    return [T(t) for t in c.ledger.complete_many([str(i) for i in task_ids], holder, op_id=c.op_id)]


def next_(c: Call, holder: str, ttl: float | None = None, count: int = 1, wait: float | None = None) -> Any:
    return [_lease(lease) for lease in c.ledger.next(holder, ttl, count, op_id=c.op_id)]


async def next_waiting(service: Any, holder: str, wait: float, ttl: float | None = None, count: int = 1,
                       op_id: str | None = None) -> Any:
    """``next`` with ``wait`` seconds (FIFO among ``next`` waiters). Returns the answer and a
    function that undoes the grants (the client went away)."""
    from leasehold.server.waits import next_wait

    if count < 1:
        raise InvalidInput(f"count must be at least 1, got {count}")
    leases, undo = await next_wait(service.changes, service.ledger, holder, ttl, count, _wait(wait), op_id)
    return [_lease(lease) for lease in leases], undo


def sweep(c: Call, auto_release: bool = False) -> Any:
    return [T(t) for t in c.ledger.sweep(auto_release, op_id=c.op_id)]


def status(c: Call, task_id: str) -> Any:
    return T(c.ledger.status(task_id))


def show(c: Call, task_id: str) -> Any:
    return T(c.ledger.show(task_id))


def check(c: Call, task_id: str, holder: str | None = None) -> Any:
    verdict = c.ledger.check(task_id, holder)
    return {"clear": verdict.clear, "task": T(verdict.task), "reason": verdict.reason}


def who(c: Call, limit: int | None = None) -> Any:
    return [[holder, [T(t) for t in tasks]] for holder, tasks in c.ledger.who(limit)]


def leases_of(c: Call, holder: str) -> Any:
    return [_lease(lease) for lease in c.ledger.leases_of(holder)]


def lease_board(c: Call, limit: int = 100, offset: int = 0) -> Any:
    tasks, counts = c.ledger.lease_board(limit, offset)
    return {"tasks": [T(t) for t in tasks], "counts": counts}


def held_among(c: Call, ids: list[str]) -> Any:
    return [T(t) for t in c.ledger.held_among([str(i) for i in ids])]


def add(c: Call, task_id: str, title: str | None = None, priority: int | None = None,
        by: str | None = None) -> Any:
    task, created = c.ledger.add(task_id, title=title, priority=priority, by=c.by(by), op_id=c.op_id)
    return {"task": T(task), "created": created}


def add_blocked(c: Call, task_id: str, blocked_by: list[str], title: str | None = None,
                priority: int | None = None, by: str | None = None) -> Any:
    task, created, added = c.ledger.add_blocked(task_id, [str(b) for b in blocked_by], title=title,
                                                priority=priority, by=c.by(by), op_id=c.op_id)
    return {"task": T(task), "created": created, "added": added}


def depend(c: Call, task_id: str, blocked_by: list[str], by: str | None = None) -> Any:
    task, added = c.ledger.depend(task_id, [str(b) for b in blocked_by], by=c.by(by), op_id=c.op_id)
    return {"task": T(task), "added": added}


def undepend(c: Call, task_id: str, blocked_by: list[str], by: str | None = None) -> Any:
    task, removed = c.ledger.undepend(task_id, [str(b) for b in blocked_by], by=c.by(by), op_id=c.op_id)
    return {"task": T(task), "removed": removed}


def blockers(c: Call, task_id: str) -> Any:
    return [list(pair) for pair in c.ledger.blockers(task_id)]


def ready(c: Call, limit: int | None = None) -> Any:
    return [T(t) for t in c.ledger.ready(limit)]


def blocked(c: Call) -> Any:
    return [[T(task), [list(pair) for pair in pairs]] for task, pairs in c.ledger.blocked()]


def reopen(c: Call, task_id: str, by: str | None = None) -> Any:
    return T(c.ledger.reopen(task_id, by=c.by(by), op_id=c.op_id))


def tasks(c: Call, status: str | None = None, held: bool | None = None, limit: int | None = None) -> Any:
    if status is not None and status not in ("open", "in_progress", "done"):
        raise InvalidInput(f"status must be open, in_progress or done, got {status!r}")
    return [T(t) for t in c.ledger.tasks(status=status, held=held, limit=limit)]


def tasks_page(c: Call, status: str | None = None, held: bool | None = None, after_priority: int | None = None,
               after_created: float | None = None, after_id: str | None = None, page: int | None = None) -> Any:
    """One page of ``list`` (:meth:`Ledger.tasks_page`): the cursor is the previous page's
    last task (all three ``after_*`` or none)."""
    cursor = (after_priority, after_created, after_id)
    if any(part is None for part in cursor) and any(part is not None for part in cursor):
        raise InvalidInput("after_priority, after_created and after_id go together")
    after = None if after_id is None else (int(after_priority), float(after_created), str(after_id))  # type: ignore[arg-type]
    return [T(t) for t in c.ledger.tasks_page(status=status, held=held, after=after,
                                               limit=500 if page is None else page)]


def events(c: Call, task_id: str | None = None, limit: int | None = None, after: int | None = None) -> Any:
    return [wire.event_out(e) for e in c.ledger.events(task_id, limit, after or 0)]


#: The most events one ``events_page`` answer carries.
EVENTS_PAGE_MAX = 1000


def events_page(c: Call, task_id: str | None = None, after: int | None = None, page: int | None = None) -> Any:
    """The oldest ``page`` events (at most :data:`EVENTS_PAGE_MAX`) with id > ``after``, oldest
    first: the remote ``iter_events`` walks the whole log with it, a page at a time."""
    import itertools

    size = EVENTS_PAGE_MAX if page is None else page
    if not 1 <= size <= EVENTS_PAGE_MAX:
        raise InvalidInput(f"page must be between 1 and {EVENTS_PAGE_MAX}, got {size}")
    stream = c.ledger.iter_events(task_id, None, after or 0)
    try:
        return [wire.event_out(e) for e in itertools.islice(stream, size)]
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def heartbeat_session(c: Call, session: str) -> Any:
    c.own_session(session)
    leases, reservations = c.ledger.heartbeat_session(session)
    return {"tasks": [T(t) for t in leases], "paths": [wire.path_out(r) for r in reservations]}


def release_session(c: Call, session: str) -> Any:
    c.own_session(session)
    leases, reservations = c.ledger.release_session(session)
    return {"tasks": [T(t) for t in leases], "paths": [wire.path_out(r) for r in reservations]}


def release_session_count(c: Call, session: str) -> Any:
    c.own_session(session)
    return list(c.ledger.release_session_count(session))


def share(c: Call, task_id: str, holder: str, sessions: list[str]) -> Any:
    return _lease(c.ledger.share(task_id, holder, [str(s) for s in sessions]))


def shared_among(c: Call, ids: list[str]) -> Any:
    return c.ledger.shared_among([str(i) for i in ids])


def record_bypass(c: Call, task_ids: list[str], details: dict[str, Any], by: str | None = None) -> Any:
    found = [t for t in (c.ledger.status(str(i)) for i in task_ids) if t is not None]
    c.ledger.record_bypass(found, c.by(by), details)
    return {"recorded": max(1, len(found))}


def reserve_paths(c: Call, patterns: list[str], holder: str, ttl: float | None = None,
                  shared: bool = False, reason: str | None = None) -> Any:
    from leasehold import paths

    granted = paths.reserve(c.ledger, [str(p) for p in patterns], holder, ttl, shared=shared, reason=reason,
                            op_id=c.op_id)
    return [wire.path_out(r) for r in granted]


def release_paths(c: Call, patterns: list[str], holder: str) -> Any:
    from leasehold import paths

    released = paths.release(c.ledger, [str(p) for p in patterns], holder, op_id=c.op_id)
    return [[pattern, wire.path_out(r)] for pattern, r in released]


def active_paths(c: Call) -> Any:
    from leasehold import paths

    return [wire.path_out(r) for r in paths.active(c.ledger)]


def sweep_paths(c: Call, auto_release: bool = False) -> Any:
    from leasehold import paths

    return [wire.path_out(r) for r in paths.sweep(c.ledger, auto_release)]


def force_release_paths(c: Call, patterns: list[str], reason: str, by: str | None = None) -> Any:
    from leasehold import paths

    cleared = paths.force_release(c.ledger, [str(p) for p in patterns], reason, c.by(by), op_id=c.op_id)
    return [[pattern, [wire.path_out(r) for r in found]] for pattern, found in cleared]


def exclusive_paths_not_of_session(c: Call, session: str) -> Any:
    return [wire.path_out(r) for r in c.ledger.store.exclusive_paths_not_of_session(session)]


def token_create(c: Call, actor: str, role: str = "agent", expires: float | None = None) -> Any:
    by = Holder(c.principal.actor, "api") if c.principal.actor else None
    info, token = c.ledger.tokens.create(actor, role, expires, by=by)
    return {"info": info.to_wire(), "token": token}


def token_list(c: Call) -> Any:
    return [t.to_wire() for t in c.ledger.tokens.list()]


def token_revoke(c: Call, token_id: str) -> Any:
    by = Holder(c.principal.actor, "api") if c.principal.actor else None
    info, revoked = c.ledger.tokens.revoke(token_id, by=by)
    forget = getattr(c.service, "forget_token", None)
    if forget is not None:
        forget(info.id)
    return {"info": info.to_wire(), "revoked": revoked}


def op(c: Call, operation_id: str) -> Any:
    op_id = operation_id
    lookup = getattr(c.ledger, "lookup_op", None)
    if lookup is None:
        raise NotFound("this ledger does not record operation ids yet")
    found = lookup(op_id)
    if found is None:
        raise NotFound(f"operation {op_id} not found: no call with that id applied")
    return {name: getattr(found, name) for name in found.__slots__}


# -- tickets and the feed ------------------------------------------------------------------------
S = wire.slots_out


def _post_id(post_id: str) -> int:
    try:
        return int(post_id)
    except ValueError:
        raise InvalidInput(f"post id must be a number, got {post_id!r}") from None


def ns_add(c: Call, prefix: str, format: str | None = None, lane: str | None = None,
           by: str | None = None) -> Any:
    namespace, created = c.ledger.tickets.add_namespace(prefix, format, lane, c.by(by))
    return {"namespace": S(namespace), "created": created}


def ns_list(c: Call) -> Any:
    return [[S(ns), counts] for ns, counts in c.ledger.tickets.namespaces()]


def ns_get(c: Call, prefix: str) -> Any:
    return S(c.ledger.tickets.namespace(prefix))


def reserve(c: Call, prefix: str, holder: str, count: int = 1) -> Any:
    return [S(r) for r in c.ledger.tickets.reserve(prefix, holder, count, op_id=c.op_id)]


def reservation(c: Call, ticket_id: str) -> Any:
    return S(c.ledger.tickets.reservation(ticket_id))


def abandon(c: Call, ticket_id: str, by: str, reason: str | None = None, force: bool = False) -> Any:
    if force and c.principal.role != "admin":
        raise Forbidden(f"an {c.principal.role} token may not abandon with force (needs admin)")
    res, changed = c.ledger.tickets.abandon(ticket_id, by, reason, force)
    return {"reservation": S(res), "changed": changed}


def feed_post(c: Call, kind: str, subject: str, holder: str, **fields: Any) -> Any:
    return S(c.ledger.feed.post(kind, subject, holder, op_id=c.op_id, **fields))


def feed_amend(c: Call, post_id: str, holder: str, **fields: Any) -> Any:
    return S(c.ledger.feed.amend(_post_id(post_id), holder, op_id=c.op_id, **fields))


def feed_confirm(c: Call, post_id: str, holder: str, prefix: str | None = None) -> Any:
    result = c.ledger.feed.confirm(_post_id(post_id), holder, prefix, op_id=c.op_id)
    return {"item": result.item, "post": S(result.post), "winner": S(result.winner),
            "confirmed": S(result.confirmed), "renumbered": result.renumbered,
            "already": result.already, "message": result.message}


def feed_import(c: Call, lines: list[str], by: str, source: str = "input") -> Any:
    feed = c.ledger.feed
    result = feed.import_posts(feed.parse_import([str(line) for line in lines], source), by)
    return {"posts": [S(p) for p in result.posts], "skipped": result.skipped}


def feed_get(c: Call, post_id: str) -> Any:
    return S(c.ledger.feed.get(_post_id(post_id)))


def feed_posts(c: Call, **filters: Any) -> Any:
    return [S(p) for p in c.ledger.feed.posts(**filters)]


def feed_page(c: Call, since: float | None = None, kind: str | None = None, after_ts: float | None = None,
              after_id: int | None = None, page: int | None = None) -> Any:
    """One page of ``feed list --all`` (:meth:`Feed.posts_page`): the cursor is the previous
    page's last post (``after_ts`` and ``after_id`` together, or neither)."""
    if (after_ts is None) != (after_id is None):
        raise InvalidInput("after_ts and after_id go together")
    after = None if after_ts is None else (float(after_ts), int(after_id))  # type: ignore[arg-type]
    return [S(p) for p in c.ledger.feed.posts_page(since=since, kind=kind, after=after,
                                                    limit=500 if page is None else page)]


def feed_last(c: Call, count: int) -> Any:
    return [S(p) for p in c.ledger.feed.last(count)]


def feed_after(c: Call, post_id: int, limit: int | None = None) -> Any:
    return [S(p) for p in c.ledger.feed.after(post_id, limit)]


def feed_queue(c: Call, limit: int | None = None, state: str | None = None, item: str | None = None) -> Any:
    return c.ledger.feed.queue(limit, state, item)


def feed_drift(c: Call) -> Any:
    return c.ledger.feed.drift()


HANDLERS = {name: globals()[name if name != "next" else "next_"] for name in wire.OPS}
#: Operations that block (``wait``): run on the event loop, holding no worker thread.
WAITING: dict[str, Any] = {"claim": claim_waiting, "next": next_waiting}
