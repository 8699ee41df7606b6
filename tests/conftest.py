"""Shared fixtures: a fresh ledger per test on every backend, and a CLI runner that spawns the
real ``leasehold`` console script as an OS process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: tests/pg.py provides the ``pg_url`` fixture and adds "postgres" to BACKENDS.
pytest_plugins = ("tests.pg", "tests.server")
pytest.register_assert_rewrite("tests.pg", "tests.server")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
LEASEHOLD = shutil.which("leasehold", path=str(Path(sys.executable).parent)) or "leasehold"

#: Backends the store-contract and CLI tests run against. tests/pg.py adds "postgres" when a
#: server is reachable (and fails the run when LEASEHOLD_REQUIRE_PG=1 and it is not).
BACKENDS = ["sqlite"]

_IDENTITY_VARS = ("LEASEHOLD_DB", "LEASEHOLD_TOKEN", "LEASEHOLD_ACTOR", "LEASEHOLD_SESSION",
                  "CLAUDE_CODE_SESSION_ID", "CODEX_THREAD_ID", "GEMINI_SESSION_ID", "CLAUDE_SESSION_ID",
                  "LEASEHOLD_ENFORCE", "LEASEHOLD_MISSIONS_DIR", "LEASEHOLD_BUSY_TIMEOUT")


#: Files whose ``slow`` tests race the most PostgreSQL connections (up to 49 at once).
_RACES_PG_FILES = ("test_pg_races.py", "test_races.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the files for ``make test`` (xdist ``--dist loadfile --no-loadscope-reorder``: each
    worker takes the next whole file in this order): the largest first, as xdist's own reorder
    does, except that the two files of the "races-pg" group go first and fifth, so one worker
    usually runs both in turn instead of one waiting for the other's lock, or the last one
    running alone at the end. Tests keep their order within a file."""
    from collections import Counter

    count = Counter(item.path.name for item in items)
    files = sorted(count, key=lambda name: -count[name])
    for at, name in ((0, "test_races.py"), (4, "test_pg_races.py")):
        if name in files:
            files.remove(name)
            files.insert(min(at, len(files)), name)
    rank = {name: i for i, name in enumerate(files)}
    items.sort(key=lambda item: rank[item.path.name])


