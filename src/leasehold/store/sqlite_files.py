"""Recognising a SQLite ledger from its files, before any SQLite connection opens it.

Opening a database read-write is not harmless: the last connection to close a WAL-mode
database checkpoints its ``-wal`` into the main file and deletes it, and the first reader of a
rollback-journal database with a hot ``-journal`` rolls it back. Another application's database
must be left byte-for-byte as it was, so :func:`refuse_foreign` decides from the bytes on disk
(the SQLite file format, https://sqlite.org/fileformat2.html) whether the file is a ledger:

- the 100-byte header of the main file: ``SQLite format 3\\0`` and ``application_id``
  (big-endian, offset 68), which every ledger carries (:data:`APPLICATION_ID`);
- a pending ``-wal``: the last committed image of page 1 in it (a ledger's mark may still be
  there, not yet checkpointed into the main file). Frames count while their salts match the
  WAL header's, up to the last commit frame; checksums are not verified (a torn last frame can
  only make a foreign file look unmarked, which is refused anyway). The file alone (a private
  copy, without the ``-wal``) must then have no table yet or be a ledger made before the mark:
  a ledger moved or replaced while in use leaves its marked ``-wal`` under the old name, which
  SQLite would apply to any database put in its place;
- unmarked (``application_id`` 0) with pending writes (``-wal`` frames or a ``-journal``): a
  ledger made before the mark existed, or another application's database. Only its schema can
  tell, so a private copy of the files (in a temporary folder) is opened and examined; the
  originals are never opened.

Reads only, with plain file reads; no SQLite lock is taken on the originals. The caller probes
a file only before its process has opened it as a ledger: closing any descriptor of a file
releases every POSIX lock the process holds on it, SQLite's included (its connections would
then look absent to other processes, one of which could checkpoint and delete the -wal under
them). See ``SQLiteStore._connect``.
"""

from __future__ import annotations

import os

from leasehold.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

#: ``PRAGMA application_id`` of a leasehold ledger ("LHLD").
APPLICATION_ID = 0x4C484C44
_MAGIC = b"SQLite format 3\x00"
_WAL_MAGIC = (0x377F0682, 0x377F0683)
#: The largest unmarked database with pending writes examined through a private copy (bytes).
COPY_LIMIT = 256 * 1024 * 1024


def header_application_id(header: bytes) -> int:
    """``application_id`` from a main file's header (0 when the header is too short)."""
    return int.from_bytes(header[68:72], "big") if len(header) >= 72 else 0


def wal_application_id(path: str) -> int | None:
    """``application_id`` in the last committed image of page 1 in the write-ahead log
    ``path`` (``DB-wal``), or None when the log is missing, empty, not a WAL or holds no
    committed page 1."""
    try:
        fh = open(path, "rb")
    except OSError:
        return None
    with fh:
        head = fh.read(32)
        if len(head) < 32 or int.from_bytes(head[0:4], "big") not in _WAL_MAGIC:
            return None
        page_size = int.from_bytes(head[8:12], "big")
        if page_size == 1:
            page_size = 65536
        if page_size < 512 or page_size & (page_size - 1):
            return None
        salts = head[16:24]
        size = os.fstat(fh.fileno()).st_size
        found: int | None = None
        pending: int | None = None
        offset = 32
        while True:
            fh.seek(offset)
            frame = fh.read(24)
            if len(frame) < 24 or frame[8:16] != salts:
                break
            if offset + 24 + page_size > size:
                break  # a frame cut short
            if int.from_bytes(frame[0:4], "big") == 1:
                pending = header_application_id(fh.read(72))
            if int.from_bytes(frame[4:8], "big"):  # a commit frame: what precedes is committed
                if pending is not None:
                    found = pending
            offset += 24 + page_size
        return found


def _pending(path: str) -> list[str]:
    """The side files holding writes not yet in the main file: a non-empty ``-wal`` or
    ``-journal``."""
    out = []
    for suffix in ("-wal", "-journal"):
        try:
            if os.path.getsize(path + suffix) > 0:
                out.append(path + suffix)
        except OSError:
            pass
    return out


