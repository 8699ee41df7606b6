"""Crash-safe file operations for the missions tree.

- :func:`atomic_write`: write a temporary file in the same folder, flush and ``fsync`` it, then
  ``os.replace`` it over the target and ``fsync`` the folder. A crash leaves either the old or
  the new file, never a torn one (POSIX ``rename(2)`` is atomic within one file system).
  Temporary files are hidden (``.NAME.XXXX.tmp``) and never end in ``.md``, so a crash can
  leave at most an ignored temporary file, never a second copy of a mission.
- :func:`move`: ``os.rename`` between two folders of one tree: the file is in exactly one
  folder at every instant. It refuses to overwrite an existing target.
"""

from __future__ import annotations

import os

from leasehold.errors import Conflict

TEMP_SUFFIX = ".tmp"


def fsync_dir(folder: str) -> None:
    """``fsync`` a folder so a rename in it is durable (ignored where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, *, exclusive: bool = False) -> None:
    """Replace (or create) ``path`` with ``data`` atomically and durably.

    The new file keeps the permission bits of the file it replaces. With ``exclusive`` the
    target must not exist: the temporary file is hard-linked into place, which fails
    atomically if another writer created the target first (raises :class:`FileExistsError`).
    Raises :class:`OSError` on I/O failure; the target is then unchanged and no temporary file
    is left behind.
    """
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=TEMP_SUFFIX,
                                dir=folder)
    try:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        if exclusive:
            os.link(temp, path)
            os.unlink(temp)
        else:
            os.replace(temp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(folder)


def move(source: str, target: str) -> None:
    """Move ``source`` to ``target`` (another folder of the same tree) with one ``rename``.

    Raises :class:`~leasehold.errors.Conflict` if ``target`` exists (never overwritten) and
    :class:`FileNotFoundError` if ``source`` is gone.
    """
    if os.path.lexists(target):
        raise Conflict(f"{target} already exists; not overwriting it with {source}")
    os.rename(source, target)
    fsync_dir(os.path.dirname(os.path.abspath(target)))
    fsync_dir(os.path.dirname(os.path.abspath(source)))