@pytest.fixture(autouse=True)
def _one_race_at_a_time(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Tests marked ``slow`` start many real processes racing on one database. Under
    pytest-xdist (``make test``) each takes a lock file shared by every worker of the run, one
    per group, before anything else: the PostgreSQL-heavy races (``_RACES_PG_FILES``, or
    ``@pytest.mark.slow(group="races-pg")``; at most 49 connections) and the rest (at most 17)
    each run one at a time, so the server's 100 connections are never exceeded. (A lock, not
    xdist's ``loadgroup``: that stops grouping on newer pytest, pytest-dev/pytest-xdist#1386.)"""
    marker = request.node.get_closest_marker("slow")
    if marker is None:
        yield
        return
    from filelock import FileLock

    group = marker.kwargs.get("group") or ("races-pg" if request.node.path.name in _RACES_PG_FILES else "races")
    # basetemp is <run>/popen-gwN under xdist: its parent is shared by the run's workers (and
    # by no other run); in one process (no xdist, or -n 0) the lock is the run's own
    base = tmp_path_factory.getbasetemp()
    where = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with FileLock(str(where / f"leasehold-{group}.lock")):
        yield


#: For tests of what a hook does (not of its limits): its wall-clock deadline and busy timeout
#: (pre-tool-use: 3 s busy, 5 s in all) raised, so that a loaded machine cannot fail them. The
#: tests of the limits pass their own values; ``benchmarks/bench_hooks.py`` times the defaults.
LOADED_MACHINE_HOOK_ENV = {"LEASEHOLD_HOOK_DEADLINE": "120", "LEASEHOLD_BUSY_TIMEOUT": "30"}


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", step: float = 0.02):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns something truthy (returned), failing after ``timeout``
    seconds: tests wait on conditions, never on a fixed sleep."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


class FakeClock:
    """An injectable clock: UTC seconds, advanced by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _backend_params() -> list[str]:
    try:
        from tests import pg  # noqa: F401  (registers "postgres" when available)
    except ImportError:
        pass
    return list(BACKENDS)


def create_ledger(url: str) -> str:
    """Create the ledger ``url`` names (leasehold never creates one at an explicit location by
    itself: ``leasehold init`` / ``Ledger.open(url, create=True)``); returns ``url``."""
    from leasehold import Ledger

    Ledger.open(url, create=True).close()
    return url


#: The backends plus a ``leasehold serve`` server over each (the contract suites use these).
REMOTE_BACKENDS = ["remote", "remote-postgres"]


def sql_only(db: str) -> None:
    """Skip on a ``leasehold serve`` URL: the test runs SQL against the database itself (the
    server's own store passes it on the SQLite and PostgreSQL parameters)."""
    if db.startswith("http"):
        pytest.skip("raw SQL / schema of the database itself: covered by the store's own parameters")


def make_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ``db_url`` of ``request.param``: a path, a PostgreSQL schema, or a server's URL."""
    if request.param.startswith("remote"):
        from tests.server import remote_db_url

        return remote_db_url(request, tmp_path)
    if request.param == "sqlite":
        return create_ledger(str(tmp_path / "ledger.db"))
    return request.getfixturevalue("pg_url")


@pytest.fixture(params=_backend_params())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL naming a fresh, empty ledger on each backend."""
    return make_db_url(request, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, empty (created) SQLite ledger."""
    return create_ledger(str(tmp_path / "ledger.db"))


@pytest.fixture
def ledger(db_url: str):
    from leasehold import Ledger

    with Ledger.open(db_url) as led:
        yield led


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment for CLI processes: no identity leaking in from the machine."""
    env = {k: v for k, v in os.environ.items() if k not in _IDENTITY_VARS}
    env["HOME"] = str(tmp_path / "home")
    env["XDG_DATA_HOME"] = str(tmp_path / "home" / ".local" / "share")
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["USER"] = "tester"
    return env


@pytest.fixture(scope="session", autouse=True)
def _fork_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """This test process's CLI fork server (tests/forkserver.py), started on first use by
    every :class:`CLI`."""
    from tests.forkserver import ForkServer

    server = ForkServer(str(tmp_path_factory.mktemp("forkserver")), LEASEHOLD)
    CLI.forks = server
    yield server
    CLI.forks = None
    server.close()


class CLI:
    """Run ``leasehold`` as a real process against one ledger: each call is its own OS process
    with the given environment, working directory and standard streams, forked from a server that
    has the CLI imported (``tests/forkserver.py``; ``LEASEHOLD_TEST_CLI=exec`` starts a fresh
    interpreter for every call instead). :meth:`popen` always starts the console script."""

    forks = None  # the session's ForkServer (set by the _fork_server fixture)

    def __init__(self, db: str, env: dict[str, str], cwd: Path) -> None:
        self.db = db
        self.env = env
        self.cwd = cwd

    def __call__(self, *args: str, env: dict[str, str] | None = None, input: str | None = None,
                 timeout: float = 60, db: bool = True) -> subprocess.CompletedProcess[str]:
        full_env = dict(self.env)
        if db:
            full_env["LEASEHOLD_DB"] = self.db
        full_env.update(env or {})
        if self.forks is not None:
            return self.forks.run(list(args), env=full_env, cwd=str(self.cwd), input=input,
                                  timeout=timeout)
        return subprocess.run([LEASEHOLD, *args], capture_output=True, text=True, env=full_env,
                              input=input, timeout=timeout, cwd=self.cwd)

    def popen(self, *args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen[str]:
        full_env = dict(self.env, LEASEHOLD_DB=self.db)
        full_env.update(env or {})
        return subprocess.Popen([LEASEHOLD, *args], env=full_env, cwd=self.cwd, text=True, **kw)


@pytest.fixture
def cli(db_url: str, base_env: dict[str, str], tmp_path: Path) -> CLI:
    if db_url.startswith("http"):
        base_env = dict(base_env, LEASEHOLD_TOKEN=os.environ["LEASEHOLD_TOKEN"])
    return CLI(db_url, base_env, tmp_path)


@pytest.fixture
def sqlite_cli(sqlite_url: str, base_env: dict[str, str], tmp_path: Path) -> CLI:
    return CLI(sqlite_url, base_env, tmp_path)
