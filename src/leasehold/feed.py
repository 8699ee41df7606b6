"""The append-only feed: posts, amendments, the duplicate guard, the two-phase file-then-confirm
protocol, the live reducer (``queue``) and the drift check.

Source of the rules: the ticket-reservation doctrine (Protocol A: reserve through the ledger's
counter and post in one step; Protocol B: file with a provisional id marked
``CONFIRM-PENDING``, then confirm — "the first post wins the number": the earlier UTC timestamp,
ties broken by the lexicographic order of the seat name).

Posts are never edited or deleted (the database refuses it); an amendment is a new post whose
``refs`` names the original. A *thread* is an original post with what its amendments and
confirmations did to it: its effective item (after renumbering), subject, body and whether it is
still ``CONFIRM-PENDING``. Items are reduced from their threads in UTC timestamp order.
"""

from __future__ import annotations

import heapq
import itertools

from leasehold.errors import DuplicatePost, InvalidInput, NotFound
from leasehold.model import Holder, format_ts, parse_duration, parse_ts, validate_task_id
from leasehold.tickets import reserve_in, validate_prefix

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from leasehold.model import Post, Task
    from leasehold.store.sql_tickets import TicketTx
    from leasehold.store.sqlbase import SQLStore

#: Every kind of post. ``amendment`` and ``confirmed`` are made by ``amend`` and ``confirm``.
KINDS = ("actionable", "claimed", "done", "release", "repair", "info", "amendment", "confirmed")
#: Kinds ``post`` and ``import`` accept.
POSTABLE = ("actionable", "claimed", "done", "release", "repair", "info")
#: Kinds that are about an item and must name one.
NEEDS_ITEM = ("actionable", "claimed", "done", "release", "repair")
PENDING = "CONFIRM-PENDING"
PLACEHOLDER = "{{ITEM_ID}}"
SUBJECT_MAX = 500
BODY_MAX = 65_536
SEAT_MAX = 200

# Item states of the reducer.
AWAITING = "AWAITING_CLAIM"
CLAIMED = "CLAIMED"
DONE = "DONE"
RELEASED = "RELEASED"
CONFIRM_PENDING = "CONFIRM-PENDING"
STATES = (CONFIRM_PENDING, AWAITING, CLAIMED, RELEASED, DONE)

#: Warmth thresholds, seconds since the item's last activity: ``hot`` below 15 minutes,
#: ``warm`` below 2 hours, else ``cold``.
HOT_SECONDS = 15 * 60.0
WARM_SECONDS = 2 * 3600.0

_IMPORT_KEYS = {"ts", "seat", "kind", "item", "subject", "body"}


def warmth(last_activity: float | None, now: float) -> str:
    """``hot`` (< 15 min), ``warm`` (< 2 h) or ``cold``; ages in seconds of UTC time."""
    if last_activity is None:
        return "cold"
    age = now - last_activity
    return "hot" if age < HOT_SECONDS else "warm" if age < WARM_SECONDS else "cold"


def first_post_key(ts: float, seat: str, post_id: int) -> tuple[float, str, int]:
    """The "first post wins" order: earlier UTC timestamp, then lexicographic seat name (then
    the post id, so the order is total)."""
    return (ts, seat, post_id)


# -- threads and items ----------------------------------------------------------------------------
class Thread:
    """An original post and what amendments and confirmations did to it.

    ``item`` / ``subject`` / ``body`` are the effective values; ``pending`` is True while a
    ``CONFIRM-PENDING`` post is neither confirmed nor renumbered by the protocol; ``position``
    is the UTC time at which the thread took its current item (its own ``ts``, or the renumbering
    amendment's); ``last_activity`` the newest ``ts`` among its posts.
    """

    __slots__ = ("root", "item", "subject", "body", "pending", "confirmed_by", "renumbered",
                 "amendments", "position", "last_activity")

    def __init__(self, root: Post) -> None:
        self.root = root
        self.item: str | None = root.item
        self.subject: str = root.subject
        self.body: str = root.body
        self.pending = PENDING in root.flags
        self.confirmed_by: int | None = None
        self.renumbered: list[dict[str, Any]] = []
        self.amendments: list[int] = []
        self.position: float = root.ts
        self.last_activity: float = root.ts

    @property
    def key(self) -> tuple[float, str, int]:
        return first_post_key(self.position, self.root.seat, self.root.id)

    @property
    def resolved(self) -> bool:
        """Confirmed, or renumbered by an amendment that cleared ``CONFIRM-PENDING``."""
        return self.confirmed_by is not None or any(r["cleared"] for r in self.renumbered)


def threads(posts: Iterable[Post]) -> dict[int, Thread]:
    """``{root post id: Thread}`` for the originals among ``posts`` (amendments and
    confirmations are applied to the thread of the original they reference, in id order)."""
    ordered = sorted(posts, key=lambda p: p.id)
    by_id = {p.id: p for p in ordered}
    out = {p.id: Thread(p) for p in ordered if p.kind not in ("amendment", "confirmed")}
    for post in ordered:
        if post.kind not in ("amendment", "confirmed"):
            continue
        root = post
        seen = set()
        while root.kind in ("amendment", "confirmed") and root.refs in by_id and root.id not in seen:
            seen.add(root.id)
            root = by_id[root.refs]
        thread = out.get(root.id)
        if thread is None:
            continue
        thread.last_activity = max(thread.last_activity, post.ts)
        if post.kind == "confirmed":
            thread.confirmed_by = post.id
            thread.pending = False
            continue
        thread.amendments.append(post.id)
        details = post.details
        if details.get("renumbered_from") is not None:
            cleared = bool(details.get("clears_pending"))
            thread.renumbered.append({"from": details["renumbered_from"], "to": post.item,
                                      "amendment": post.id, "cleared": cleared})
            thread.item = post.item
            thread.position = post.ts
            if cleared:
                thread.pending = False
        if details.get("subject"):
            thread.subject = post.subject
        if details.get("body"):
            thread.body = post.body
    return out


