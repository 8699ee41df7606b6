"""Operation ids (idempotency keys) shared by every mutating call of the domain: leases
(:mod:`leasehold.ledger`), ticket reservations (:mod:`leasehold.tickets`), file reservations
(:mod:`leasehold.paths`) and the feed (:mod:`leasehold.feed`).

A call carries an id (given by the caller, or a fresh random one) that the store records in the
``operations`` table in the same transaction as the call's effect, with the call's outcome and
the digest of its kind and arguments. Then:

- a retry with the same id and the same arguments does not apply again: it returns the recorded
  outcome (a lost acknowledgement is resolved by a lookup of the id);
- the same id with other arguments (another kind, task, holder or argument) is a different
  call: :class:`~leasehold.errors.InvalidInput` (exit 2), as an idempotency key reused for
  another request is refused by etcd or Stripe;
- a call that changed nothing (a conflict, nothing to do) records nothing.
"""

from __future__ import annotations

from leasehold.errors import Conflict, InvalidInput, OpRecorded
from leasehold.model import new_op_id, validate_op_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class OpKey(str):
    """An operation id carrying ``digest``: the SHA-256 (hex) of its call's kind and arguments,
    recorded beside the id (:func:`call_digest`). Stores bind ``str(key)``."""

    digest: str | None = None


_ENCODER: Any = None


def call_digest(kind: str, args: Any) -> str:
    """The digest of a call: SHA-256 (64 hex digits) of its kind and arguments as canonical JSON
    (sorted keys; values that are not JSON types by their ``str``)."""
    global _ENCODER
    import hashlib

    if _ENCODER is None:
        import json

        _ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(_ENCODER.encode([kind, args]).encode("utf-8")).hexdigest()


def op_key(op_id: str | None, kind: str, args: Any) -> OpKey:
    """The key a call records: ``op_id`` (validated; a fresh random id when None) with the
    digest of ``kind`` and ``args``. Raises :class:`InvalidInput` for a malformed id."""
    key = OpKey(new_op_id() if op_id is None else validate_op_id(op_id))
    key.digest = call_digest(kind, args)
    return key


def digest_of(op: str | None) -> str | None:
    """The digest an operation id carries (None for a plain string or None)."""
    return getattr(op, "digest", None)


def run_op(store: Any, op_id: str | None, kind: str, args: Any, call: Callable[[OpKey], Any], *,
           kinds: tuple[str, ...] | None = None, task_id: str | None = None,
           holder: tuple[str, str] | None = None,
           unchanged: Callable[[Any], bool] | None = None, fresh: bool = False,
           ) -> tuple[Any, dict[str, Any] | None, OpKey]:
    """Run ``call(key)`` under an operation id; returns ``(value, None, key)``, or ``(None,
    record, key)`` when the id is already recorded by a call with the same arguments (a retry
    of a call that applied: the caller replays ``record["result"]``).

    ``kind`` and ``args`` (JSON-able) make the digest. A given id is looked up first, so a
    retry replays even when repeating it would now decide otherwise. ``kinds`` (default
    ``(kind,)``), ``task_id`` and ``holder`` (``(actor, session)``): what the recorded
    operation must match, for a clear message naming what the id was used for.
    ``unchanged(value)``: true when the call changed nothing; with a given id the id is then
    looked up again, since a concurrent call with the same id (a retry racing the first
    attempt) may have applied it meanwhile: its outcome is replayed. So is a call with a given
    id that raised :class:`~leasehold.errors.Conflict` (a post refused as a duplicate of the
    one its first attempt made). ``fresh``: the caller
    generated ``op_id`` and sends it for the first time, so the first lookup is skipped when
    ``unchanged`` is given (a reused id is still caught when ``call`` records it:
    :class:`OpRecorded`, then replayed; or by the lookup after a call that changed nothing).
    Without ``unchanged`` a repeat that changes nothing could not be told from a first call,
    so the id is looked up first regardless.

    Raises :class:`InvalidInput` for a malformed id or an id recorded for a different call.
    """
    key = op_key(op_id, kind, args)
    record = None
    if op_id is not None and not (fresh and unchanged is not None):
        record = store.lookup_op(str(key))
    if record is None:
        try:
            value = call(key)
            if op_id is None or unchanged is None or not unchanged(value):
                return value, None, key
            record = store.lookup_op(str(key))
            if record is None:
                return value, None, key
        except OpRecorded as exc:
            record = exc.record or store.lookup_op(str(key))
            if record is None:  # pragma: no cover - a recorded id is never removed
                raise
        except Conflict:
            # Refused (a duplicate post, a lease held...): by the first attempt of this very
            # call, committed meanwhile, when a retry races it. Its outcome is replayed.
            if op_id is None:
                raise
            record = store.lookup_op(str(key))
            if record is None:
                raise
    check_record(record, key, kinds or (kind,), task_id, holder)
    return None, record, key


def check_record(record: dict[str, Any], key: OpKey, kinds: tuple[str, ...],
                 task_id: str | None, holder: tuple[str, str] | None) -> None:
    """Raise :class:`InvalidInput` unless ``record`` is the operation ``key`` names: the same
    kind, task, holder and (when both have one) digest of the arguments."""
    recorded = record.get("digest")
    if (record["kind"] not in kinds or (task_id is not None and record["task_id"] != task_id)
            or (holder is not None and (record["actor"], record["session"]) != holder)):
        by = f" by {record['actor']}:{record['session']}" if record["actor"] else ""
        raise InvalidInput(
            f"operation id {key} was already used for {record['kind']} of "
            f"{record['task_id'] or 'several items'}{by}; use a new id for a different call")
    if recorded and key.digest and recorded != key.digest:
        raise InvalidInput(
            f"operation id {key} was already used for {record['kind']} with other arguments; "
            "retry with the same arguments, or use a new id for a different call")
