"""Store operations for ticket namespaces, reservations and the feed (named queries in
``sql/tickets.sql``; PostgreSQL row-lock overrides in ``sql/postgres/tickets.sql``).

Reads are plain methods. Writes that need a decision in the middle (the duplicate guard, the
first-post-wins tie-break, the next free number) run through :meth:`TicketsSQL.ticket_tx`: one
write transaction in which the domain (:mod:`leasehold.tickets`, :mod:`leasehold.feed`) calls the
primitives of :class:`TicketTx`. Everything it does commits together, with its events, or not at
all. Race-freedom: SQLite's ``BEGIN IMMEDIATE`` serialises writers; on PostgreSQL the
``lock_namespace`` and ``lock_task`` row locks serialise reservers of one namespace and posters
of one item, and the unique constraints on ``reservations`` are the last word either way.
"""

from __future__ import annotations

from leasehold.model import Namespace, Post, Reservation, Task

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from typing import Any

    from leasehold.store.sqlbase import SQLStore, Tx


def _holder(actor: str | None, session: str | None) -> str | None:
    return None if actor is None else f"{actor}:{session}"


class TicketTx:
    """The primitives of one ticket/feed write transaction (see :meth:`TicketsSQL.ticket_tx`).

    ``now`` is the transaction's instant (UTC seconds, the store's clock), read after the locks
    taken so far (the namespace's row, a task's row): a reservation's period and time are never
    decided before a lock wait.
    """

    def __init__(self, store: SQLStore, tx: Tx) -> None:
        self.store = store
        self.tx = tx
        #: Items whose reduced state this transaction's posts may have changed (the post's item
        #: and, for a renumbering, the item it left), each with the id of the (last) post that
        #: touched it: the feed refreshes them before commit.
        self.touched: dict[str, int] = {}

    @property
    def now(self) -> float:
        return self.tx.now

    def record_op(self, kind: str, task_id: str | None, actor: str | None, session: str | None,
                  result: dict[str, Any]) -> None:
        """Record the transaction's operation id (nothing without one) with ``result``. Raises
        :class:`~leasehold.errors.OpRecorded` when the id is already recorded."""
        self.tx.record_op(self.tx.op, kind, task_id, actor, session, result)

    # -- namespaces and reservations --------------------------------------------------------
    def ensure_namespace(self, prefix: str, default_format: str, actor: str | None,
                         session: str | None) -> tuple[Namespace, bool]:
        """Lock namespace ``prefix``, creating it with ``default_format`` if unknown.
        Returns ``(namespace, created)``."""
        tx = self.tx
        created = tx.run("insert_namespace", prefix=prefix, format=default_format, lane_actor=None,
                         created_by=_holder(actor, session)) == 1
        if created:
            tx.event("namespace_added", None, actor, session, None, prefix=prefix,
                     format=default_format, lane=None, implicit=True)
        namespace = Namespace.from_row(tx.one("lock_namespace", prefix=prefix))
        tx.after_locks()
        return namespace, created

    def namespaces(self) -> dict[str, Namespace]:
        """Every namespace, by prefix."""
        return {row["prefix"]: Namespace.from_row(row) for row in self.tx.all("list_namespaces")}

    def last_seq(self, prefix: str, period: str) -> int:
        """The highest ``seq`` ever reserved in ``(prefix, period)`` (abandoned ones count), or 0."""
        return int(self.tx.one("last_seq", prefix=prefix, period=period)["last"])

    def ticket_in_use(self, ticket_id: str) -> bool:
        """True when ``ticket_id`` is already a reservation, a task or a post's item."""
        return self.tx.one("ticket_in_use", ticket_id=ticket_id) is not None

    def insert_reservation(self, prefix: str, period: str, seq: int, ticket_id: str, actor: str,
                           session: str, **details: Any) -> Reservation:
        """Record the reservation (the unique constraints refuse a duplicate) and its event."""
        row = self.tx.one("insert_reservation", ticket_id=ticket_id, prefix=prefix, period=period,
                          seq=seq, actor=actor, session=session)
        self.tx.event("reserved", ticket_id, actor, session, None, prefix=prefix,
                      period=period or None, seq=seq, **details)
        return Reservation.from_row(row)

    # -- tasks ------------------------------------------------------------------------------
    def open_task(self, task_id: str, title: str | None, actor: str | None,
                  session: str | None) -> tuple[Task, bool]:
        """Create the task ``task_id`` if it is unknown (the lease ledger's own ``insert_task``),
        then lock it. Returns ``(task, created)``."""
        created = self.store._create(self.tx, task_id, title, None, actor, session)
        return Task.from_row(self.tx.one("lock_task", id=task_id)), created

    def reopen_task(self, task: Task, actor: str | None, session: str | None, **details: Any) -> None:
        """Set a (locked) task's status back to ``open``, with a ``reopened`` event."""
        self.tx.run("update_task_meta", id=task.id, title=None, priority=None, status="open")
        self.tx.event("reopened", task.id, actor, session, task.fence, status="open",
                      previous_status=task.status, **details)

    # -- posts ------------------------------------------------------------------------------
    def get_post(self, post_id: int) -> Post | None:
        row = self.tx.one("get_post", id=post_id)
        return Post.from_row(row) if row else None

    def posts_for_item(self, item: str) -> list[Post]:
        """Every post about ``item``: posts naming it, the originals its amendments refer to, and
        the amendments/confirmations of those (oldest id first)."""
        return [Post.from_row(row) for row in self.tx.all("posts_for_item", item=item)]

    def insert_post(self, *, seat: str, kind: str, subject: str, item: str | None = None,
                    body: str = "", ts: float | None = None, refs: int | None = None,
                    flags: tuple[str, ...] | list[str] = (), origin: str = "local",
                    proof_kind: str | None = None, proof: str | None = None,
                    import_key: str | None = None, actor: str | None = None,
                    session: str | None = None, details: dict[str, Any] | None = None) -> Post | None:
        """Append a post and its ``posted`` event. ``ts`` defaults to now. Returns None (and
        appends nothing) when ``import_key`` was already imported."""
        from leasehold.store.sqlbase import encode_details

        tx = self.tx
        if import_key is not None and tx.one("post_imported", import_key=import_key) is not None:
            # Already imported: append nothing, and draw no id (a skipped INSERT ... ON CONFLICT
            # still advances SQLite's AUTOINCREMENT and a PostgreSQL identity; verify reads ids
            # drawn but missing on SQLite as a deleted tail). ON CONFLICT stays for a race.
            return None
        if self.store.dialect == "postgres":
            # Take the post's chain locks before the INSERT draws its id (the column default):
            # then ids follow the chain's order and stay dense. The chain trigger takes them
            # again (held already) and draws a new id only if this one is not above the chain.
            if item is not None:
                tx.run("lock_post_item", item=item)
            tx.run("lock_post_chain", item=item)
        row = tx.one(
            "insert_post", ts=tx.now if ts is None else ts, seat=seat, actor=actor,
            session=session, kind=kind, item=item, subject=subject, body=body, refs=refs,
            flags=" ".join(flags), origin=origin, proof_kind=proof_kind, proof=proof,
            import_key=import_key,
            details=encode_details(details or {}),
        )
        if row is None:
            return None
        post = Post.from_row(row)
        if item is not None:
            self.touched[item] = post.id
        if post.details.get("renumbered_from"):
            self.touched[str(post.details["renumbered_from"])] = post.id
        extra: dict[str, Any] = {"post": post.id, "post_kind": kind, "seat": seat, "origin": origin}
        if refs is not None:
            extra["refs"] = refs
        if flags:
            extra["flags"] = list(flags)
        if proof_kind:
            extra["proof_kind"] = proof_kind
        if post.details.get("renumbered_from"):
            extra["renumbered_from"] = post.details["renumbered_from"]
        tx.event("posted", item, actor, session, None, **extra)
        return post


    # -- the feed's per-item state (feed_items) ---------------------------------------------
    def put_feed_item(self, item: str, row: dict[str, Any] | None) -> None:
        """Store ``item``'s reduced state (``row``: the feed_items columns), or remove it
        (None: no post gives the item a state). ``item`` must be one this transaction's posts
        touched (:attr:`touched`): on PostgreSQL the write names that post, and is refused
        without it (migration 0013)."""
        post = self.touched.get(item)
        if row is None:
            self.tx.run("feed_item_delete", item=item, by_post=post)
        else:
            self.tx.run("feed_item_upsert", item=item, by_post=post, **row)

    def replace_feed_items(self, rows: dict[str, dict[str, Any]]) -> None:
        """Replace every feed_items row (the one-time rebuild) and mark the state rebuilt."""
        self.tx.run("feed_items_clear")
        for item, row in rows.items():
            self.tx.run("feed_item_upsert", item=item, by_post=None, **row)
        self.tx.run("feed_state_rebuilt")

    def all_posts(self) -> list[Post]:
        return [Post.from_row(row) for row in self.tx.all("posts_all")]