class ItemState:
    """One item reduced from its threads (in first-post-wins order).

    ``state`` (one of :data:`STATES`, before the lease overlay), ``owner`` (a seat), ``opener``
    (the thread that holds the number now: the first actionable post, or a later one accepted on
    evidence), ``closed_by`` (the done/release post id), ``collisions`` (``[(thread, earlier
    thread)]``: actionable posts for the item after the first, without evidence and not
    renumbered away), ``last_activity`` (UTC seconds).
    """

    __slots__ = ("item", "state", "owner", "opener", "closed_by", "collisions", "last_activity",
                 "threads")

    def __init__(self, item: str) -> None:
        self.item = item
        self.state: str | None = None
        self.owner: str | None = None
        self.opener: Thread | None = None
        self.closed_by: int | None = None
        self.collisions: list[tuple[Thread, Thread]] = []
        self.last_activity: float | None = None
        self.threads: list[Thread] = []


def reduce_items(posts: Iterable[Post]) -> dict[str, ItemState]:
    """Reduce posts to ``{item: ItemState}`` (the feed alone, before the lease overlay)."""
    grouped: dict[str, list[Thread]] = {}
    for thread in threads(posts).values():
        if thread.item is not None:
            grouped.setdefault(thread.item, []).append(thread)
    items = {}
    for item, group in grouped.items():
        group.sort(key=lambda t: t.key)
        st = ItemState(item)
        st.threads = group
        for thread in group:
            root = thread.root
            last = thread.last_activity
            st.last_activity = last if st.last_activity is None else max(st.last_activity, last)
            if root.kind == "actionable":
                if st.opener is None or root.proof_kind:
                    st.opener, st.state, st.owner, st.closed_by = thread, AWAITING, None, None
                else:
                    st.collisions.append((thread, st.opener))
            elif root.kind == "claimed":
                st.state, st.owner = CLAIMED, root.seat
            elif root.kind == "done":
                st.state, st.closed_by = DONE, root.id
            elif root.kind == "release":
                st.state, st.owner, st.closed_by = RELEASED, None, root.id
            elif root.kind == "repair":
                st.state, st.owner, st.closed_by = AWAITING, None, None
        items[item] = st
    return items


def guard(item: str, posts: list[Post], task: Task | None,
          proof_kind: str | None) -> tuple[str, str] | None:
    """The duplicate guard for a new live ``actionable`` post on ``item``.

    Refused with :class:`DuplicatePost` (exit 1, naming the open post) when the item already has
    an open actionable post (awaiting claim, pending or claimed), unless the new post carries
    ``--release-proof`` / ``--repair`` evidence (``proof_kind``). When the earlier post is closed
    (a ``done`` or ``release`` post, or the task is done in the lease ledger) the re-post is
    accepted with automatic evidence: returns ``("auto", why)``. Otherwise None.
    """
    if proof_kind:
        return None
    st = reduce_items(posts).get(item)
    if st is None or st.opener is None:
        return None
    if st.state in (DONE, RELEASED):
        return ("auto", f"{item} was {st.state.lower()} by post #{st.closed_by}")
    if task is not None and task.status == "done":
        return ("auto", f"task {item} is done in the lease ledger")
    opener = st.opener.root
    raise DuplicatePost(
        f"{item} already has an open actionable post #{opener.id} by {opener.seat} at "
        f"{format_ts(opener.ts)}; pass --release-proof TEXT or --repair TEXT to re-post it",
        item, opener.id,
    )


def prefix_for(item: str, known: Iterable[str]) -> str:
    """The namespace an item id belongs to: the longest known prefix it starts with, else its
    leading run of letters, digits and ``_`` (``CMB-0105`` -> ``CMB``). Raises
    :class:`InvalidInput` when neither gives a valid prefix."""
    best = max((p for p in known if item.startswith(p)), key=len, default=None)
    if best:
        return best
    head = ""
    for ch in item:
        if not (ch.isascii() and (ch.isalnum() or ch == "_")):
            break
        head += ch
    while head and head[-1].isdigit():
        head = head[:-1]
    try:
        return validate_prefix(head)
    except InvalidInput:
        raise InvalidInput(f"cannot tell the namespace of {item!r}; pass --prefix PREFIX") from None


def parse_since(text: str, now: float) -> float:
    """``--since``: an ISO 8601 timestamp, or a duration back from now (``90s``, ``10m``,
    ``2h``, ``1d``). Returns UTC seconds. Raises :class:`InvalidInput`."""
    raw = text.strip()
    if raw and raw[-1:].lower() in "smhd" and raw[:-1].replace(".", "", 1).isdigit():
        return now - parse_duration(raw, "--since")
    try:
        return parse_ts(raw)
    except InvalidInput:
        raise InvalidInput(f"--since {text!r} is neither an ISO 8601 time nor a duration like 2h") from None


