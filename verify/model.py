"""The sequential model of one task that recorded histories are checked against.

State: ``(exists, holder, fence, status)`` -- ``holder`` an ``actor:session`` string or None,
``fence`` the fencing token (0 before the first grant), ``status`` ``open`` / ``in_progress`` /
``done`` (None while the task does not exist). With long TTLs no lease expires during a
history, so time does not enter the model.

The rules are the ledger's (README "CLI reference", ``leasehold.ledger``,
``store/sqlbase.py``):

- ``claim`` creates an unknown task and grants it (fence 1); a done task is refused
  (``TaskDone``); the holder's own valid lease is renewed with the same fence; another holder's
  valid lease refuses (``LeaseHeld`` carrying holder and fence); a free task is granted with
  fence + 1. Every grant sets status ``in_progress``.
- ``extend``: unknown task -> ``NotFound``; the holder -> same fence, nothing else changes; no
  lease -> ``NotHolder``; another holder -> ``LeaseHeld``.
- ``release`` (status back to ``open``): unknown -> ``NotFound``; the holder -> released
  (lease cleared, status ``open``, fence kept); no lease -> exit 0, ``released`` False, nothing
  changes; another holder -> ``LeaseHeld``.
- ``done``: unknown -> ``NotFound``; the holder -> status ``done``, lease cleared, fence kept;
  no lease -> ``NotHolder``; another holder -> ``LeaseHeld``.
- ``reopen``: unknown -> ``NotFound``; else status ``open`` (the lease, if any, stays).
- ``status``: read-only: the task's holder, fence and status, or absent.

Results are normalised to tuples, the same for the Python API and the CLI's ``--json``:

=========  ==============================================================================
op         values
=========  ==============================================================================
claim      ``("ok", holder, fence)``, ``("held", holder, fence)``, ``("taskdone",)``
extend     ``("ok", holder, fence)``, ``("held", holder, fence)``, ``("notholder",)``,
           ``("notfound",)``
release    ``("released", fence)``, ``("notheld",)``, ``("held", holder, fence)``,
           ``("notfound",)``
done       ``("ok", fence)``, ``("held", holder, fence)``, ``("notholder",)``,
           ``("notfound",)``
reopen     ``("ok", holder, fence)``, ``("notfound",)``
status     ``("task", holder, fence, status)``, ``("absent",)``
=========  ==============================================================================

Anything else the ledger answers (``("error", TYPE)``, e.g. ``LeaseExpired`` with a long TTL)
is never produced by the model, so the checker reports it.
"""

from __future__ import annotations

State = tuple  # (exists: bool, holder: str | None, fence: int, status: str | None)

INIT: State = (False, None, 0, None)

OPS = ("claim", "extend", "release", "done", "reopen", "status")
#: Operations that never change the state (an unknown outcome of one needs no linearizing).
READS = frozenset({"status"})


_REFUSALS = frozenset({"held", "notholder", "notheld", "notfound", "taskdone"})


def never_changes(f: str, value: tuple | None) -> bool:
    """True when an operation answering ``value`` leaves the state as it was in EVERY state in
    which the model gives that answer (a read, a refusal, a heartbeat). A renewal or a reopen
    is not one: it changes the status when the task was open / in progress."""
    if value is None:
        return False
    return f == "status" or value[0] in _REFUSALS or (f == "extend" and value[0] == "ok")


def step(state: State, f: str, holder: str) -> tuple[State, tuple]:
    """Apply operation ``f`` by ``holder`` to ``state``: ``(new_state, expected_value)``."""
    exists, current, fence, status = state
    if f == "status":
        return state, (("task", current, fence, status) if exists else ("absent",))
    if not exists:
        if f == "claim":
            return (True, holder, 1, "in_progress"), ("ok", holder, 1)
        return state, ("notfound",)
    if f == "claim":
        if status == "done":
            return state, ("taskdone",)
        if current == holder:
            return (True, holder, fence, "in_progress"), ("ok", holder, fence)
        if current is not None:
            return state, ("held", current, fence)
        return (True, holder, fence + 1, "in_progress"), ("ok", holder, fence + 1)
    if f == "extend":
        if current == holder:
            return state, ("ok", holder, fence)
        if current is None:
            return state, ("notholder",)
        return state, ("held", current, fence)
    if f == "release":
        if current == holder:
            return (True, None, fence, "open"), ("released", fence)
        if current is None:
            return state, ("notheld",)
        return state, ("held", current, fence)
    if f == "done":
        if current == holder:
            return (True, None, fence, "done"), ("ok", fence)
        if current is None:
            return state, ("notholder",)
        return state, ("held", current, fence)
    if f == "reopen":
        return (True, current, fence, "open"), ("ok", current, fence)
    raise ValueError(f"unknown operation {f!r}")


def describe(state: State) -> str:
    exists, holder, fence, status = state
    if not exists:
        return "absent"
    return f"{status}, holder {holder or '-'}, fence {fence}"


# -- normalising results ---------------------------------------------------------------------
def from_api(f: str, result: object) -> tuple:
    """The normalised value of a Python API call's return value."""
    if f in ("claim", "extend"):
        lease = result
        return ("ok", str(lease.holder), lease.fence)  # type: ignore[attr-defined]
    if f == "release":
        if result.released:  # type: ignore[attr-defined]
            return ("released", result.task.fence)  # type: ignore[attr-defined]
        return ("notheld",)
    if f == "done":
        return ("ok", result.fence)  # type: ignore[attr-defined]
    if f == "reopen":
        return ("ok", result.lease_holder, result.fence)  # type: ignore[attr-defined]
    if f == "status":
        if result is None:
            return ("absent",)
        return ("task", result.lease_holder, result.fence, result.status)  # type: ignore[attr-defined]
    raise ValueError(f)


def from_api_error(exc: BaseException) -> tuple:
    """The normalised value of a Conflict / NotFound the API raised."""
    name = type(exc).__name__
    if name == "LeaseHeld":
        return ("held", exc.holder, exc.fence)  # type: ignore[attr-defined]
    if name == "TaskDone":
        return ("taskdone",)
    if name == "NotHolder":
        return ("notholder",)
    if name == "NotFound":
        return ("notfound",)
    return ("error", name)


def from_cli(f: str, code: int, data: object) -> tuple:
    """The normalised value of a CLI call that exited 0, 1 or 3 with ``--json`` output."""
    if not isinstance(data, dict):
        return ("error", f"exit {code} without JSON")
    if code != 0:
        error = data.get("error") or {}
        name = error.get("type")
        if name == "LeaseHeld":
            return ("held", error.get("holder"), error.get("fence"))
        if name == "TaskDone":
            return ("taskdone",)
        if name == "NotHolder":
            return ("notholder",)
        if name == "NotFound":
            return ("notfound",)
        return ("error", str(name))
    if f in ("claim", "extend"):
        return ("ok", data.get("lease_holder"), data.get("fence"))
    if f == "release":
        return ("released", data.get("fence")) if data.get("released") else ("notheld",)
    if f == "done":
        return ("ok", data.get("fence"))
    if f == "reopen":
        return ("ok", data.get("lease_holder"), data.get("fence"))
    if f == "status":
        if not data.get("exists"):
            return ("absent",)
        return ("task", data.get("lease_holder"), data.get("fence"), data.get("status"))
    raise ValueError(f)
