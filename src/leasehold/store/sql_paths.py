"""File reservations and session-wide operations over named queries (``sql/paths.sql``,
``sql/sessions.sql``): a mixin of :class:`~leasehold.store.sqlbase.SQLStore`.

- Reserving takes the ``path_fence`` row first (``lock_path_fence``): on PostgreSQL that row lock
  serialises reservers until commit, on SQLite ``BEGIN IMMEDIATE`` already does. The overlap
  check against other holders' valid reservations and the grant are therefore one atomic step.
  Whether two patterns overlap is the domain's rule (:func:`leasehold.paths.overlaps`), passed in
  as a callable: the store only applies it inside the transaction.
- Every change appends its event in the same transaction: ``path_reserved``, ``path_extended``,
  ``path_released``, ``path_expired`` (``task_id`` NULL, the pattern in the details, the fencing
  token in ``fence``).
- Session-wide heartbeat and release act on every lease whose holder's session is the given
  session (the agent hooks), each with its usual event (``extended``, ``released``).
"""

from __future__ import annotations

from leasehold.model import PathReservation, Task

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from leasehold.store.sqlbase import Tx

    #: (pattern, exclusive, other reservation) -> do they conflict?
    ConflictRule = Callable[[str, bool, PathReservation], bool]


def _fields(res: PathReservation) -> dict[str, Any]:
    """A reservation as its stored fields (recorded with an operation)."""
    return {name: getattr(res, name) for name in res.__slots__}


