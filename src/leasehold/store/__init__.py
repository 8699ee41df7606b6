"""Stores: the only layer that speaks SQL or imports a database driver.

:func:`open_store` picks the implementation from a URL and imports only that driver.
"""

from __future__ import annotations

from leasehold.errors import InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from leasehold.store.sqlbase import SQLStore


def open_store(
    url: str,
    *,
    clock: Callable[[], float] | None = None,
    busy_timeout: float | None = None,
) -> SQLStore:
    """Open the store a URL names.

    ``url``: a filesystem path or ``sqlite:///abs/path`` / ``sqlite:relative/path`` for the
    embedded SQLite store; ``postgresql://user@host/db`` (or ``postgres://``) for PostgreSQL.
    ``clock``: a callable returning UTC seconds since the epoch (SQLite only; PostgreSQL always
    uses the database server's clock). ``busy_timeout``: seconds to wait for a lock before
    raising :class:`~leasehold.errors.StoreBusy`.

    Raises :class:`InvalidInput` for an unknown scheme, a NUL or bytes that are not UTF-8, and
    the store's errors on open.
    """
    if "\0" in url:
        raise InvalidInput(f"database URL {url!r} contains a NUL character")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"database URL {url!r} is not UTF-8 text") from None
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        from leasehold.store.postgres import PostgresStore

        return PostgresStore(url, busy_timeout=busy_timeout)
    if url.startswith("sqlite:"):
        path = url[len("sqlite:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise InvalidInput(f"database URL {url!r} names no file")
    elif sep:
        raise InvalidInput(
            f"database URL {url!r} has an unknown scheme {scheme!r}; "
            "use a path, sqlite:///path or postgresql://..."
        )
    else:
        path = url
    from leasehold.store.sqlite import SQLiteStore

    return SQLiteStore(path, clock=clock, busy_timeout=busy_timeout)