def _text(value: Any, what: str, limit: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    if required and not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    if "\x00" in value:
        raise InvalidInput(f"{what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid Unicode text (a lone surrogate)") from None
    if len(value) > limit:
        raise InvalidInput(f"{what} is {len(value)} characters long; the limit is {limit}")
    return value


def _seat(value: Any) -> str:
    seat = _text(value, "seat", SEAT_MAX)
    if not seat.isprintable() or seat != seat.strip():
        raise InvalidInput(f"seat {seat!r} has control characters or surrounding spaces")
    return seat


def _kind(value: Any, allowed: tuple[str, ...] = POSTABLE) -> str:
    kind = str(value).strip().lower() if isinstance(value, str) else None
    if kind in ("amendment", "confirmed") and allowed is POSTABLE:
        raise InvalidInput(f"kind {kind!r} is made by 'feed amend' / 'feed confirm', not posted directly")
    if kind not in allowed:
        raise InvalidInput(f"kind {value!r} is not one of {', '.join(allowed)}")
    return kind


#: Imported timestamps: at most this many seconds ahead of the ledger's clock (clock skew)...
IMPORT_SKEW = 300.0
#: ...and never before 2000-01-01T00:00:00Z, nor before the item's namespace was created.
IMPORT_FLOOR = 946_684_800.0


def _check_import_time(rec: dict[str, Any], known: dict[str, Any], now: float, where: str) -> None:
    """Bound an imported post's claimed time: not in the future beyond :data:`IMPORT_SKEW`,
    not before its item's namespace existed (a backdated post would win "first post wins").
    Raises :class:`InvalidInput` naming the line."""
    ts = rec["ts"]
    if ts > now + IMPORT_SKEW:
        raise InvalidInput(f"{where}: 'ts' {format_ts(ts)} is in the future (the ledger's clock "
                           f"says {format_ts(now)}; {IMPORT_SKEW:g}s of skew allowed)")
    item = rec.get("item")
    if item:
        prefix = max((p for p in known if item.startswith(p)), key=len, default=None)
        created = known[prefix].created_at if prefix else None
        if created is not None and ts < created:
            raise InvalidInput(f"{where}: 'ts' {format_ts(ts)} is before namespace {prefix} "
                               f"existed (created {format_ts(created)})")


class ImportResult:
    """What ``import_posts`` did: ``posts`` (the new posts) and ``skipped`` (lines already
    imported before: same ts, seat, kind, item, subject and body)."""

    __slots__ = ("posts", "skipped")

    def __init__(self, posts: list[Post], skipped: int) -> None:
        self.posts = posts
        self.skipped = skipped


class ConfirmResult:
    """What ``confirm`` did for the post's item.

    ``item``; ``post`` (the root post confirmed); ``winner`` (the root post that holds the
    number); ``confirmed`` (the new ``CONFIRMED`` post, or None); ``renumbered`` (``[{"post",
    "from", "to", "amendment"}]`` for each loser); ``already`` (True when nothing changed because
    the post was confirmed or renumbered before).
    """

    __slots__ = ("item", "post", "winner", "confirmed", "renumbered", "already", "message")

    def __init__(self, item: str, post: Post, winner: Post | None, confirmed: Post | None,
                 renumbered: list[dict[str, Any]], already: bool, message: str) -> None:
        self.item = item
        self.post = post
        self.winner = winner
        self.confirmed = confirmed
        self.renumbered = renumbered
        self.already = already
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "post": self.post.id,
            "winner": self.winner.id if self.winner else None,
            "confirmed": self.confirmed.to_dict() if self.confirmed else None,
            "renumbered": self.renumbered,
            "already": self.already,
            "message": self.message,
        }


