"""The exception hierarchy. Every error leasehold raises derives from :class:`LeaseholdError`.

Each class carries the process exit code the CLI maps it to (documented in the README):

====  =========================================================================
code  meaning
====  =========================================================================
0     ok
1     conflict: held by another, not the holder, lease expired, stale fence,
      none available, blocked
2     usage or invalid input
3     not found
70    internal error (a bug: please report it)
75    store busy or unavailable, nothing applied: retry later (``EX_TEMPFAIL``)
76    outcome unknown: the operation may or may not have applied; look its
      operation id up (``leasehold op OP_ID``) before retrying with that id
77    permission denied: no token, a bad token, or acting as another actor
      (``EX_NOPERM``)
78    configuration error: a permanent condition retrying cannot fix (a missing
      ledger, a file that is not a ledger, a bad URL, permission denied on a
      file; ``EX_CONFIG``)
====  =========================================================================

A class's docstring is its default message.
"""

from __future__ import annotations


class LeaseholdError(Exception):
    """leasehold failed."""

    exit_code = 70

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidInput(LeaseholdError):
    """Invalid input."""

    exit_code = 2


class NotFound(LeaseholdError):
    """Not found."""

    exit_code = 3


class Conflict(LeaseholdError):
    """The ledger's state does not allow this operation now."""

    exit_code = 1


class LeaseHeld(Conflict):
    """The task is held by another holder.

    Attributes: ``task_id``; ``holder`` (``actor:session``); ``expires_at`` (UTC seconds since
    the epoch); ``fence`` (the holder's fencing token).
    """

    def __init__(self, task_id: str, holder: str, expires_at: float, fence: int) -> None:
        from leasehold.model import format_ts

        self.task_id = task_id
        self.holder = holder
        self.expires_at = expires_at
        self.fence = fence
        super().__init__(f"Task {task_id} held by {holder} until {format_ts(expires_at)}")


class NotHolder(Conflict):
    """The caller does not hold the lease."""


class LeaseExpired(Conflict):
    """The lease has expired."""


class StaleFence(Conflict):
    """The fencing token is stale: a newer lease was granted since (Kleppmann 2016)."""


class NoneAvailable(Conflict):
    """No task is available."""


class TaskDone(Conflict):
    """The task is done."""


class DependencyCycle(Conflict):
    """The dependency would close a cycle: a blocker already waits on the task."""


class Refused(Conflict):
    """The database refused the change: it would break an invariant the schema enforces
    (a unique ticket number, an append-only table)."""


class StoreError(LeaseholdError):
    """The store failed; retry later."""

    exit_code = 75


class StoreBusy(StoreError):
    """The store stayed busy past the timeout; retry later."""


class StoreUnavailable(StoreError):
    """The store cannot be reached; retry later."""


class OutcomeUnknown(LeaseholdError):
    """The operation's outcome is unknown: the connection was lost after COMMIT was sent and
    the ledger could not be reached to find out whether it applied.

    Attributes: ``op_id`` (the operation id recorded in the event if it applied; retry with the
    same id, or look it up later, e.g. ``Ledger.lookup_op(op_id)``).
    """

    exit_code = 76

    def __init__(self, message: str | None = None, op_id: str | None = None) -> None:
        self.op_id = op_id
        super().__init__(message)


class PermissionDenied(LeaseholdError):
    """Permission denied."""

    exit_code = 77


class ConfigError(LeaseholdError):
    """The configuration is wrong: retrying will not help until it is fixed."""

    exit_code = 78


class DuplicatePost(Conflict):
    """The item already has an open actionable post.

    Attributes: ``task_id`` (the item) and ``post_id`` (the open actionable post).
    """

    def __init__(self, message: str, task_id: str, post_id: int) -> None:
        self.task_id = task_id
        self.post_id = post_id
        super().__init__(message)


class LaneRefused(Conflict):
    """The namespace is lane-private to another actor."""


class OpRecorded(LeaseholdError):
    """The operation id is already recorded: an earlier attempt with this id applied.

    Raised by a store inside a call that carries the id (the call's own changes are rolled
    back) and turned by :class:`~leasehold.ledger.Ledger` into the recorded outcome: it never
    reaches a caller of the Ledger (if it does, it is a bug: exit 70). Attributes: ``op_id``;
    ``record`` (the recorded operation, a dict, or None when it must be looked up).
    """

    def __init__(self, op_id: str, record: dict | None = None) -> None:  # type: ignore[type-arg]
        self.op_id = op_id
        self.record = record
        super().__init__(f"operation {op_id} is already recorded")
