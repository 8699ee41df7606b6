"""leasehold: a coordination ledger for fleets of concurrent workers.

Who holds what, until when, with which fencing token — one atomic, audited fact::

    from leasehold import Ledger
    with Ledger.open("sqlite:///tmp/ledger.db", create=True) as ledger:
        lease = ledger.claim("99927", "john:abc123", ttl="10m")

Names are imported lazily: ``import leasehold`` stays cheap on the hook fast path.
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "Ledger": "leasehold.ledger",
    "ReleaseResult": "leasehold.ledger",
    "Verdict": "leasehold.ledger",
    "Tickets": "leasehold.tickets",
    "Feed": "leasehold.feed",
    "Holder": "leasehold.model",
    "Namespace": "leasehold.model",
    "Reservation": "leasehold.model",
    "Post": "leasehold.model",
    "Lease": "leasehold.model",
    "Task": "leasehold.model",
    "Event": "leasehold.model",
    "Operation": "leasehold.model",
    "LeaseholdError": "leasehold.errors",
    "InvalidInput": "leasehold.errors",
    "NotFound": "leasehold.errors",
    "Conflict": "leasehold.errors",
    "LeaseHeld": "leasehold.errors",
    "NotHolder": "leasehold.errors",
    "LeaseExpired": "leasehold.errors",
    "StaleFence": "leasehold.errors",
    "NoneAvailable": "leasehold.errors",
    "TaskDone": "leasehold.errors",
    "DuplicatePost": "leasehold.errors",
    "LaneRefused": "leasehold.errors",
    "DependencyCycle": "leasehold.errors",
    "Refused": "leasehold.errors",
    "OutcomeUnknown": "leasehold.errors",
    "StoreError": "leasehold.errors",
    "StoreBusy": "leasehold.errors",
    "StoreUnavailable": "leasehold.errors",
    "ConfigError": "leasehold.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'leasehold' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
