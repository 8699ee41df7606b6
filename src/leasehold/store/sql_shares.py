"""SQL for lease sharing (``sql/shares.sql``, migration 0011): a mixin of
:class:`~leasehold.store.sqlbase.SQLStore`.

A share names the task's fencing token when it was made: it lasts as long as that grant (the
holder's renewals keep the fence; a takeover or a new claim after release makes a new fence, and
the share no longer counts). Sharing takes the task's row lock (``lock_task``) and checks in the
same transaction that the caller holds a valid lease, then appends a ``shared`` event naming the
sessions not yet shared with, then their shares (a share follows its event: migration 0013).
"""

from __future__ import annotations

from leasehold.model import Task

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


class SharesSQL:
    def share_lease(self, task_id: str, actor: str, session: str,
                    sessions: Sequence[str]) -> tuple[Task | None, bool]:
        """Let ``sessions`` work under the valid lease ``actor:session`` holds on ``task_id``.
        Returns ``(task, shared)``: ``(None, False)`` for an unknown task, ``(task, False)`` when
        the caller does not hold a valid lease (nothing written)."""
        with self._write() as tx:  # type: ignore[attr-defined]
            row = tx.one("lock_task", id=task_id)
            if row is None:
                return None, False
            task = Task.from_row(row)
            if not (task.lease_actor == actor and task.lease_session == session
                    and task.lease_valid(tx.now)):
                return task, False
            self._insert_shares(tx, task, actor, session, sessions)
            return task, True

    @staticmethod
    def _insert_shares(tx: Any, task: Task, actor: str, session: str, sessions: Sequence[str]) -> list[str]:
        """Share ``task``'s current grant (its fence) with ``sessions``, in ``tx``; one
        ``shared`` event naming the sessions newly added. Returns them."""
        have = {r["session"] for r in tx.all("shares_of_grant", id=task.id, fence=task.fence)}
        added = [other for other in dict.fromkeys(sessions) if other not in have]
        if added:
            # the event first: each share must follow it (lease_shares_explained, 0013)
            tx.event("shared", task.id, actor, session, task.fence, sessions=added)
            for other in added:
                tx.run("insert_share", id=task.id, fence=task.fence, session=other,
                       by=f"{actor}:{session}")
        return added

    def shares_among(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """Task id -> the sessions its current valid grant is shared with, for ``ids``."""
        if not ids:
            return {}
        import json

        out: dict[str, list[str]] = {}
        with self._read() as tx:  # type: ignore[attr-defined]
            for row in tx.all("shares_among", ids=json.dumps(list(ids))):
                out.setdefault(row["task_id"], []).append(row["session"])
        return out
