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

from leasehold.errors import LeaseHeld, NoneAvailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from typing import Any

    from leasehold.ledger import Ledger
    from leasehold.model import Lease

#: The channel server processes notify each other on.
CHANNEL = "leasehold_changes"
#: Longest a waiter sleeps without re-checking (seconds).
RECHECK = 1.0


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
        return led.claim(task_id, holder, ttl, **kw)

    def undo(lease: Lease) -> None:
        if not held_before or not held_before[0]:
            release_unused([lease], ledger())

    lease: Lease = await changes.wait_turn("task:" + task_id, attempt, timeout, retry_in, undo)
    return lease, lambda: undo(lease)


def release_unused(leases: list[Lease], ledger: Ledger) -> None:
    """Release ``leases`` granted to a waiter whose client went away before the answer."""
    from leasehold.errors import LeaseholdError

    for lease in leases:
        try:
            ledger.release(lease.task_id, lease.holder)
        except LeaseholdError:
            pass  # expired or taken over since: nothing of the gone waiter's is left


async def next_wait(changes: Changes, ledger: Callable[[], Ledger], holder: Any, ttl: Any, count: int,
                    timeout: float, op_id: str | None = None) -> tuple[list[Lease], Callable[[], None]]:
    """:meth:`Ledger.next`, waiting up to ``timeout`` seconds (FIFO among ``next`` waiters)
    for a ready task. Returns the leases (``[]`` when the time is up) and a function that
    releases them again (for a client found gone when the answer is due)."""

    def attempt() -> list[Lease]:
        leases = ledger().next(holder, ttl, count, op_id=op_id)
        if not leases:
            raise NoneAvailable("no task available")
        return leases

    try:
        leases: list[Lease] = await changes.wait_turn("next", attempt, timeout, lambda exc: RECHECK,
                                                      lambda leases: release_unused(leases, ledger()))
    except NoneAvailable:
        return [], lambda: None
    return leases, lambda: release_unused(leases, ledger())
