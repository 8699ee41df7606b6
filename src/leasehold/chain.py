"""Hash chains over the append-only tables: the canonical row encoding and the hashes.

Pure functions (no SQL, no driver): the SQLite store computes the hashes of the rows it inserts
with them, PostgreSQL computes the same bytes in its ``leasehold_chain`` trigger (migration
0009), and ``leasehold verify`` (:mod:`leasehold.verify`) recomputes both from the stored rows.

Chains. Each table is split into independent chains by a key column, so that on PostgreSQL
writes to unrelated chains never wait for each other:

- ``events``: one chain per ``task_id`` (events without a task form one chain);
- ``feed_posts``: one chain per ``item`` (posts without an item form one chain);
- ``reservations``: one chain per namespace (``prefix``);
- ``namespaces``: one per ``prefix`` (a definition never changes: a chain of one row).

A row stores ``prev_hash``, the ``hash`` of the previous row (lower ``id``) of its chain (NULL for
the first row, or when the previous row predates the chains), and ``hash``::

    hash = SHA-256( b"leasehold-chain-v1\\0" + table + b"\\0" + prev + encoding(row) )

``prev`` is the previous hash's 32 bytes (32 zero bytes when NULL); ``encoding(row)`` concatenates,
for each column of :data:`TABLES` in order: ``N`` for NULL; ``I`` + 8-byte big-endian signed for
an integer; ``F`` + the 8-byte big-endian IEEE-754 double for a time; ``T`` + 4-byte big-endian
length + UTF-8 bytes for text. Floats are hashed by their bits, never by a decimal rendering, so
Python and PostgreSQL (``float8send``) agree exactly.

Checkpoints (table ``chain_checkpoints``) cover the global id range of a table: checkpoint *k*
of a table records the ids ``(from_id, upto_id]``, how many rows were there, a digest over their
``(id, hash)`` in id order, and is itself chained::

    digest = SHA-256( b"leasehold-range-v1\\0" + for each row: 8-byte id + 32-byte row hash )
    hash   = SHA-256( b"leasehold-checkpoint-v1\\0" + table + b"\\0" + prev checkpoint hash (32)
                      + 8-byte from_id + 8-byte upto_id + 8-byte count + digest + kind )

A row that predates the chains (``hash`` NULL) enters the digest with its :func:`legacy_hash`
(the row hash with no predecessor), which is how the genesis checkpoint, taken when migration
0009 is applied, covers the history written before it.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

#: table -> (chain key column, [(column, type)]) with type i (integer), f (time), t (text).
TABLES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "events": ("task_id", (
        ("id", "i"), ("ts", "f"), ("kind", "t"), ("task_id", "t"), ("actor", "t"),
        ("session", "t"), ("fence", "i"), ("details", "t"),
    )),
    "feed_posts": ("item", (
        ("id", "i"), ("ts", "f"), ("recorded_at", "f"), ("seat", "t"), ("actor", "t"),
        ("session", "t"), ("kind", "t"), ("item", "t"), ("subject", "t"), ("body", "t"),
        ("refs", "i"), ("flags", "t"), ("origin", "t"), ("proof_kind", "t"), ("proof", "t"),
        ("import_key", "t"), ("details", "t"),
    )),
    "reservations": ("prefix", (
        ("id", "i"), ("ticket_id", "t"), ("prefix", "t"), ("period", "t"), ("seq", "i"),
        ("actor", "t"), ("session", "t"), ("reserved_at", "f"),
    )),
    "namespaces": ("prefix", (
        ("id", "i"), ("prefix", "t"), ("format", "t"), ("lane_actor", "t"),
        ("created_at", "f"), ("created_by", "t"),
    )),
}

#: The chained tables in the order verify and anchors name them.
CHAINED = tuple(TABLES)

ZERO = bytes(32)
_ROW_PREFIX = b"leasehold-chain-v1\0"
_INT = struct.Struct(">q")
_FLOAT = struct.Struct(">d")
_LEN = struct.Struct(">I")


def _sha256(data: bytes = b"") -> Any:
    import hashlib  # not at import time: the hook path imports the store without hashing

    return hashlib.sha256(data)


def _bytes32(hex_hash: str | None) -> bytes:
    """The 32 bytes of a stored hex hash (32 zero bytes for None). A value that is not 64 hex
    digits (an edited or forged row) maps to the SHA-256 of its text, so verification reports a
    mismatch instead of failing, and a chain built after it still has a well-formed link."""
    if not hex_hash:
        return ZERO
    try:
        data = bytes.fromhex(hex_hash)
    except (ValueError, TypeError):
        data = b""
    if len(data) == 32:
        return data
    return _sha256(b"leasehold-malformed\0" + str(hex_hash).encode("utf-8", "replace")).digest()


def encode_row(table: str, row: Mapping[str, Any]) -> bytes:
    """The canonical bytes of ``row`` (a mapping column -> value) of ``table``.

    Raises KeyError for an unknown table or a missing column, ValueError/TypeError for a value
    its column cannot hold."""
    parts = []
    for column, kind in TABLES[table][1]:
        value = row[column]
        if value is None:
            parts.append(b"N")
        elif kind == "i":
            parts.append(b"I" + _INT.pack(int(value)))
        elif kind == "f":
            parts.append(b"F" + _FLOAT.pack(float(value)))
        else:
            data = str(value).encode("utf-8")
            parts.append(b"T" + _LEN.pack(len(data)) + data)
    return b"".join(parts)


def row_hash(table: str, prev_hash: str | None, row: Mapping[str, Any]) -> str:
    """The hex SHA-256 of ``row`` chained after ``prev_hash`` (hex, or None for a first row)."""
    prev = _bytes32(prev_hash)
    digest = _sha256(_ROW_PREFIX + table.encode() + b"\0" + prev + encode_row(table, row))
    return digest.hexdigest()


def legacy_hash(table: str, row: Mapping[str, Any]) -> str:
    """The hash a row written before the chains existed enters checkpoints with."""
    return row_hash(table, None, row)


class RangeDigest:
    """The running digest of one checkpoint range: feed ``(id, hash)`` in id order."""

    __slots__ = ("_h", "count", "last_id")

    def __init__(self) -> None:
        self._h = _sha256(b"leasehold-range-v1\0")
        self.count = 0
        self.last_id = 0

    def add(self, row_id: int, hex_hash: str) -> None:
        self._h.update(_INT.pack(row_id) + _bytes32(hex_hash))
        self.count += 1
        self.last_id = row_id

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def checkpoint_hash(table: str, prev_hash: str | None, from_id: int, upto_id: int, count: int,
                    digest: str, kind: str) -> str:
    """The hex hash of a checkpoint (see the module docstring)."""
    prev = _bytes32(prev_hash)
    data = (b"leasehold-checkpoint-v1\0" + table.encode() + b"\0" + prev + _INT.pack(from_id)
            + _INT.pack(upto_id) + _INT.pack(count) + _bytes32(digest) + kind.encode())
    return _sha256(data).hexdigest()


# -- anchors ----------------------------------------------------------------------------------
ANCHOR_TAG = "leasehold-anchor/1"


def format_anchor(heads: Mapping[str, tuple[int, str]]) -> str:
    """One line: ``leasehold-anchor/1 events=UPTO:HASH feed_posts=... ...`` from
    ``{table: (upto_id, checkpoint_hash)}``."""
    return " ".join([ANCHOR_TAG] + [f"{t}={heads[t][0]}:{heads[t][1]}" for t in CHAINED if t in heads])


def parse_anchor(line: str) -> dict[str, tuple[int, str]]:
    """``{table: (upto_id, checkpoint_hash)}`` from an anchor line. Raises ValueError (with the
    reason) when the line is not one."""
    words = line.split()
    if not words or words[0] != ANCHOR_TAG:
        raise ValueError(f"an anchor starts with {ANCHOR_TAG!r}")
    heads: dict[str, tuple[int, str]] = {}
    for word in words[1:]:
        table, sep, rest = word.partition("=")
        upto, sep2, digest = rest.partition(":")
        if not sep or not sep2 or table not in TABLES:
            raise ValueError(f"{word!r} is not TABLE=UPTO:HASH with a chained table")
        try:
            number = int(upto)
            bytes.fromhex(digest)
        except ValueError:
            raise ValueError(f"{word!r}: UPTO must be an integer and HASH hex") from None
        if number < 0 or len(digest) != 64:
            raise ValueError(f"{word!r}: UPTO must be >= 0 and HASH 64 hex digits")
        if table in heads:
            raise ValueError(f"{table} is named twice")
        heads[table] = (number, digest.lower())
    if not heads:
        raise ValueError("the anchor names no table")
    return heads
