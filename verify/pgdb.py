"""A PostgreSQL database of its own for a verification run, so that backend terminations
(``pg_terminate_backend``) can pick this run's leasehold backends by database name and never
touch anyone else's.

The server: ``LEASEHOLD_TEST_PG`` (a ``postgresql://`` URL), else the ``PG*`` variables, else
``postgresql://postgres@127.0.0.1:5432/test`` (as the test suite).
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit


def server_url() -> str:
    explicit = os.environ.get("LEASEHOLD_TEST_PG")
    if explicit:
        return explicit
    host = os.environ.get("PGHOST", "127.0.0.1")
    port = os.environ.get("PGPORT", "5432")
    user = os.environ.get("PGUSER", "postgres")
    password = os.environ.get("PGPASSWORD")
    db = os.environ.get("PGDATABASE", "test")
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return f"postgresql://{auth}@{host}:{port}/{db}"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def available() -> str | None:
    """None when the server answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(server_url(), connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"no PostgreSQL server at {server_url()}: {str(exc).strip().splitlines()[0]}"
    return None


@contextmanager
def temporary_database():
    """Yield ``(url, name)`` of a new, empty database; dropped (forcibly) afterwards."""
    import psycopg

    admin = server_url()
    name = "lh_verify_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin, name), name
    finally:
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error:
            pass
