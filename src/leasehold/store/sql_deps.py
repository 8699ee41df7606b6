"""Store methods of the ready queue with dependencies (``sql/dependencies.sql``).

A dependency ``(task_id, blocked_by)`` says ``task_id`` waits until ``blocked_by`` is done. The
ready queue is every task that is not done, has no valid lease and whose blockers are all done
(``ready_tasks``; ``ready_candidates`` applies the same rule when ``next`` claims). Every change
to the graph appends a ``dependency_added`` / ``dependency_removed`` event in its transaction.
"""

from __future__ import annotations

from leasehold.model import Task

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from contextlib import AbstractContextManager
    from typing import Any

    from leasehold.store.sqlbase import Tx


def task_row(task: Task) -> dict[str, Any]:
    """A task as a plain dict of its columns (a recorded operation's outcome)."""
    return {name: getattr(task, name) for name in Task.__slots__}


class DependenciesSQL:
    """Mixin for :class:`~leasehold.store.sqlbase.SQLStore`."""

    if TYPE_CHECKING:
        def _write(self, op: str | None = None) -> AbstractContextManager[Tx]: ...
        def _read(self) -> AbstractContextManager[Tx]: ...
        def _create(self, tx: Tx, task_id: str, title: str | None, priority: int | None,
                    actor: str | None, session: str | None) -> bool: ...

    def _check_blockers(self, tx: Tx, task_id: str, blockers: Sequence[str],
                        exists: bool) -> tuple[str, list[str]] | None:
        """Why ``task_id`` cannot wait on ``blockers`` (``("missing", ids)`` or
        ``("cycle", path)``), or None. Reads only; call before writing anything."""
        missing = [b for b in blockers if tx.one("task_exists", id=b) is None]
        if missing:
            return "missing", missing
        if exists:
            for blocker in blockers:
                if tx.one("depends_transitively", start=blocker, target=task_id) is not None:
                    return "cycle", [task_id, blocker]
        return None

    def _add_edges(self, tx: Tx, task_id: str, blockers: Sequence[str], actor: str | None,
                   session: str | None) -> list[str]:
        added = []
        for blocker in blockers:
            if tx.run("insert_dependency", id=task_id, blocked_by=blocker) == 1:
                tx.event("dependency_added", task_id, actor, session, None, blocked_by=blocker)
                added.append(blocker)
        return added

    def add_dependencies(self, task_id: str, blockers: Sequence[str], actor: str | None,
                         session: str | None, *, create: bool = False, title: str | None = None,
                         priority: int | None = None,
                         op: str | None = None) -> tuple[str, Task | None, list[str]]:
        """Make ``task_id`` wait on each of ``blockers`` (ids, no duplicates, not itself), in
        one transaction; with ``create``, create the task (or update title/priority) first.

        Returns ``(outcome, task, ids)``: ``("ok", task, added)`` (``added``: the edges that
        were new; ``"created"`` instead of ``"ok"`` when ``create`` created the task);
        ``("not_found", None, [task_id])``; ``("missing", None, unknown_blockers)``;
        ``("cycle", None, [task_id, blocker])`` when ``blocker`` already waits (directly or
        through others) on ``task_id``. Nothing is written unless the outcome is ``ok`` or ``created``.
        ``op``: the operation id recorded when something was written.
        """
        with self._write(op) as tx:
            tx.one("lock_dependencies")
            exists = tx.one("task_exists", id=task_id) is not None
            if not exists and not create:
                return "not_found", None, [task_id]
            problem = self._check_blockers(tx, task_id, blockers, exists)
            if problem is not None:
                return problem[0], None, problem[1]
            created = False
            if create:
                created = self._create(tx, task_id, title, priority, actor, session)
                if not created and (title is not None or priority is not None):
                    tx.run("update_task_meta", id=task_id, title=title, priority=priority,
                           status=None)
                    tx.event("updated", task_id, actor, session, None,
                             **{k: v for k, v in (("title", title), ("priority", priority))
                                if v is not None})
            added = self._add_edges(tx, task_id, blockers, actor, session)
            task = Task.from_row(tx.one("get_task", id=task_id))
            outcome = "created" if created else "ok"
            if created or added or title is not None or priority is not None:
                tx.record_op(op, "depend", task_id, actor, session,
                             {"tasks": [task_row(task)], "outcome": outcome, "ids": added})
            return outcome, task, added

    def remove_dependencies(self, task_id: str, blockers: Sequence[str], actor: str | None,
                            session: str | None, *,
                            op: str | None = None) -> tuple[str, Task | None, list[str]]:
        """Stop ``task_id`` waiting on ``blockers``. Returns ``("ok", task, removed)`` (the
        edges that existed) or ``("not_found", None, [task_id])``. ``op``: the operation id
        recorded when an edge was removed."""
        with self._write(op) as tx:
            tx.one("lock_dependencies")
            if tx.one("task_exists", id=task_id) is None:
                return "not_found", None, [task_id]
            removed = []
            for blocker in blockers:
                if tx.run("delete_dependency", id=task_id, blocked_by=blocker) == 1:
                    tx.event("dependency_removed", task_id, actor, session, None,
                             blocked_by=blocker)
                    removed.append(blocker)
            task = Task.from_row(tx.one("get_task", id=task_id))
            if removed:
                tx.record_op(op, "undepend", task_id, actor, session,
                             {"tasks": [task_row(task)], "outcome": "ok", "ids": removed})
            return "ok", task, removed

    def blockers_of(self, task_id: str) -> list[tuple[str, str]]:
        """``[(blocker_id, blocker_status)]`` of ``task_id``, done ones included."""
        with self._read() as tx:
            return [(row["id"], row["status"]) for row in tx.all("blockers_of", id=task_id)]

    def ready_tasks(self, limit: int | None) -> list[Task]:
        """The ready queue, highest priority first, then oldest (at most ``limit``)."""
        with self._read() as tx:
            rows = tx.all("ready_tasks", limit=self._limit(-1 if limit is None else limit),
                          unlimited=self._limit(-1))
        return [Task.from_row(row) for row in rows]

    def blocked_tasks(self) -> list[tuple[Task, list[tuple[str, str]]]]:
        """Tasks not done that wait on at least one blocker not done, with those blockers
        ``[(id, status)]``; by priority then age."""
        with self._read() as tx:
            rows = tx.all("blocked_tasks")
        result: list[tuple[Task, list[tuple[str, str]]]] = []
        for row in rows:
            if not result or result[-1][0].id != row["id"]:
                result.append((Task.from_row(row), []))
            result[-1][1].append((row["blocker_id"], row["blocker_status"]))
        return result

    if TYPE_CHECKING:
        def _limit(self, limit: int) -> int | None: ...
