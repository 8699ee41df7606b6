"""Small state files in folders other users may be able to reach: the bypass audit log, the
heartbeat throttle files and the settings cache.

A folder leasehold keeps such files in is created ``0700`` and refused (:class:`UnsafeFolder`)
when it is a symlink, is not owned by the effective user, or is writable by its group or by
everyone: in a folder someone else can write, a planted symlink would turn a write into a write
to the victim file it points at. Files are opened with ``O_NOFOLLOW``; a file is replaced through a
temporary file from :func:`tempfile.mkstemp` (created ``O_EXCL``, ``0600``) and ``os.replace``; an
appended line is written whole or not at all (a short write is truncated away and raised).

Only the standard library's cheapest modules are imported here: the hooks run on every agent
tool call.
"""

from __future__ import annotations

import os

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: a FIFO planted at a state file's path would block open() until someone opens the other end
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class UnsafeFolder(PermissionError):
    """A state folder that another user could write into (or a symlink to one)."""


def private_folder(path: str) -> str:
    """Create ``path`` (mode ``0700``) if missing and check it is safe to keep state in.

    Returns ``path``. Raises :class:`UnsafeFolder` (a :class:`PermissionError`, so an
    :class:`OSError`) when ``path`` is a symlink, not a folder, owned by another user, or
    group/world-writable; :class:`OSError` when it cannot be created.
    """
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        pass
    st = os.lstat(path)
    import stat

    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFolder(f"{path} is a symlink; refusing to keep state files there")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFolder(f"{path} is not a folder")
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise UnsafeFolder(f"{path} is owned by uid {st.st_uid}, not by this user (uid "
                           f"{os.geteuid()}); refusing to keep state files there")
    if st.st_mode & 0o022:
        raise UnsafeFolder(f"{path} is writable by other users (mode {st.st_mode & 0o777:o}); "
                           "refusing to keep state files there (chmod 700 it)")
    return path


def replace_file(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` through a ``mkstemp`` file in the same folder and
    ``os.replace`` (a symlink at ``path`` is replaced, never followed). The folder must have
    passed :func:`private_folder`. Raises :class:`OSError`; no temporary file is left behind."""
    import tempfile

    folder, name = os.path.split(path)
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder or ".")
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def append_record(path: str, data: bytes) -> None:
    """Append ``data`` (one complete line) to ``path`` (created ``0600``), whole or not at all.

    The file is opened ``O_APPEND | O_NOFOLLOW`` and must be a regular file owned by this user.
    A write that stops short (a full disk, a file size limit) is cut back off the file and
    raised as :class:`OSError`, so the log never holds a torn line. Raises :class:`OSError`.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _NONBLOCK,
                 0o600)
    try:
        import stat

        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFolder(f"{path} is not a regular file")
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise UnsafeFolder(f"{path} is owned by uid {st.st_uid}, not by this user")
        start = st.st_size
        try:
            _write_all(fd, data)
        except OSError:
            try:  # cut the torn tail back off, if nobody appended after it
                if os.fstat(fd).st_size > start:
                    os.ftruncate(fd, start)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


def read_small(path: str, limit: int = 4096) -> bytes:
    """The first ``limit`` bytes of ``path``, without following a symlink or blocking on a
    FIFO. Raises :class:`OSError` (``ELOOP`` for a symlink, :class:`UnsafeFolder` for anything
    but a regular file)."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK)
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeFolder(f"{path} is not a regular file")
        return os.read(fd, limit)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(28, "short write: no space left")
        view = view[written:]
