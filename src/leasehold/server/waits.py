"""Blocking waits for the server: ``claim --wait`` and ``next --wait`` (etcd's lock model: waiters
on one task are served in arrival order), and the wake-ups that serve them and the event stream.

A :class:`Changes` object is bumped after every change this process makes, and — over
PostgreSQL — on every ``NOTIFY`` from another server process (:meth:`Changes.listen`). Waiters
also re-check at the blocking lease's expiry and at least every :data:`RECHECK` seconds, so a
change made by a direct client (which notifies no one) is seen late but never missed.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from leasehold.errors import LeaseHeld, NoneAvailable, NotHolder

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from typing import Any

    from leasehold.ledger import Ledger
    from leasehold.model import Lease

#: The channel server processes notify each other on.
CHANNEL = "leasehold_changes"


def _recheck() -> float:
    """``LEASEHOLD_WAIT_RECHECK`` (seconds, 0.05 to 3600; default 1): a test sets it high to
    prove that waiters are woken by changes, not by this re-check."""
    import math
    import os

    try:
        value = float(os.environ.get("LEASEHOLD_WAIT_RECHECK", "1"))
    except ValueError:
        return 1.0
    return min(max(value, 0.05), 3600.0) if math.isfinite(value) else 1.0


#: Longest a waiter sleeps without re-checking (seconds).
RECHECK = _recheck()


class Changes:
    """A change counter with a condition (threads) and asyncio events (the event stream)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.generation = 0
        self.queues: dict[str, deque[object]] = {}
        self.waiting = 0
        self._async: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.on_waiters: Callable[[int], None] | None = None
        #: Undo tasks of cancelled waiters still running (kept referenced until they end).
        self._cleanups: set[asyncio.Task[None]] = set()

    def bump(self, _payload: str = "") -> None:
        """Something changed: wake every waiter and watcher."""
        with self.cond:
            self.generation += 1
            self.cond.notify_all()
            watchers = list(self._async)
        for loop, event in watchers:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop is closed
                pass

    def watch(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        with self.cond:
            self._async.add((loop, event))

    def unwatch(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        with self.cond:
            self._async.discard((loop, event))

    def _count(self, delta: int) -> None:
        self.waiting += delta
        if self.on_waiters is not None:
            self.on_waiters(self.waiting)

    async def wait_turn(self, key: str, attempt: Callable[[], Any], timeout: float,
                        retry_in: Callable[[BaseException], float],
                        undo: Callable[[Any], None] | None = None) -> Any:
        """Run ``attempt()`` (in a worker thread) as the head of ``key``'s FIFO queue until it
        returns (its result is returned) or ``timeout`` seconds pass (the last refusal is
        raised). ``retry_in(exc)`` says how long a refusal may stand at most before trying
        again (e.g. until the blocking lease expires). Waiting holds no thread: a thousand
        waiters cost a thousand small objects, not the worker pool.

        Cancelled (the client went away): the waiter leaves the queue at once. An attempt
        already running in its thread cannot be stopped; when it returns a result (a grant
        nobody will receive), ``undo(result)`` runs in a worker thread and the next waiter is
        woken, so no lease is left to a client that is gone."""
        import asyncio

        from starlette.concurrency import run_in_threadpool

        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        ticket = object()
        deadline = time.monotonic() + timeout
        with self.cond:
            queue = self.queues.setdefault(key, deque())
            queue.append(ticket)
            self._count(1)
            self._async.add((loop, wake))
        last: BaseException | None = None

        async def sleep(seconds: float) -> None:
            try:
                await asyncio.wait_for(wake.wait(), max(seconds, 0.001))
            except TimeoutError:
                pass

        try:
            while True:
                while True:
                    wake.clear()
                    if queue[0] is ticket:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise last or TimeoutError()
                    await sleep(min(remaining, RECHECK))
                seen = self.generation
                running = asyncio.ensure_future(run_in_threadpool(attempt))
                try:
                    return await asyncio.shield(running)
                except asyncio.CancelledError:
                    self._undo_when_done(running, undo)
                    raise
                except (LeaseHeld, NoneAvailable) as exc:
                    last = exc
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise
                    wake.clear()
                    if self.generation == seen:
                        await sleep(min(retry_in(exc), RECHECK, remaining))
        finally:
            with self.cond:
                queue.remove(ticket)
                if not queue:
                    self.queues.pop(key, None)
                self._async.discard((loop, wake))
                self._count(-1)
            self.bump()  # the next in line may be the head now

    def _undo_when_done(self, running: asyncio.Future[Any], undo: Callable[[Any], None] | None) -> None:
        """After a cancelled waiter: once its in-flight ``running`` attempt ends, undo what it
        got (if it got anything)."""
        import asyncio

        from starlette.concurrency import run_in_threadpool

        async def finish() -> None:
            try:
                result = await running
            except BaseException:
                return  # refused or failed: nothing was granted
            if undo is not None:
                try:
                    await run_in_threadpool(undo, result)
                except Exception:
                    import logging

                    logging.getLogger("leasehold.server").exception("could not undo a grant to a gone waiter")
            self.bump()

        task = asyncio.ensure_future(finish())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    def listen(self, ledger: Ledger, stop: threading.Event) -> threading.Thread | None:
        """Over PostgreSQL, a thread that bumps on every NOTIFY from other server processes."""
        store = ledger.store
        if not getattr(store, "can_listen", False):
            return None
        thread = threading.Thread(target=store.listen, args=(CHANNEL, self.bump, stop),  # type: ignore[attr-defined]
                                  name="leasehold-listen", daemon=True)
        thread.start()
        return thread


async def claim_wait(changes: Changes, ledger: Callable[[], Ledger], task_id: str, holder: Any, ttl: Any,
                     timeout: float, **kw: Any) -> tuple[Lease, Callable[[], None]]:
    """:meth:`Ledger.claim`, waiting up to ``timeout`` seconds in FIFO order for the lease.
    Returns the lease and a function that releases it again (for a client found gone when the
    answer is due; a lease the holder held before the wait is kept). Raises
    :class:`LeaseHeld` when the time is up."""

    def retry_in(exc: BaseException) -> float:
        if isinstance(exc, LeaseHeld):
            return max(0.005, exc.expires_at - time.time())
        return RECHECK

    from leasehold.model import Holder

    held_before: list[bool] = []

    def attempt() -> Lease:
        led = ledger()
        if not held_before:  # a lease this holder held already is renewed, never undone
            task = led.status(task_id)
            held_before.append(task is not None and task.held_by(Holder.parse(holder), led.now()))
        kept = keep_replayed(led, [led.claim(task_id, holder, ttl, **kw)], kw.get("op_id"))
        if not kept:
            raise NotHolder(f"the lease on {task_id} granted under operation {kw.get('op_id')} is "
                            "no longer held (released since: e.g. the request's first connection "
                            "went away before the answer); claim again with a new operation id")
        return kept[0]

    def undo(lease: Lease) -> None:
        if not held_before or not held_before[0]:
            release_unused([lease], ledger(), kw.get("op_id"))

    lease: Lease = await changes.wait_turn("task:" + task_id, attempt, timeout, retry_in, undo)
    return lease, lambda: undo(lease)


def undo_op_id(op_id: str, task_id: str) -> str:
    """The operation id that decides the fate of the grant of ``task_id`` made to a waiting
    request with operation id ``op_id`` whose client went away: recorded either by the
    release that gives the grant up (:func:`release_unused`) or by the extension that hands it
    to a resend of the same request (:func:`keep_replayed`), whichever comes first."""
    import hashlib

    return "undo-" + hashlib.sha256(f"{op_id}\0{task_id}".encode()).hexdigest()[:40]


def keep_replayed(ledger: Ledger, leases: list[Lease], op_id: str | None) -> list[Lease]:
    """The leases of a waiting request's replayed grant (a resend of a request that applied)
    that its holder still has: each is extended under :func:`undo_op_id`, which also stops a
    pending give-up of that grant (the original request's client went away). A lease given
    up already (or lost since) is left out: a resend is never answered with a released
    lease."""
    from leasehold.errors import LeaseholdError

    if op_id is None or ledger.replayed_at is None:
        return leases
    kept = []
    for lease in leases:
        try:
            kept.append(ledger.extend(lease.task_id, lease.holder, fence=lease.fence,
                                      op_id=undo_op_id(op_id, lease.task_id)))
        except LeaseholdError:
            pass
    return kept


def release_unused(leases: list[Lease], ledger: Ledger, op_id: str | None = None) -> None:
    """Release ``leases`` granted to a waiter whose client went away before the answer
    (``op_id``: the request's operation id; a resend of it that got the lease first keeps
    it, see :func:`keep_replayed`)."""
    from leasehold.errors import LeaseholdError

    for lease in leases:
        try:
            ledger.release(lease.task_id, lease.holder,
                           op_id=None if op_id is None else undo_op_id(op_id, lease.task_id))
        except LeaseholdError:
            pass  # expired, taken over or handed to a resend since: nothing to give up


async def next_wait(changes: Changes, ledger: Callable[[], Ledger], holder: Any, ttl: Any, count: int,
                    timeout: float, op_id: str | None = None) -> tuple[list[Lease], Callable[[], None]]:
    """:meth:`Ledger.next`, waiting up to ``timeout`` seconds (FIFO among ``next`` waiters)
    for a ready task. Returns the leases (``[]`` when the time is up) and a function that
    releases them again (for a client found gone when the answer is due)."""

    def attempt() -> list[Lease]:
        led = ledger()
        leases = led.next(holder, ttl, count, op_id=op_id)
        if leases:
            leases = keep_replayed(led, leases, op_id)
            if not leases:
                raise NotHolder(f"the leases granted under operation {op_id} are no longer held "
                                "(released since: e.g. the request's first connection went away "
                                "before the answer); ask again with a new operation id")
        if not leases:
            raise NoneAvailable("no task available")
        return leases

    try:
        leases: list[Lease] = await changes.wait_turn("next", attempt, timeout, lambda exc: RECHECK,
                                                      lambda leases: release_unused(leases, ledger(), op_id))
    except NoneAvailable:
        return [], lambda: None
    return leases, lambda: release_unused(leases, ledger(), op_id)
