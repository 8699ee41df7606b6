"""File-based missions (``missions/queue -> active -> done``) backed by ledger leases.

See :mod:`leasehold.missions.board` for the protocol and :mod:`leasehold.missions.document` for
the file format. Names are imported lazily.
"""

from __future__ import annotations

_EXPORTS = {
    "Missions": "leasehold.missions.board",
    "Mission": "leasehold.missions.board",
    "MissionView": "leasehold.missions.board",
    "Outcome": "leasehold.missions.board",
    "Problem": "leasehold.missions.board",
    "NoMission": "leasehold.missions.board",
    "Document": "leasehold.missions.document",
    "InvalidMission": "leasehold.missions.document",
    "atomic_write": "leasehold.missions.files",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'leasehold.missions' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