class TicketsSQL:
    """Mixin of :class:`~leasehold.store.sqlbase.SQLStore`: namespaces, reservations, feed."""

    if TYPE_CHECKING:
        def _write(self, op: str | None = None) -> AbstractContextManager[Tx]: ...
        def _read(self) -> AbstractContextManager[Tx]: ...
        def _limit(self, limit: int) -> int | None: ...

    def ticket_tx(self, op: str | None = None) -> _TicketTransaction:
        """One write transaction over the ticket/feed primitives; commits on normal exit, rolls
        back (changing nothing, appending no event) if the block raises. ``op``: the operation
        id the block records (:meth:`TicketTx.record_op`); a lost acknowledgement of the commit
        is resolved by looking it up."""
        return _TicketTransaction(self, op)  # type: ignore[arg-type]

    # -- namespaces -------------------------------------------------------------------------
    def add_namespace(self, prefix: str, fmt: str, lane_actor: str | None, actor: str | None,
                      session: str | None) -> tuple[Namespace, bool]:
        """Create namespace ``prefix``; an existing one is returned unchanged.
        Returns ``(namespace, created)``."""
        with self._write() as tx:
            created = tx.run("insert_namespace", prefix=prefix, format=fmt, lane_actor=lane_actor,
                             created_by=_holder(actor, session)) == 1
            if created:
                tx.event("namespace_added", None, actor, session, None, prefix=prefix, format=fmt,
                         lane=lane_actor)
            return Namespace.from_row(tx.one("get_namespace", prefix=prefix)), created

    def get_namespace(self, prefix: str) -> Namespace | None:
        with self._read() as tx:
            row = tx.one("get_namespace", prefix=prefix)
        return Namespace.from_row(row) if row else None

    def list_namespaces(self) -> list[tuple[Namespace, dict[str, Any]]]:
        """Namespaces by prefix, each with ``{"reserved", "abandoned", "last_ticket"}``."""
        with self._read() as tx:
            rows = tx.all("list_namespaces")
        return [(Namespace.from_row(row), {"reserved": int(row["reserved"]),
                                           "abandoned": int(row["abandoned"]),
                                           "last_ticket": row["last_ticket"]}) for row in rows]

    def last_seqs(self, periods: dict[str, str]) -> dict[str, int]:
        """``{prefix: the highest seq ever reserved in its period}`` (0 when none) for each
        ``{prefix: period}``, in one read."""
        with self._read() as tx:
            return {prefix: int(tx.one("last_seq", prefix=prefix, period=period)["last"])
                    for prefix, period in periods.items()}

    # -- reservations -----------------------------------------------------------------------
    def get_reservation(self, ticket_id: str) -> Reservation | None:
        with self._read() as tx:
            row = tx.one("get_reservation", ticket_id=ticket_id)
        return Reservation.from_row(row) if row else None

    def abandon_reservation(self, ticket_id: str, actor: str | None, session: str | None,
                            reason: str | None, force: bool,
                            in_use: Callable[[list[Post]], bool] | None = None,
                            ) -> tuple[Reservation | None, str]:
        """Mark a reservation abandoned (its number stays spent). Returns ``(reservation,
        outcome)``: ``abandoned``; ``not_found``; ``already`` (abandoned before);
        ``not_holder`` (another actor's, without ``force``); ``in_use`` (``in_use``, the
        domain's rule, given the posts about the id under the write lock, says an actionable
        post files a ticket under it; default: an actionable post names it)."""
        with self._write() as tx:
            row = tx.one("lock_reservation", ticket_id=ticket_id)
            if row is None:
                return None, "not_found"
            res = Reservation.from_row(row)
            if res.status == "abandoned":
                return res, "already"
            if not force and res.actor != actor:
                return res, "not_holder"
            posts = [Post.from_row(r) for r in tx.all("posts_for_item", item=ticket_id)]
            if in_use(posts) if in_use is not None else any(
                    p.kind == "actionable" and p.item == ticket_id for p in posts):
                return res, "in_use"
            new = tx.one("abandon_reservation", ticket_id=ticket_id,
                         abandoned_by=_holder(actor, session), reason=reason)
            tx.event("abandoned", ticket_id, actor, session, None, reason=reason,
                     holder=res.holder, forced=bool(force and res.actor != actor))
            return Reservation.from_row(new), "abandoned"

    # -- posts ------------------------------------------------------------------------------
    def get_post(self, post_id: int) -> Post | None:
        with self._read() as tx:
            row = tx.one("get_post", id=post_id)
        return Post.from_row(row) if row else None

    def posts_for_item(self, item: str) -> list[Post]:
        with self._read() as tx:
            return [Post.from_row(row) for row in tx.all("posts_for_item", item=item)]

    def posts_since(self, since: float, kind: str | None, limit: int | None = None) -> list[Post]:
        """Posts with ``ts >= since`` (UTC seconds), optionally of one kind, by ts then id;
        the last ``limit`` of them (all when None)."""
        with self._read() as tx:
            if limit is not None:
                rows = tx.all("posts_since_last", since=since, kind=kind, limit=limit)
            else:
                rows = tx.all("posts_since", since=since, kind=kind)
            return [Post.from_row(row) for row in rows]

    def iter_posts_since(self, since: float, kind: str | None) -> Iterator[Post]:
        """:meth:`posts_since` without a limit, streamed one post at a time."""
        with self._read() as tx:
            for row in tx.stream("posts_since", since=since, kind=kind):
                yield Post.from_row(row)

    def posts_after(self, after: int, limit: int | None = None) -> list[Post]:
        """Posts with id > ``after`` in recording order (at most ``limit``)."""
        with self._read() as tx:
            rows = tx.all("posts_after", after=after,
                          limit=self._limit(-1 if limit is None else limit))
        return [Post.from_row(row) for row in rows]

    def posts_last(self, limit: int) -> list[Post]:
        """The newest ``limit`` posts by recording order, oldest first."""
        with self._read() as tx:
            return [Post.from_row(row) for row in tx.all("posts_last", limit=limit)]

    def all_posts(self) -> list[Post]:
        with self._read() as tx:
            return [Post.from_row(row) for row in tx.all("posts_all")]

    def feed_snapshot(self) -> tuple[list[Post], list[Task], float]:
        """Every post, every task and the store's now, from one read (the full reduction, which
        the incremental feed_items state must equal)."""
        with self._read() as tx:
            posts = [Post.from_row(row) for row in tx.all("posts_all")]
            tasks = [Task.from_row(row) for row in tx.all("list_tasks", limit=self._limit(-1))]
            return posts, tasks, tx.now

    def feed_rebuilt(self) -> bool:
        """False when feed_items has yet to be built from the posts (a ledger that had posts
        before migration 0007)."""
        with self._read() as tx:
            row = tx.one("feed_state")
        return row is None or bool(row["rebuilt"])

    def feed_queue_page(self, name: str, after: tuple[str, str], limit: int) -> list[dict[str, Any]]:
        """A page of ``feed_queue_open`` / ``feed_queue_rest`` rows (feed_items with the task
        columns) after the ``(filed_key, item)`` key ``after``."""
        with self._read() as tx:
            return [dict(row) for row in tx.all(name, after_key=after[0], after_item=after[1],
                                                limit=limit)]

    def feed_queue_rows(self, name: str, **params: Any) -> tuple[list[dict[str, Any]], float]:
        """``feed_queue_item`` rows (or another feed_queue query's), and the store's now."""
        with self._read() as tx:
            now = tx.now
            return [dict(row) for row in tx.all(name, **params)], now

    def feed_queue_head(self, page: int, cap: int = 2000) -> tuple[bool, float, list[dict[str, Any]],
                                                                   list[dict[str, Any]]]:
        """The start of :meth:`Feed.iter_queue <leasehold.feed.Feed.iter_queue>` in one read:
        ``(rebuilt, now, claimed_done, first_open_page)``: whether feed_items is built, the
        store's clock, the items done in the feed whose task has a valid lease at that instant
        (found from whichever side is smaller, the valid leases or the items done in the feed,
        each counted up to ``cap`` through its index) and the first ``page`` rows of
        ``feed_queue_open``. When ``rebuilt`` is False the other parts are empty."""
        with self._read() as tx:
            row = tx.one("feed_state")
            if row is not None and not row["rebuilt"]:
                return False, 0.0, [], []
            now = tx.now
            done = int(tx.one("feed_done_capped", cap=cap)["n"])
            claimed: list[dict[str, Any]] = []
            if done:
                held = int(tx.one("held_capped", cap=cap, now=now)["n"])
                name = "feed_queue_claimed_done_items" if done < held else "feed_queue_claimed_done"
                claimed = [dict(r) for r in tx.all(name, now=now)]
            rows = [dict(r) for r in tx.all("feed_queue_open", after_key="", after_item="", limit=page)]
            return True, now, claimed, rows

    def feed_drift_rows(self) -> list[tuple[str, str]]:
        """``(item, drift JSON)`` of the items with unreconciled collisions, by item."""
        with self._read() as tx:
            return [(row["item"], row["drift"]) for row in tx.all("feed_drift")]


class _TicketTransaction:
    """``with store.ticket_tx() as ttx:`` the store's write transaction wrapped in a
    :class:`TicketTx` (a class, not ``contextlib``: this module is imported on every command)."""

    __slots__ = ("store", "inner", "op")

    def __init__(self, store: SQLStore, op: str | None = None) -> None:
        self.store = store
        self.op = op
        self.inner: AbstractContextManager[Tx] | None = None

    def __enter__(self) -> TicketTx:
        self.inner = self.store._write(self.op)
        return TicketTx(self.store, self.inner.__enter__())  # type: ignore[arg-type]

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        assert self.inner is not None
        return self.inner.__exit__(exc_type, exc, tb)