class Feed:
    """The feed over one store (``ledger.feed``). Holders are
    :class:`~leasehold.model.Holder` or ``"actor:session"`` strings. Every method may raise
    :class:`~leasehold.errors.StoreBusy` / :class:`~leasehold.errors.StoreUnavailable`."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    # -- posting ----------------------------------------------------------------------------
    def post(self, kind: str, subject: str, holder: Holder | str, *, body: str | None = None,
             item: str | None = None, reserve: str | None = None, provisional: str | None = None,
             release_proof: str | None = None, repair: str | None = None,
             op_id: str | None = None) -> Post:
        """Append a post as ``holder`` (its seat is ``actor:session``).

        The item comes from one of ``item`` (an existing id), ``reserve`` (a namespace prefix: a
        number is reserved in the same transaction — Protocol A) or ``provisional`` (an id filed
        without the counter, flagged ``CONFIRM-PENDING`` until ``confirm`` — Protocol B).
        ``{{ITEM_ID}}`` in subject and body is replaced by the item id.

        An ``actionable`` post creates the task with that id in the lease ledger, or reopens it
        when it was done. Unless provisional it passes the duplicate guard (:func:`guard`):
        :class:`DuplicatePost` when the item has an open actionable post, unless
        ``release_proof`` or ``repair`` evidence is given (recorded on the post).

        ``op_id``: the operation id (idempotency key; a fresh one when None) recorded with the
        post: a retry with the same id and arguments returns the post the first call made
        instead of posting (and reserving) again (:mod:`leasehold.ops`).

        Raises :class:`InvalidInput` for a bad kind, subject, id or option combination, or an
        op id used for a different call; :class:`~leasehold.errors.LaneRefused` for
        ``reserve`` in another actor's lane.
        """
        kind = _kind(kind)
        who = Holder.parse(holder)
        subject = _text(subject, "subject", SUBJECT_MAX)
        body = _text(body, "body", BODY_MAX, required=False)
        sources = [name for name, value in (("--item", item), ("--reserve", reserve),
                                            ("--provisional", provisional)) if value is not None]
        if len(sources) > 1:
            raise InvalidInput(f"{' and '.join(sources)} exclude each other")
        if (reserve is not None or provisional is not None) and kind != "actionable":
            raise InvalidInput(f"{sources[0]} goes with --kind actionable")
        if kind in NEEDS_ITEM and not sources:
            hint = " (or --reserve PREFIX / --provisional ID)" if kind == "actionable" else ""
            raise InvalidInput(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} post needs --item ID{hint}")
        if release_proof is not None and repair is not None:
            raise InvalidInput("--release-proof and --repair exclude each other")
        proof_kind, proof = None, None
        if release_proof is not None or repair is not None:
            if kind != "actionable":
                raise InvalidInput("--release-proof / --repair go with --kind actionable")
            proof_kind = "release-proof" if release_proof is not None else "repair"
            proof = _text(release_proof if release_proof is not None else repair, f"--{proof_kind}", BODY_MAX)
        if item is not None:
            validate_task_id(item)
        if provisional is not None:
            validate_task_id(provisional)
            item = provisional
        if reserve is not None:
            validate_prefix(reserve)
        flags = (PENDING,) if provisional is not None else ()
        args = {"kind": kind, "subject": subject, "body": body, "item": item, "reserve": reserve,
                "provisional": provisional, "proof": [proof_kind, proof]}
        return self._recorded("feed_post", op_id, args, who, lambda op: self._post(
            op, who, kind, subject, body, item, reserve, provisional, flags, proof_kind, proof))

    def _recorded(self, kind: str, op_id: str | None, args: dict[str, Any], who: Holder,
                  call: Any) -> Any:
        """Run ``call(op)`` under an operation id (:func:`leasehold.ops.run_op`); a retry of a
        post that applied returns the post recorded (posts never change)."""
        from leasehold.ops import run_op

        post, record, _ = run_op(self.store, op_id, kind, args, call, holder=(who.actor, who.session))
        if record is None:
            return post
        found = self.store.get_post(int(record["result"]["post"]))
        assert found is not None
        return found

    def _post(self, op: str, who: Holder, kind: str, subject: str, body: str, item: str | None,
              reserve: str | None, provisional: str | None, flags: tuple[str, ...],
              proof_kind: str | None, proof: str | None) -> Post:
        with self.store.ticket_tx(op) as w:
            details: dict[str, Any] = {}
            if reserve is not None:
                item = reserve_in(w, reserve, 1, who, via="feed post")[0].ticket_id
                details["reserved"] = True
            if item is not None:
                subject = subject.replace(PLACEHOLDER, item)
                body = body.replace(PLACEHOLDER, item)
            if kind == "actionable":
                assert item is not None
                task, created = w.open_task(item, subject, who.actor, who.session)
                if provisional is None:
                    auto = guard(item, w.posts_for_item(item), task, proof_kind)
                    if auto:
                        proof_kind, proof = auto
                    if task.status == "done" and not created:
                        w.reopen_task(task, who.actor, who.session, via="feed post")
            post = w.insert_post(seat=str(who), actor=who.actor, session=who.session, kind=kind,
                                 item=item, subject=subject, body=body, flags=flags,
                                 proof_kind=proof_kind, proof=proof, details=details)
            assert post is not None
            self._refresh(w)
            w.record_op("feed_post", item, who.actor, who.session, {"post": post.id})
            return post

    def _root(self, w: TicketTx, post_id: int) -> Post:
        post = w.get_post(post_id)
        if post is None:
            raise NotFound(f"post #{post_id} not found")
        seen = set()
        while post.kind in ("amendment", "confirmed") and post.refs is not None and post.id not in seen:
            seen.add(post.id)
            parent = w.get_post(post.refs)
            if parent is None:
                break
            post = parent
        return post

    def _thread(self, w: TicketTx, root: Post) -> Thread:
        assert root.item is not None
        thread = threads(w.posts_for_item(root.item))[root.id]
        if thread.item != root.item and thread.item is not None:
            thread = threads(w.posts_for_item(thread.item))[root.id]
        return thread

    def _lock_thread(self, w: TicketTx, root: Post, who: Holder) -> Thread:
        """``root``'s thread, read after taking the row lock of the item it files (the lock every
        post, amendment and confirmation about that item takes first). A thread that moved to
        another item before the lock was granted is followed there."""
        thread = self._thread(w, root)
        locked: set[str] = set()
        while thread.item is not None and thread.item not in locked:
            w.open_task(thread.item, thread.subject, who.actor, who.session)
            locked.add(thread.item)
            thread = self._thread(w, root)
        return thread

    def _known_prefixes(self) -> list[str]:
        return [ns.prefix for ns, _ in self.store.list_namespaces()]

    def amend(self, post_id: int, holder: Holder | str, *, subject: str | None = None,
              body: str | None = None, renumber: str | None = None,
              prefix: str | None = None, op_id: str | None = None) -> Post:
        """Append an ``amendment`` post referencing the original of ``post_id`` (nothing is ever
        edited). ``subject`` / ``body`` replace the effective ones. ``renumber``: ``""`` reserves
        a fresh number in the item's namespace (``prefix``, or the one the id starts with) and
        clears ``CONFIRM-PENDING``; an explicit id moves the post there (it must pass the
        duplicate guard; a pending post stays pending).

        ``op_id``: as for :meth:`post` (a retry returns the amendment the first call made).

        Raises :class:`NotFound`, :class:`InvalidInput` (nothing to amend, renumbering a post
        that is not actionable, an op id used for a different call), :class:`DuplicatePost`.
        """
        who = Holder.parse(holder)
        if subject is None and body is None and renumber is None:
            raise InvalidInput("nothing to amend: pass --subject, --body and/or --renumber")
        if subject is not None:
            subject = _text(subject, "subject", SUBJECT_MAX)
        if body is not None:
            body = _text(body, "body", BODY_MAX, required=False)
        if renumber:
            validate_task_id(renumber)
        if prefix is not None:
            validate_prefix(prefix)
        known = self._known_prefixes() if renumber == "" and prefix is None else []
        args = {"post": post_id, "subject": subject, "body": body, "renumber": renumber,
                "prefix": prefix}
        return self._recorded("feed_amend", op_id, args, who, lambda op: self._amend(
            op, who, post_id, subject, body, renumber, prefix, known))

    def _amend(self, op: str, who: Holder, post_id: int, subject: str | None, body: str | None,
               renumber: str | None, prefix: str | None, known: list[str]) -> Post:
        with self.store.ticket_tx(op) as w:
            root = self._root(w, post_id)
            thread = self._lock_thread(w, root, who) if root.item is not None else threads([root])[root.id]
            details: dict[str, Any] = {}
            item = thread.item
            if renumber is not None:
                if root.kind != "actionable" or item is None:
                    raise InvalidInput(f"post #{root.id} is a {root.kind} post; only actionable posts are renumbered")
                if renumber == "":
                    ns = prefix or prefix_for(item, known)
                    new = reserve_in(w, ns, 1, who, via="feed amend", post=root.id)[0].ticket_id
                    details["clears_pending"] = thread.pending
                    w.open_task(new, thread.subject, who.actor, who.session)
                else:
                    if renumber == item:
                        raise InvalidInput(f"post #{root.id} already files {item}")
                    new = renumber
                    task, _ = w.open_task(new, thread.subject, who.actor, who.session)
                    guard(new, w.posts_for_item(new), task, root.proof_kind)
                details["renumbered_from"] = item
                item = new
            if subject is not None:
                details["subject"] = True
            if body is not None:
                details["body"] = True
            if subject is None:
                subject = (f"AMENDMENT: #{root.id} renumbered {details['renumbered_from']} -> {item}"
                           if renumber is not None else thread.subject)
            post = w.insert_post(seat=str(who), actor=who.actor, session=who.session,
                                 kind="amendment", item=item, subject=subject,
                                 body=body if body is not None else "", refs=root.id,
                                 details=details)
            assert post is not None
            self._refresh(w)
            w.record_op("feed_amend", item, who.actor, who.session, {"post": post.id})
            return post

    def confirm(self, post_id: int, holder: Holder | str, prefix: str | None = None, *,
                op_id: str | None = None) -> ConfirmResult:
        """Protocol B, phase 2: confirm the actionable post ``post_id`` against every other
        actionable post that files the same id.

        No collision: a ``CONFIRMED`` post. A collision: the first post wins the number
        (earliest UTC ``ts``, ties by lexicographic seat name); the winner gets ``CONFIRMED``
        (if it has none) and each loser an ``AMENDMENT`` renumbering it to a freshly reserved id
        in the item's namespace (``prefix``, or the one the id starts with), clearing
        ``CONFIRM-PENDING``. Posts accepted on release/repair evidence are legitimate re-posts,
        not collisions. Confirming a post that was confirmed or renumbered before changes
        nothing (``already``). All of it is one transaction.

        ``op_id``: as for :meth:`post`, recorded when the confirmation changed something (a
        retry returns the first call's result).

        Raises :class:`NotFound`, :class:`InvalidInput` (not an actionable post, an op id used
        for a different call).
        """
        from leasehold.ops import run_op

        who = Holder.parse(holder)
        if prefix is not None:
            validate_prefix(prefix)
        known = self._known_prefixes() if prefix is None else []
        result, record, _ = run_op(
            self.store, op_id, "feed_confirm", {"post": post_id, "prefix": prefix},
            lambda op: self._confirm(op, who, post_id, prefix, known),
            holder=(who.actor, who.session), unchanged=lambda result: result.already)
        if record is None:
            return result  # type: ignore[no-any-return]
        rec = record["result"]

        def post(post_id: int | None) -> Post | None:
            return None if post_id is None else self.store.get_post(int(post_id))

        root = post(rec["post"])
        assert root is not None
        return ConfirmResult(rec["item"], root, post(rec["winner"]), post(rec["confirmed"]),
                             rec["renumbered"], False, rec["message"])

    def _confirm(self, op: str, who: Holder, post_id: int, prefix: str | None,
                 known: list[str]) -> ConfirmResult:
        with self.store.ticket_tx(op) as w:
            root = self._root(w, post_id)
            if root.kind != "actionable" or root.item is None:
                raise InvalidInput(f"post #{root.id} is a {root.kind} post; only actionable posts are confirmed")
            thread = self._lock_thread(w, root, who)
            item = thread.item
            assert item is not None
            if thread.resolved:
                how = (f"confirmed by #{thread.confirmed_by}" if thread.confirmed_by is not None
                       else f"renumbered to {thread.item} by #{thread.renumbered[-1]['amendment']}")
                return ConfirmResult(item, root, None, None, [], True,
                                     f"post #{root.id} was already {how}; nothing changed")
            everything = threads(w.posts_for_item(item))
            thread = everything[root.id]
            if root.proof_kind:
                group = [thread]
            else:
                group = sorted((t for t in everything.values()
                                if t.root.kind == "actionable" and t.item == item and not t.root.proof_kind),
                               key=lambda t: t.key)
            winner = group[0]
            losers = group[1:]
            confirmed = None
            if winner.confirmed_by is None:
                note = f" over {', '.join('#' + str(t.root.id) for t in losers)}" if losers else ""
                confirmed = w.insert_post(
                    seat=str(who), actor=who.actor, session=who.session, kind="confirmed",
                    item=item, refs=winner.root.id,
                    subject=f"CONFIRMED: {item} is #{winner.root.id} by {winner.root.seat}{note}",
                    details={"losers": [t.root.id for t in losers]} if losers else {},
                )
            renumbered = []
            if losers:
                ns = prefix or prefix_for(item, known)
            for loser in losers:
                new = reserve_in(w, ns, 1, who, via="feed confirm", post=loser.root.id)[0].ticket_id
                w.open_task(new, loser.subject, who.actor, who.session)
                amendment = w.insert_post(
                    seat=str(who), actor=who.actor, session=who.session, kind="amendment",
                    item=new, refs=loser.root.id,
                    subject=(f"AMENDMENT: #{loser.root.id} renumbered {item} -> {new}: the first post "
                             f"wins ({item} is #{winner.root.id} by {winner.root.seat} at "
                             f"{format_ts(winner.position)})"),
                    details={"renumbered_from": item, "clears_pending": True,
                             "winner": winner.root.id},
                )
                assert amendment is not None
                renumbered.append({"post": loser.root.id, "seat": loser.root.seat, "from": item,
                                   "to": new, "amendment": amendment.id})
            if not losers:
                message = f"confirmed #{root.id}: {item} has no colliding post"
            else:
                moved = ", ".join(f"#{r['post']} -> {r['to']}" for r in renumbered)
                message = (f"{item} collided: #{winner.root.id} by {winner.root.seat} wins; "
                           f"renumbered {moved}")
            self._refresh(w)
            result = ConfirmResult(item, root, winner.root, confirmed, renumbered, False, message)
            w.record_op("feed_confirm", item, who.actor, who.session, {
                **result.to_dict(), "confirmed": confirmed.id if confirmed else None})
            return result

    # -- import -----------------------------------------------------------------------------
    def parse_import(self, lines: Iterable[str], source: str = "input") -> list[dict[str, Any]]:
        """Validate JSONL lines (one object per line: ``ts`` ISO 8601 UTC, ``seat``, ``kind``,
        ``item``, ``subject``, optional ``body``; blank lines are skipped). Returns the records;
        raises :class:`InvalidInput` naming the first bad line (``FILE line N: ...``)."""
        import json

        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{source} line {number}"
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise InvalidInput(f"{where}: not valid JSON ({exc})") from None
            except RecursionError:
                raise InvalidInput(f"{where}: JSON nested too deeply") from None
            if not isinstance(data, dict):
                raise InvalidInput(f"{where}: expected a JSON object, got {type(data).__name__}")
            unknown = sorted(set(data) - _IMPORT_KEYS)
            if unknown:
                raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
                                   f"{', '.join(sorted(_IMPORT_KEYS))}")
            try:
                for key in ("ts", "seat", "kind", "subject"):
                    if key not in data:
                        raise InvalidInput(f"'{key}' is missing")
                if not isinstance(data["ts"], str):
                    raise InvalidInput("'ts' must be an ISO 8601 string such as 2026-04-16T20:04:22Z")
                ts = parse_ts(data["ts"])
                kind = _kind(data["kind"])
                item = data.get("item")
                if item is None and kind in NEEDS_ITEM:
                    raise InvalidInput(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} post needs 'item'")
                if item is not None:
                    if not isinstance(item, str):
                        raise InvalidInput("'item' must be a string")
                    validate_task_id(item)
                if ts < IMPORT_FLOOR:
                    raise InvalidInput(f"'ts' {data['ts']!r} is before 2000-01-01")
                record = {"where": where, "ts": ts, "seat": _seat(data["seat"]), "kind": kind, "item": item,
                          "subject": _text(data["subject"], "'subject'", SUBJECT_MAX),
                          "body": _text(data.get("body"), "'body'", BODY_MAX, required=False)}
            except InvalidInput as exc:
                raise InvalidInput(f"{where}: {exc.message}") from None
            records.append(record)
        return records

    def import_posts(self, records: list[dict[str, Any]], by: Holder | str) -> ImportResult:
        """Append validated records (from :meth:`parse_import`) in one transaction, keeping
        their ``ts`` and ``seat`` (``recorded_at`` is the import time). A ``ts`` in the future
        (past :data:`IMPORT_SKEW`) or before the item's namespace existed is refused
        (:class:`InvalidInput` naming the line; nothing is imported). Imported posts skip the duplicate guard; actionable ones arrive
        ``CONFIRM-PENDING`` and create their task if unknown (a done task is not reopened).
        A record imported before (same ts, seat, kind, item, subject, body) is skipped."""
        import hashlib
        import json

        who = Holder.parse(by)
        posts, skipped = [], 0
        with self.store.ticket_tx() as w:
            known = w.namespaces() if records else {}
            for number, rec in enumerate(records, 1):
                _check_import_time(rec, known, w.now, rec.get("where") or f"record {number}")
                key = hashlib.sha256(json.dumps(
                    [repr(rec["ts"]), rec["seat"], rec["kind"], rec["item"], rec["subject"], rec["body"]],
                    ensure_ascii=False).encode()).hexdigest()
                actionable = rec["kind"] == "actionable"
                post = w.insert_post(seat=rec["seat"], actor=who.actor, session=who.session,
                                     kind=rec["kind"], item=rec["item"], subject=rec["subject"],
                                     body=rec["body"], ts=rec["ts"], origin="import",
                                     flags=(PENDING,) if actionable else (), import_key=key)
                if post is None:
                    skipped += 1
                    continue
                if actionable:
                    w.open_task(rec["item"], rec["subject"], who.actor, who.session)
                posts.append(post)
            self._refresh(w)
        return ImportResult(posts, skipped)

    def import_file(self, path: str, by: Holder | str) -> ImportResult:
        """Validate every line of the JSONL file ``path``, then import it (nothing is imported
        from a file with a bad line). Raises :class:`InvalidInput` naming the line,
        :class:`NotFound` for a missing file."""
        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            raise NotFound(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{path}: cannot read it ({exc})") from None
        return self.import_posts(self.parse_import(lines, path), by)

    # -- reading ----------------------------------------------------------------------------
    def get(self, post_id: int) -> Post:
        """Raises :class:`NotFound`."""
        post = self.store.get_post(post_id)
        if post is None:
            raise NotFound(f"post #{post_id} not found")
        return post

    def posts(self, *, since: float | None = None, item: str | None = None,
             kind: str | None = None, limit: int | None = None) -> list[Post]:
        """Posts by UTC ``ts`` (then id): with ``ts >= since`` (UTC seconds), about ``item``
        (including amendments and confirmations of its posts), of ``kind``; the last ``limit``."""
        if kind is not None:
            kind = _kind(kind, KINDS)
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        low = -1.0e18 if since is None else since
        if item is not None:
            validate_task_id(item)
            posts = [p for p in self.store.posts_for_item(item)
                     if p.ts >= low and (kind is None or p.kind == kind)]
            posts.sort(key=lambda p: (p.ts, p.id))
        else:
            posts = self.store.posts_since(low, kind, limit)
        return posts[-limit:] if limit else posts

    def iter_posts(self, *, since: float | None = None, kind: str | None = None) -> Iterator[Post]:
        """Every post by UTC ``ts`` (then id), streamed: with ``ts >= since``, of ``kind``."""
        if kind is not None:
            kind = _kind(kind, KINDS)
        return self.store.iter_posts_since(-1.0e18 if since is None else since, kind)

    #: The most posts one :meth:`posts_page` returns.
    POSTS_PAGE_MAX = 1000

    def posts_page(self, *, since: float | None = None, kind: str | None = None,
                   after: tuple[float, int] | None = None, limit: int = 500) -> list[Post]:
        """One page of :meth:`iter_posts` (same order and filters): up to ``limit`` posts (1 to
        :data:`POSTS_PAGE_MAX`) after the cursor ``after``, the ``(ts, id)`` of the previous
        page's last post (None: from the start). Each page reads from the cursor on (keyset
        paging over the ``ts`` index). Raises :class:`InvalidInput` for a bad limit or kind."""
        import itertools

        if not 1 <= limit <= self.POSTS_PAGE_MAX:
            raise InvalidInput(f"limit must be between 1 and {self.POSTS_PAGE_MAX}, got {limit}")
        if kind is not None:
            kind = _kind(kind, KINDS)
        low = -1.0e18 if since is None else since
        if after is not None:
            low = max(low, after[0])
        rows = self.store.iter_posts_since(low, kind)
        try:
            stream = rows if after is None else itertools.dropwhile(lambda p: (p.ts, p.id) <= after, rows)
            return list(itertools.islice(stream, limit))
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()

    def last(self, count: int) -> list[Post]:
        """The newest ``count`` posts in recording order (for ``tail``)."""
        if count < 0:
            raise InvalidInput(f"-n must be 0 or more, got {count}")
        return self.store.posts_last(count) if count else []

    def after(self, post_id: int, limit: int | None = None) -> list[Post]:
        """Posts recorded after ``post_id`` (for ``tail -f``)."""
        return self.store.posts_after(post_id, limit)

    def last_id(self) -> int:
        posts = self.store.posts_last(1)
        return posts[-1].id if posts else 0

    # -- the reducer and the drift check ------------------------------------------------------
    def _refresh(self, w: TicketTx) -> None:
        """Recompute, inside the posting transaction, the reduced state of every item its posts
        touched (from that item's posts alone: :meth:`TicketTx.posts_for_item`)."""
        for item in sorted(w.touched):
            st = reduce_items(w.posts_for_item(item)).get(item)
            w.put_feed_item(item, item_row(st) if st is not None else None)
        w.touched.clear()

    def _ensure_rebuilt(self) -> None:
        """Build feed_items from every post once, on a ledger that had posts before the table
        existed (migration 0007). Idempotent; the only O(history) step, and it runs once."""
        if self.store.feed_rebuilt():
            return
        with self.store.ticket_tx() as w:
            row = w.tx.one("feed_state")
            if row is not None and row["rebuilt"]:
                return
            rows = {}
            for item, st in reduce_items(w.all_posts()).items():
                data = item_row(st)
                if data is not None:
                    rows[item] = data
            w.replace_feed_items(rows)

    def iter_queue(self, state: str | None = None, item: str | None = None,
                   page: int = 200) -> Iterator[dict[str, Any]]:
        """The live reducer, streamed in its order (open items first, then by filing time and
        item): each entry as :meth:`queue` describes. ``state`` / ``item`` filter. Reads the
        stored per-item state (feed_items) ``page`` rows at a time and only the tasks those items
        name, so the first N entries cost O(N + log n), not O(history). A feed-done item whose
        task is validly held again is found from the smaller of the valid leases and the items
        done in the feed (the one term that can grow: both are large only on a ledger with many
        closed feed items and many held leases at once)."""
        if item is None and state != DONE:
            # The clock, the feed-done items held again and the first page in one read (one
            # round trip on PostgreSQL): the head of the queue is what every caller reads.
            rebuilt, now, claimed, first = self.store.feed_queue_head(page)
            if not rebuilt:
                self._ensure_rebuilt()
                rebuilt, now, claimed, first = self.store.feed_queue_head(page)
            extra = sorted((e for e in (queue_entry(r, now) for r in claimed) if e["state"] != DONE),
                           key=_entry_key)
            opened = (e for e in self._pages("feed_queue_open", now, page, first)
                      if e["state"] != DONE)
            for entry in heapq.merge(opened, extra, key=_entry_key):
                if state is None or entry["state"] == state:
                    yield entry
            if state is None:
                for entry in self._pages("feed_queue_rest", now, page):
                    if entry["state"] == DONE:
                        yield entry
            return
        self._ensure_rebuilt()
        now = self.store.now()
        if item is not None:
            rows, _ = self.store.feed_queue_rows("feed_queue_item", item=item, now=now)
            for row in rows:
                entry = queue_entry(row, now)
                if state is None or entry["state"] == state:
                    yield entry
            return
        for entry in self._pages("feed_queue_rest", now, page):  # state == DONE
            if entry["state"] == DONE:
                yield entry

    def _pages(self, name: str, now: float, page: int,
               first: list[dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
        after = ("", "")
        while True:
            rows = self.store.feed_queue_page(name, after, page) if first is None else first
            first = None
            for row in rows:
                yield queue_entry(row, now)
            if len(rows) < page:
                return
            after = (rows[-1]["filed_key"], rows[-1]["item"])

    def queue(self, limit: int | None = None, state: str | None = None,
              item: str | None = None) -> list[dict[str, Any]]:
        """The live reducer: every item's current state from the feed and the leases (the first
        ``limit`` entries; all when None).

        Each entry: ``item``, ``state`` (``CONFIRM-PENDING``, ``AWAITING_CLAIM``, ``CLAIMED``,
        ``RELEASED``, ``DONE``), ``owner`` (the lease holder, or the seat of the last ``claimed``
        post), ``claimed_until`` (lease expiry, ISO UTC), ``fence``, ``subject``, ``post`` and
        ``seat`` (the post holding the number), ``filed_at``, ``last_activity``, ``warmth``
        (``hot`` < 15 min, ``warm`` < 2 h, ``cold``), ``drift`` (ids of colliding posts not yet
        reconciled). Open items first, then by filing time. Raises :class:`InvalidInput` for
        a ``limit`` below 1.
        """
        if limit is not None and limit < 1:
            raise InvalidInput(f"limit must be at least 1, got {limit}")
        entries = self.iter_queue(state, item, page=200 if limit is None else min(limit + 1, 1000))
        return list(entries if limit is None else itertools.islice(entries, limit))

    def queue_by_reduction(self) -> list[dict[str, Any]]:
        """:meth:`queue` computed the slow way, by reducing every post (O(history)): the
        reference the stored per-item state must equal (tests), and a check for operators."""
        from leasehold.model import format_ts_precise

        posts, tasks, now = self.store.feed_snapshot()
        by_id = {t.id: t for t in tasks}
        out = []
        for item, st in reduce_items(posts).items():
            if st.state is None:
                continue  # only info posts name it: not an item of the queue, held or not
            task = by_id.get(item)
            state, owner, until, fence = st.state, st.owner, None, None
            last = st.last_activity
            if task is not None:
                fence = task.fence
                if task.updated_at is not None:
                    last = max(last or task.updated_at, task.updated_at)
                if task.status == "done":
                    state = DONE
                elif task.lease_valid(now):
                    state, owner, until = CLAIMED, task.lease_holder, task.lease_until
            opener = st.opener
            if state == AWAITING and opener is not None and opener.pending:
                state = CONFIRM_PENDING
            lead = opener or st.threads[0]
            out.append({
                "item": item,
                "state": state,
                "owner": owner,
                "claimed_until": format_ts_precise(until),
                "fence": fence,
                "subject": lead.subject,
                "post": lead.root.id,
                "seat": lead.root.seat,
                "filed_at": format_ts_precise(lead.position),
                "last_activity": format_ts_precise(last),
                "warmth": warmth(last, now),
                "drift": [t.root.id for t, _ in st.collisions],
            })
        out.sort(key=lambda e: (e["state"] == DONE, e["filed_at"] or "", e["item"]))
        return out

    def drift(self) -> list[dict[str, Any]]:
        """Actionable posts whose item collides with an earlier actionable post (first-post-wins
        order) and that no amendment has renumbered away. Posts accepted on release/repair
        evidence (or automatically, after the earlier post was closed) are legitimate re-posts,
        not drift. Each entry: ``item``, ``post``, ``seat``, ``ts``, ``pending``,
        ``collides_with`` ``{post, seat, ts}``. Reads only the items with collisions."""
        import json

        self._ensure_rebuilt()
        out: list[dict[str, Any]] = []
        for _, drift in self.store.feed_drift_rows():
            out.extend(json.loads(drift))
        return out

    def drift_by_reduction(self) -> list[dict[str, Any]]:
        """:meth:`drift` computed by reducing every post (O(history)): the reference."""
        out = []
        for item, st in sorted(reduce_items(self.store.all_posts()).items()):
            out.extend(drift_entries(item, st))
        return out


def drift_entries(item: str, st: ItemState) -> list[dict[str, Any]]:
    """The drift-check entries of one reduced item (its unreconciled collisions)."""
    from leasehold.model import format_ts_precise

    return [{
        "item": item,
        "post": thread.root.id,
        "seat": thread.root.seat,
        "ts": format_ts_precise(thread.position),
        "pending": thread.pending,
        "collides_with": {"post": earlier.root.id, "seat": earlier.root.seat,
                          "ts": format_ts_precise(earlier.position)},
    } for thread, earlier in st.collisions]


def item_row(st: ItemState) -> dict[str, Any] | None:
    """The feed_items columns of a reduced item (None when no post gives it a state: only
    info posts name it)."""
    import json

    from leasehold.model import format_ts_precise

    if st.state is None:
        return None
    opener = st.opener
    lead = opener or st.threads[0]
    drift = drift_entries(st.item, st)
    return {
        "state": st.state, "owner": st.owner,
        "pending": 1 if opener is not None and opener.pending else 0,
        "subject": lead.subject, "post": lead.root.id, "seat": lead.root.seat,
        "filed_at": lead.position, "filed_key": format_ts_precise(lead.position),
        "last_activity": st.last_activity, "drift_count": len(drift),
        "drift": json.dumps(drift, sort_keys=True, separators=(",", ":")),
    }


def queue_entry(row: dict[str, Any], now: float) -> dict[str, Any]:
    """A reducer entry from a feed_items row with its task's columns (``task_*``; None when
    the item names no task), with the lease overlay at ``now`` (the task done: DONE; validly
    held: CLAIMED by the lease holder)."""
    import json

    from leasehold.model import format_ts_precise, holder_text

    state, owner, until, fence = row["state"], row["owner"], None, None
    last = row["last_activity"]
    if row["task_status"] is not None:
        fence = row["task_fence"]
        updated = row["task_updated"]
        if updated is not None:
            last = max(last or updated, updated)
        if row["task_status"] == "done":
            state = DONE
        elif row["task_until"] is not None and now < row["task_until"]:
            state, owner, until = CLAIMED, holder_text(row["task_actor"], row["task_session"]), row["task_until"]
    if state == AWAITING and row["pending"]:
        state = CONFIRM_PENDING
    return {
        "item": row["item"],
        "state": state,
        "owner": owner,
        "claimed_until": format_ts_precise(until),
        "fence": fence,
        "subject": row["subject"],
        "post": row["post"],
        "seat": row["seat"],
        "filed_at": row["filed_key"],
        "last_activity": format_ts_precise(last),
        "warmth": warmth(last, now),
        "drift": [d["post"] for d in json.loads(row["drift"])],
    }


def _entry_key(entry: dict[str, Any]) -> tuple[str, str]:
    return (entry["filed_at"], entry["item"])
