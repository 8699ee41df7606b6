"""Stores: the only layer that speaks SQL or imports a database driver.

:func:`open_store` picks the implementation from a URL and imports only that driver.
"""

from __future__ import annotations

from leasehold.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from leasehold.store.sqlbase import SQLStore


def open_store(
    url: str,
    *,
    clock: Callable[[], float] | None = None,
    busy_timeout: float | None = None,
    create: bool = False,
) -> SQLStore:
    """Open the store a URL names.

    ``url``: a filesystem path or ``sqlite:///abs/path`` / ``sqlite:relative/path`` for the
    embedded SQLite store; ``postgresql://user@host/db`` (or ``postgres://``) for PostgreSQL.
    ``clock``: a callable returning UTC seconds since the epoch (SQLite only; PostgreSQL always
    uses the database server's clock). ``busy_timeout``: seconds to wait for a lock before
    raising :class:`~leasehold.errors.StoreBusy`. ``create``: make the ledger if there is none
    (the SQLite file and folder, or the schema in an existing PostgreSQL database); otherwise a
    missing ledger is a :class:`~leasehold.errors.ConfigError`.

    Raises :class:`~leasehold.errors.ConfigError` for a malformed URL or an unknown scheme, and
    the store's errors on open.
    """
    from leasehold.urls import split

    try:
        kind, target = split(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if kind == "postgres":
        from leasehold.store.postgres import PostgresStore

        return PostgresStore(target, busy_timeout=busy_timeout, create=create)
    from leasehold.store.sqlite import SQLiteStore

    return SQLiteStore(target, clock=clock, busy_timeout=busy_timeout, create=create)
