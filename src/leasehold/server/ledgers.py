"""One :class:`~leasehold.ledger.Ledger` per worker thread, for ``leasehold serve`` and
``leasehold mcp``, with the ledgers of ended threads closed.

Requests run in anyio's worker threads, and a ledger (a SQLite connection, or a PostgreSQL one
serving one request at a time) is opened per thread. anyio ends a worker that has been idle
for 10 seconds and starts new ones for the next burst of requests: without closing the ended
threads' ledgers, each burst after a quiet spell left its connections open (dozens of
PostgreSQL connections per burst, until the server refused more).
"""

from __future__ import annotations

import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from leasehold.ledger import Ledger


class ThreadLedgers:
    """The ledger of the calling thread (opened with ``open_ledger`` on first use). The
    ledgers of threads that have ended are closed at the latest :attr:`REAP_EVERY` seconds
    later, on the next :meth:`get`."""

    #: How often (seconds) :meth:`get` looks for the ledgers of ended threads.
    REAP_EVERY = 2.0

    def __init__(self, open_ledger: Callable[[], Ledger]) -> None:
        self._open = open_ledger
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[tuple[threading.Thread, Ledger]] = []
        self._next_reap = 0.0

    def get(self) -> Ledger:
        """The calling thread's ledger. Raises what ``open_ledger`` raises."""
        if time.monotonic() >= self._next_reap:
            self.reap()
        led: Ledger | None = getattr(self._local, "ledger", None)
        if led is None:
            led = self._open()
            self._local.ledger = led
            with self._lock:
                self._opened.append((threading.current_thread(), led))
        return led

    def reap(self) -> int:
        """Close the ledgers of threads that have ended; returns how many."""
        with self._lock:
            self._next_reap = time.monotonic() + self.REAP_EVERY
            ended = [led for thread, led in self._opened if not thread.is_alive()]
            self._opened = [(thread, led) for thread, led in self._opened if thread.is_alive()]
        for led in ended:
            _close(led)
        return len(ended)

    def __len__(self) -> int:
        """How many ledgers are open."""
        with self._lock:
            return len(self._opened)

    def close(self) -> None:
        """Close every ledger (at shutdown)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for _, led in opened:
            _close(led)


def _close(led: Ledger) -> None:
    try:
        led.close()
    except Exception:
        pass
