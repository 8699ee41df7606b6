"""The store contract every backend implements (SQLite embedded, PostgreSQL).

Rules every implementation keeps:

- Every mutation is one transaction that changes state AND appends its event(s) to ``events``.
- ``events`` is append-only, enforced by the database (triggers), not by convenience; each
  appended row (and each of ``feed_posts``, ``reservations``, ``namespaces``) is hash-chained
  in the same transaction (:mod:`leasehold.chain`).
- Time comes from one clock per store: an injectable callable for SQLite, the server's clock
  for PostgreSQL. All times are UTC seconds since the epoch.
- Driver errors are translated once, at the store boundary: lock waits past the timeout raise
  :class:`~leasehold.errors.StoreBusy`, lost or unreachable servers
  :class:`~leasehold.errors.StoreUnavailable` (both exit 75). A store error is never turned
  into a success and never retried through a weaker path.
- The store decides only what one atomic step must decide (e.g. whether a lease is free at the
  instant of the grant); the domain (:mod:`leasehold.ledger`) turns outcomes into errors.

This module is for type checkers and readers; runtime code does not import it (``typing``
costs milliseconds on the hook fast path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from leasehold.model import Event, Task


class ClaimOutcome(NamedTuple):
    """``task`` as it stands after the attempt; ``granted``; ``renewed`` when the same holder
    re-claimed a valid lease (same fence); ``previous`` the ``actor:session`` whose expired
    lease was taken over, if any; ``created`` when the claim created the task."""

    task: Task
    granted: bool
    renewed: bool = False
    previous: str | None = None
    created: bool = False


class Store(Protocol):
    dialect: str
    applied_on_open: list[str]

    def now(self) -> float: ...
    def close(self) -> None: ...
    def clone(self) -> Store: ...
    def migrate(self) -> list[str]: ...
    def get_task(self, task_id: str) -> Task | None: ...
    def add_task(self, task_id: str, title: str | None, priority: int | None,
                 actor: str | None, session: str | None) -> tuple[Task, bool]: ...
    def set_status(self, task_id: str, status: str, actor: str | None,
                   session: str | None, kind: str) -> Task | None: ...
    def claim(self, task_id: str, actor: str, session: str, ttl: float,
              title: str | None = None, priority: int | None = None, *,
              share_with: Sequence[str] = ()) -> ClaimOutcome: ...
    def extend(self, task_id: str, actor: str, session: str, ttl: float | None,
               fence: int | None) -> tuple[Task | None, bool]: ...
    def release(self, task_id: str, actor: str | None, session: str | None, *,
                status: str | None, kind: str, force: bool = False,
                details: dict[str, Any] | None = None,
                fence: int | None = None) -> tuple[Task | None, str]: ...
    def complete_many(self, task_ids: Sequence[str], actor: str, session: str) -> list[Task]: ...
    def next(self, actor: str, session: str, ttl: float, count: int = 1) -> list[Task]: ...
    def sweep(self, auto_release: bool) -> list[Task]: ...
    def list_tasks(self) -> list[Task]: ...
    def tasks_page(self, status: str | None, held: bool | None,
                   after: tuple[int, float, str] | None, limit: int) -> list[Task]: ...
    def active_leases(self) -> list[Task]: ...
    def leases_of(self, actor: str, session: str) -> list[Task]: ...
    def events(self, task_id: str | None = None, limit: int | None = None,
               after: int = 0) -> list[Event]: ...
    def append_event(self, kind: str, task_id: str | None, actor: str | None,
                     session: str | None, fence: int | None,
                     details: dict[str, Any]) -> None: ...
    # hash chains (leasehold.store.sql_chain, leasehold.verify)
    def checkpoint(self) -> dict[str, tuple[int, str]]: ...
    def audit(self) -> Any: ...
    def restore_guards(self) -> list[str]: ...
