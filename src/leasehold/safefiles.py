"""Small state files in folders other users may be able to reach: the bypass audit log, the
heartbeat throttle files, the session-end notes and the settings cache.

A folder leasehold keeps such files in is created ``0700`` and refused (:class:`UnsafeFolder`)
when it is a symlink, is not owned by the effective user, or is writable by its group or by
everyone: in a folder someone else can write, a planted symlink would turn a write into a write
to the victim file it points at.

The check and the use cannot be told apart by a race: :class:`PrivateFolder` opens the folder
once (``O_DIRECTORY | O_NOFOLLOW``), checks the open folder (``fstat``), and then opens, replaces
and removes files *relative to that descriptor* (``dir_fd=``, i.e. ``openat``/``renameat``), so
a folder swapped for a symlink after the check is never written through. Files are opened with
``O_NOFOLLOW``; a file is replaced through a temporary file created ``O_EXCL``, ``0600`` under a
random name and renamed over it; an appended line is written whole or not at all, under an
exclusive ``flock`` that every leasehold writer of the file takes, so cutting a short write back
off never cuts another writer's line.

Only the standard library's cheapest modules are imported here: the hooks run on every agent
tool call.
"""

from __future__ import annotations

import os

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
#: a FIFO planted at a state file's path would block open() until someone opens the other end
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
#: openat()/renameat() available: files are reached through the folder's descriptor
_DIR_FD = os.open in os.supports_dir_fd and os.rename in os.supports_dir_fd


class UnsafeFolder(PermissionError):
    """A state folder that another user could write into (or a symlink to one)."""


def _check(path: str, st: os.stat_result) -> None:
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


class PrivateFolder:
    """A private state folder, held open: ``with PrivateFolder(path) as folder: ...``.

    ``path`` is created (mode ``0700``) if missing, opened without following a symlink, and
    checked on the open descriptor. Raises :class:`UnsafeFolder` (a :class:`PermissionError`,
    so an :class:`OSError`) when it is a symlink, not a folder, owned by another user, or
    group/world-writable; :class:`OSError` when it cannot be created or opened. File names given
    to the methods are single path components inside the folder.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except FileExistsError:
            pass
        if not _DIR_FD:  # no openat: check by path (a race remains on such platforms)
            _check(path, os.lstat(path))
            return
        try:
            fd = os.open(path, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
        except OSError as exc:
            import errno

            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                _check(path, os.lstat(path))  # says which (symlink / not a folder)
            raise
        try:
            _check(path, os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def __enter__(self) -> PrivateFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _name(self, name: str) -> str:
        if not name or "/" in name or os.sep in name or name in (".", ".."):
            raise ValueError(f"not a file name: {name!r}")
        return name if self.fd is not None else os.path.join(self.path, name)

    def _open(self, name: str, flags: int, mode: int = 0o600) -> int:
        return os.open(self._name(name), flags | _NOFOLLOW | _CLOEXEC, mode, dir_fd=self.fd)

    def replace(self, name: str, data: bytes) -> None:
        """Replace file ``name`` with ``data`` through a new ``O_EXCL`` temporary file in this
        folder and a rename (a symlink at ``name`` is replaced, never followed). Raises
        :class:`OSError`; no temporary file is left behind."""
        target = self._name(name)
        for _ in range(100):
            temp = self._name(f".{name}.{os.urandom(6).hex()}.tmp")
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC,
                             0o600, dir_fd=self.fd)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"{self.path}: no free temporary name")
        try:
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(temp, target, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            try:
                os.unlink(temp, dir_fd=self.fd)
            except OSError:
                pass
            raise

    def append(self, name: str, data: bytes) -> None:
        """Append ``data`` (one complete line) to file ``name`` (created ``0600``), whole or not
        at all.

        The file is opened ``O_APPEND | O_NOFOLLOW`` and must be a regular file owned by this
        user. The append holds an exclusive ``flock`` on the file, which every writer through
        this method takes: a write that stops short (a full disk, a file size limit) is cut back
        off while no other writer can have appended after it, and raised as :class:`OSError`,
        so the log never holds a torn line nor loses another writer's. Without ``flock`` (not
        POSIX) a short write is raised and left in place rather than risk cutting another line.
        Raises :class:`OSError`.
        """
        fd = self._open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NONBLOCK)
        try:
            import stat

            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeFolder(f"{os.path.join(self.path, name)} is not a regular file")
            if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
                raise UnsafeFolder(f"{os.path.join(self.path, name)} is owned by uid "
                                   f"{st.st_uid}, not by this user")
            try:
                import fcntl
            except ImportError:  # no flock: never cut, a concurrent line could be behind ours
                _write_all(fd, data)
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                start = os.fstat(fd).st_size
                try:
                    _write_all(fd, data)
                except OSError:
                    try:  # cut our torn tail back off: nobody else can have appended
                        if os.fstat(fd).st_size > start:
                            os.ftruncate(fd, start)
                    except OSError:
                        pass
                    raise
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def read(self, name: str, limit: int = 4096) -> bytes:
        """The first ``limit`` bytes of file ``name``, without following a symlink or blocking
        on a FIFO. Raises :class:`OSError` (``ELOOP`` for a symlink, :class:`UnsafeFolder` for
        anything but a regular file)."""
        fd = self._open(name, os.O_RDONLY | _NONBLOCK)
        try:
            import stat

            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafeFolder(f"{os.path.join(self.path, name)} is not a regular file")
            return os.read(fd, limit)
        finally:
            os.close(fd)

    def remove(self, name: str) -> None:
        """Remove file ``name`` (a missing file is not an error). Raises :class:`OSError`."""
        try:
            os.unlink(self._name(name), dir_fd=self.fd)
        except FileNotFoundError:
            pass


def private_folder(path: str) -> str:
    """Create ``path`` (mode ``0700``) if missing and check it is safe to keep state in (see
    :class:`PrivateFolder`, which callers that then use files in it should hold instead).
    Returns ``path``. Raises :class:`UnsafeFolder` or :class:`OSError`."""
    PrivateFolder(path).close()
    return path


def read_regular(path: str, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (a symlink followed), read without blocking on a
    FIFO and never past ``limit`` bytes: a file a repository carries as a symlink to
    ``/dev/zero`` is refused, not read until memory runs out. Raises
    :class:`FileNotFoundError`, or :class:`OSError` saying why (not a regular file, larger than
    ``limit``)."""
    import stat

    fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        too_big = f"{path} is larger than {limit:,} bytes"
        if st.st_size > limit:
            raise OSError(too_big)
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:  # grew while read
                raise OSError(too_big)
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(28, "short write: no space left")
        view = view[written:]
