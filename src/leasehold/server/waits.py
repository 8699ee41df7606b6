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
                        retry_in: Callable[[BaseException], float]) -> Any:
        """Run ``attempt()`` (in a worker thread) as the head of ``key``'s FIFO queue until it
        returns (its result is returned) or ``timeout`` seconds pass (the last refusal is
        raised). ``retry_in(exc)`` says how long a refusal may stand at most before trying
        again (e.g. until the blocking lease expires). Waiting holds no thread: a thousand
        waiters cost a thousand small objects, not the worker pool."""
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
                try:
                    return await run_in_threadpool(attempt)
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
                     timeout: float, **kw: Any) -> Lease:
    """:meth:`Ledger.claim`, waiting up to ``timeout`` seconds in FIFO order for the lease.
    Raises :class:`LeaseHeld` when the time is up."""

    def retry_in(exc: BaseException) -> float:
        if isinstance(exc, LeaseHeld):
            return max(0.005, exc.expires_at - time.time())
        return RECHECK

    return await changes.wait_turn("task:" + task_id, lambda: ledger().claim(task_id, holder, ttl, **kw),
                                   timeout, retry_in)  # type: ignore[no-any-return]


async def next_wait(changes: Changes, ledger: Callable[[], Ledger], holder: Any, ttl: Any, count: int,
                    timeout: float, op_id: str | None = None) -> list[Lease]:
    """:meth:`Ledger.next`, waiting up to ``timeout`` seconds (FIFO among ``next`` waiters)
    for a ready task. Returns ``[]`` when the time is up."""

    def attempt() -> list[Lease]:
        leases = ledger().next(holder, ttl, count, op_id=op_id)
        if not leases:
            raise NoneAvailable("no task available")
        return leases

    try:
        return await changes.wait_turn("next", attempt, timeout, lambda exc: RECHECK)  # type: ignore[no-any-return]
    except NoneAvailable:
        return []