def refuse_foreign(path: str, looks_like_ledger: Callable[[str], str | None]) -> None:
    """Raise :class:`ConfigError` (exit 78), having opened nothing with SQLite, when the file
    at ``path`` is not a leasehold ledger by its bytes (see the module docstring); return when
    it is a ledger, or when a SQLite connection may open it without changing it (no file, an
    empty one, an unmarked one without pending writes: the caller's checks decide those).

    ``looks_like_ledger(copy)``: examines a private copy of an unmarked database with pending
    writes; returns None for a ledger, else the reason it is not one."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
    except OSError:
        return  # missing, a directory, unreadable: the caller's open reports it
    if not header:
        return  # an empty file: becomes a ledger only through init
    if not header.startswith(_MAGIC) or len(header) < 100:
        raise ConfigError(f"{path} is not a usable SQLite ledger (file is not a database); it was "
                          "left untouched: point --db / LEASEHOLD_DB / db in leasehold.toml at a "
                          "ledger")
    app_id = header_application_id(header)
    if app_id == APPLICATION_ID:
        return
    in_wal = wal_application_id(path + "-wal")
    if in_wal == APPLICATION_ID:
        # Marked in the log, not yet checkpointed into the header. The file alone must then be
        # what a ledger is before its mark reaches the header (no table yet, or a ledger made
        # before the mark): a ledger moved away or replaced while in use leaves its -wal, mark
        # included, under the old name, and SQLite would take it as the log of any database put
        # in its place (and checkpoint the ledger's pages into it).
        reason = _examine(path, [], looks_like_ledger)
        if reason is None:
            return
        raise ConfigError(
            f"{path} is not a leasehold ledger ({reason}), though the -wal beside it is a "
            "ledger's (was a ledger moved or replaced here while in use?); both were left "
            "untouched")
    if in_wal is not None:
        app_id = in_wal
    if app_id != 0:
        raise ConfigError(
            f"{path} is not a leasehold ledger (SQLite application_id {app_id:#x} belongs to "
            "another application); it was left untouched")
    pending = _pending(path)
    if not pending:
        return
    reason = _examine(path, pending, looks_like_ledger)
    if reason is not None:
        raise ConfigError(f"{path} is not a leasehold ledger ({reason}); it was left untouched: "
                          "point --db / LEASEHOLD_DB / db in leasehold.toml at a ledger, or "
                          "create one elsewhere with `leasehold init --db PATH`")


def _examine(path: str, sides: list[str], looks_like_ledger: Callable[[str], str | None],
             ) -> str | None:
    """``looks_like_ledger`` of a private copy (in a temporary folder) of the database ``path``
    with the side files ``sides`` (``-wal``, ``-journal``: applied to the copy as SQLite opens
    it; none: the file alone). Raises :class:`ConfigError` when the files are larger than
    :data:`COPY_LIMIT` or cannot be copied; the originals are only read."""
    names = ", ".join(os.path.basename(p) for p in sides)
    try:
        size = os.path.getsize(path) + sum(os.path.getsize(p) for p in sides)
    except OSError as exc:
        raise ConfigError(f"cannot examine {path} ({exc.strerror}); it was left untouched"
                          ) from None
    if size > COPY_LIMIT:
        pending = f"has writes pending in {names}" if sides else "has its mark only in its -wal"
        raise ConfigError(
            f"{path} is not marked as a leasehold ledger and {pending}; it "
            "was left untouched (opening it would apply them). If it is a ledger made by an "
            "older leasehold, stop the programs using it and checkpoint it (sqlite3 PATH "
            "'PRAGMA wal_checkpoint(TRUNCATE)'), then retry")
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="leasehold-probe-") as folder:
        copy = os.path.join(folder, "probe.db")
        try:
            shutil.copyfile(path, copy)
            for side in sides:
                shutil.copyfile(side, copy + side[len(path):])
        except OSError as exc:
            raise ConfigError(f"cannot examine {path} ({exc.strerror}); it was left untouched"
                              ) from None
        return looks_like_ledger(copy)
