"""PostgreSQL for the test suite (a pytest plugin loaded from conftest).

The server: ``LEASEHOLD_TEST_PG`` (a ``postgresql://`` URL), else built from the ``PG*``
variables (``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``, ``PGDATABASE``), else
``postgresql://postgres@127.0.0.1:5432/test``.

"postgres" is always added to ``tests.conftest.BACKENDS``. Each test gets a fresh schema (named
in the URL's ``search_path``), dropped afterwards. Without a reachable server the postgres
parameters skip with the reason; with ``LEASEHOLD_REQUIRE_PG=1`` they FAIL instead.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest

from tests import conftest


def base_url() -> str:
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


BASE_URL = base_url()
REQUIRED = os.environ.get("LEASEHOLD_REQUIRE_PG", "").strip() not in ("", "0", "false", "no")


def _probe() -> str | None:
    """None when the server answers, else why not."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover
        return f"psycopg is not installed: {exc}"
    try:
        with psycopg.connect(BASE_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"no PostgreSQL server at {BASE_URL}: {str(exc).strip().splitlines()[0]}"
    return None


UNAVAILABLE = _probe()

if "postgres" not in conftest.BACKENDS:
    conftest.BACKENDS.append("postgres")


def require_pg() -> None:
    """Skip (or fail, with LEASEHOLD_REQUIRE_PG=1) when no server is reachable."""
    if UNAVAILABLE is None:
        return
    if REQUIRED:
        pytest.fail(f"LEASEHOLD_REQUIRE_PG=1 but {UNAVAILABLE}", pytrace=False)
    pytest.skip(f"{UNAVAILABLE} (set LEASEHOLD_TEST_PG or PG* to point at one)")


def admin():
    """An autocommit connection to the test database (outside any test schema)."""
    import psycopg

    return psycopg.connect(BASE_URL, autocommit=True, connect_timeout=5)


def url_for_schema(schema: str) -> str:
    sep = "&" if "?" in BASE_URL else "?"
    return f"{BASE_URL}{sep}options={quote('-csearch_path=' + schema, safe='')}"


def create_schema() -> str:
    schema = "lh_" + uuid.uuid4().hex[:16]
    with admin() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def drop_schema(schema: str) -> None:
    import psycopg

    try:
        with admin() as conn:
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    except psycopg.Error:
        pass  # a straggler still holds a lock: leave the schema, it is uniquely named


@pytest.fixture
def pg_schema_url() -> str:
    """A URL naming a fresh, empty schema (no ledger in it) on the test server."""
    require_pg()
    schema = create_schema()
    try:
        yield url_for_schema(schema)
    finally:
        drop_schema(schema)


@pytest.fixture
def pg_url(pg_schema_url: str) -> str:
    """A URL naming a fresh, empty (created) ledger in its own schema on the test server."""
    return conftest.create_ledger(pg_schema_url)