class PathsSQL:
    """File reservations, the gate's batched lookup, session-wide heartbeat and release."""

    if TYPE_CHECKING:
        def _write(self, op: str | None = None) -> Any: ...
        def _read(self) -> Any: ...

    # -- file reservations -----------------------------------------------------------------
    def _expire_paths(self, tx: Tx) -> None:
        for row in tx.all("delete_expired_paths"):
            gone = PathReservation.from_row(row)
            tx.event("path_expired", None, gone.actor, gone.session, gone.fence,
                     pattern=gone.pattern, expired_at=gone.expires_at)

    def reserve_paths(self, patterns: Sequence[str], actor: str, session: str, ttl: float,
                      exclusive: bool, reason: str | None, conflicts: ConflictRule, *,
                      op: str | None = None,
                      ) -> tuple[list[PathReservation], list[tuple[str, PathReservation]]]:
        """Reserve every pattern for ``actor:session`` for ``ttl`` seconds, all or none.

        Returns ``(granted, conflicting)``: when any pattern conflicts with another holder's
        valid reservation (per ``conflicts``), nothing is granted and ``conflicting`` lists
        ``(pattern, their reservation)``. Re-reserving one's own valid pattern renews it (same
        fence, new expiry and mode); a new grant takes the next fencing token. ``op``: the
        operation id recorded with a grant (``reserve_paths``, the reservations as granted).
        """
        with self._write(op) as tx:
            tx.run("lock_path_fence")
            self._expire_paths(tx)
            others = [PathReservation.from_row(r)
                      for r in tx.all("valid_paths_of_others", actor=actor, session=session)]
            clashes = [(pattern, other) for pattern in patterns for other in others
                       if conflicts(pattern, exclusive, other)]
            if clashes:
                return [], clashes
            granted = []
            for pattern in patterns:
                row = tx.one("get_path", pattern=pattern, actor=actor, session=session)
                renewed = row is not None and tx.now < row["expires_at"]
                if renewed:
                    fence, acquired = row["fence"], row["acquired_at"]
                else:
                    fence, acquired = tx.one("next_path_fence")["fence"], tx.now
                new = PathReservation.from_row(tx.one(
                    "upsert_path", pattern=pattern, actor=actor, session=session,
                    exclusive=1 if exclusive else 0, reason=reason, acquired_at=acquired,
                    until=tx.now + ttl, ttl=ttl, fence=fence))
                details: dict[str, Any] = {"pattern": pattern, "exclusive": exclusive,
                                           "expires_at": new.expires_at, "ttl": ttl}
                if reason:
                    details["reason"] = reason
                if renewed:
                    details["renewed"] = True
                tx.event("path_reserved", None, actor, session, fence, **details)
                granted.append(new)
            tx.record_op(op, "reserve_paths", None, actor, session,
                         {"paths": [_fields(res) for res in granted]})
            return granted, []

    def release_paths(self, patterns: Sequence[str], actor: str, session: str, *,
                      op: str | None = None) -> list[tuple[str, PathReservation | None]]:
        """Delete the holder's reservations of ``patterns`` (valid or expired): ``[(pattern,
        the reservation released or None when the holder had none)]``. ``op``: the operation
        id recorded when anything was released (``release_paths``)."""
        out: list[tuple[str, PathReservation | None]] = []
        with self._write(op) as tx:
            for pattern in patterns:
                row = tx.one("delete_path", pattern=pattern, actor=actor, session=session)
                if row is None:
                    out.append((pattern, None))
                    continue
                gone = PathReservation.from_row(row)
                details: dict[str, Any] = {"pattern": pattern}
                if not tx.now < gone.expires_at:
                    details["after_expiry"] = True
                tx.event("path_released", None, actor, session, gone.fence, **details)
                out.append((pattern, gone))
            if any(gone is not None for _, gone in out):
                tx.record_op(op, "release_paths", None, actor, session, {"released": [
                    [pattern, None if gone is None else _fields(gone)] for pattern, gone in out]})
        return out

    def force_release_paths(self, patterns: Sequence[str], actor: str | None,
                            session: str | None, reason: str, *, op: str | None = None,
                            ) -> list[tuple[str, list[PathReservation]]]:
        """Delete every holder's reservation of each of ``patterns`` (the crashed-session
        runbook), one ``path_force_released`` event each with ``reason``, the reservation's
        holder and who did it (``actor:session``, or None). Returns ``[(pattern, the
        reservations deleted)]``. ``op``: the operation id recorded when anything was
        cleared (``force_release_paths``)."""
        out: list[tuple[str, list[PathReservation]]] = []
        with self._write(op) as tx:
            for pattern in patterns:
                gone = [PathReservation.from_row(r) for r in tx.all("delete_pattern", pattern=pattern)]
                for res in gone:
                    details: dict[str, Any] = {"pattern": pattern, "reason": reason,
                                               "holder": res.holder}
                    if not tx.now < res.expires_at:
                        details["after_expiry"] = True
                    tx.event("path_force_released", None, actor, session, res.fence, **details)
                out.append((pattern, gone))
            if any(gone for _, gone in out):
                tx.record_op(op, "force_release_paths", None, actor, session, {"cleared": [
                    [pattern, [_fields(res) for res in gone]] for pattern, gone in out]})
        return out

    def sweep_paths(self, auto_release: bool) -> list[PathReservation]:
        """Reservations past expiry (as they were); with ``auto_release`` delete each, one
        ``path_expired`` event each."""
        if not auto_release:
            with self._read() as tx:
                return [PathReservation.from_row(r) for r in tx.all("expired_paths")]
        with self._write() as tx:
            gone = [PathReservation.from_row(r) for r in tx.all("expired_paths")]
            self._expire_paths(tx)
            return gone

    def valid_paths(self) -> list[PathReservation]:
        """Every valid reservation, by pattern."""
        with self._read() as tx:
            return [PathReservation.from_row(r) for r in tx.all("valid_paths")]

    def exclusive_paths_not_of_session(self, session: str) -> list[PathReservation]:
        """Valid exclusive reservations whose holder's session is not ``session`` (the Edit gate)."""
        with self._read() as tx:
            return [PathReservation.from_row(r)
                    for r in tx.all("exclusive_paths_not_of_session", session=session)]

    # -- the dispatch gate ------------------------------------------------------------------
    def held_among(self, ids: Sequence[str]) -> list[Task]:
        """The tasks among ``ids`` with a valid lease, in one query (unknown ids are skipped)."""
        if not ids:
            return []
        from leasehold.store.sqlbase import json_array

        with self._read() as tx:
            return [Task.from_row(r) for r in tx.all("held_among", ids=json_array(ids))]

    def record_bypass(self, tasks: Sequence[Task], actor: str | None, session: str | None,
                      details: dict[str, Any]) -> None:
        """Append one ``bypass`` event per task (one with no task when ``tasks`` is empty), in
        one transaction; each carries the task's holder and fence at the time."""
        with self._write() as tx:
            if not tasks:
                tx.event("bypass", None, actor, session, None, **details)
            for task in tasks:
                tx.event("bypass", task.id, actor, session, task.fence,
                         lease_holder=task.lease_holder, lease_until=task.lease_until, **details)

    # -- everything one session holds -------------------------------------------------------
    def session_heartbeat(self, session: str) -> tuple[list[Task], list[PathReservation]]:
        """Extend every valid lease and file reservation whose holder's session is
        ``session`` by its own TTL (same fence), one event each; returns what was extended.
        The leases are found through the session index and extended by one statement
        (PostgreSQL: which also returns them, one round trip)."""
        tasks: list[Task] = []
        paths: list[PathReservation] = []
        with self._write() as tx:
            now = tx.now
            if "extend_session_returning" in tx.queries:  # PostgreSQL: one round trip
                extended = [Task.from_row(row) for row in
                            tx.all("extend_session_returning", session=session)]
                extended.sort(key=lambda t: t.id)
            else:
                extended = []
                rows = tx.all("valid_leases_of_session", session=session)
                if rows:
                    tx.run("extend_session_leases", session=session)
                    for row in rows:
                        new = dict(row)
                        new["lease_until"] = now + row["lease_ttl"]
                        new["updated_at"] = now
                        extended.append(Task.from_row(new))
            for task in extended:
                tasks.append(task)
                tx.event("extended", task.id, task.lease_actor, session, task.fence,
                         expires_at=task.lease_until, ttl=task.lease_ttl, via="heartbeat")
            for row in tx.all("paths_of_session", session=session):
                res = PathReservation.from_row(row)
                if not res.valid(now):
                    continue
                new = tx.one("extend_path", pattern=res.pattern, actor=res.actor, session=session,
                             until=now + res.ttl)
                if new is not None:
                    tx.event("path_extended", None, res.actor, session, res.fence,
                             pattern=res.pattern, expires_at=new["expires_at"], ttl=res.ttl,
                             via="heartbeat")
                    paths.append(PathReservation.from_row(new))
        return tasks, paths

    def session_release_count(self, session: str) -> tuple[int, int]:
        """:meth:`session_release` for a caller that needs only the numbers released
        ``(leases, file reservations)``: the leases are not read back (the session-end hook,
        whose time budget is short, with any number of leases)."""
        with self._write() as tx:
            if "release_session_leases_count" in tx.queries:
                leases = int(tx.one("release_session_leases_count", session=session)["released"])
            else:
                leases = tx.run("log_session_release", session=session)
                if leases:
                    tx.run("clear_session_leases", session=session)
            paths = self._release_session_paths(tx, session)
        return leases, len(paths)

    def _release_session_paths(self, tx: Tx, session: str) -> list[PathReservation]:
        paths: list[PathReservation] = []
        for row in tx.all("paths_of_session", session=session):
            res = PathReservation.from_row(row)
            if tx.one("delete_path", pattern=res.pattern, actor=res.actor, session=session) is None:
                continue
            extra: dict[str, Any] = {"pattern": res.pattern, "via": "session-end"}
            if not res.valid(tx.now):
                extra["after_expiry"] = True
            tx.event("path_released", None, res.actor, session, res.fence, **extra)
            paths.append(res)
        return paths

    def session_release(self, session: str) -> tuple[list[Task], list[PathReservation]]:
        """Release every lease and file reservation whose holder's session is ``session``
        (a task ``in_progress`` goes back to ``open``), one event each; returns what was
        released (tasks as they were before). Set-based: the leases are found through the
        session index and cleared, with their events, by one statement per table
        (PostgreSQL: one statement in all), whatever their number."""
        with self._write() as tx:
            if "release_session_leases" in tx.queries:
                tasks = [Task.from_row(row)
                         for row in tx.all("release_session_leases", session=session)]
            else:
                tasks = [Task.from_row(row) for row in tx.all("leases_of_session", session=session)]
                if tasks:
                    tx.run("log_session_release", session=session)
                    tx.run("clear_session_leases", session=session)
            paths = self._release_session_paths(tx, session)
        return tasks, paths
