"""``leasehold serve`` for the test suite (a pytest plugin loaded from conftest): real servers
on loopback ports, never a mock.

- :func:`start_process` runs ``leasehold serve`` as an OS process (the end-to-end tests: CLI,
  auth matrix, waits across processes).
- :func:`start_thread` runs the same application under uvicorn in a thread of the test process,
  on a real loopback socket: the contract suites start one per test, and a process each would
  cost a second of imports per test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests import conftest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"leasehold serve exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"no server answered at {url}"
        time.sleep(0.05)


class ServerProcess:
    def __init__(self, db: str, env: dict[str, str], *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        self.proc = subprocess.Popen([conftest.LEASEHOLD, "serve", "--db", db, "--port", str(self.port), *extra],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_healthy(self.url, proc=self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


class ServerThread:
    def __init__(self, db: str, anonymous: bool = False) -> None:
        import uvicorn

        from leasehold.server.app import create_app

        self.app = create_app(db, anonymous=anonymous)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="error", lifespan="on",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive(), "the server thread died"
            assert time.monotonic() < deadline, "the server thread did not start"
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def make_token(db: str, actor: str, role: str = "agent", expires: float | None = None) -> str:
    from leasehold import Ledger

    with Ledger.open(db, create=True) as ledger:
        return ledger.tokens.create(actor, role, expires)[1]


def remote_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """For a ``db_url`` fixture parametrized with "remote" / "remote-postgres": an in-thread
    server over a fresh SQLite (or PostgreSQL) ledger, in anonymous loopback mode (the contract
    suites act as many actors), with ``LEASEHOLD_TOKEN=anonymous`` set for the test."""
    if request.param == "remote-postgres":
        backing = request.getfixturevalue("pg_url")
    else:
        from tests.conftest import create_ledger

        backing = create_ledger(str(tmp_path / "served.db"))
    server = ServerThread(backing, anonymous=True)
    request.addfinalizer(server.stop)
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("LEASEHOLD_TOKEN", "anonymous")
    return server.url


@pytest.fixture
def served(sqlite_url: str, base_env: dict[str, str]):
    """A ``leasehold serve`` process over a fresh SQLite ledger, and tokens: ``admin`` (alice),
    ``agent`` (bob), ``reader`` (carol), ``agent2`` (dave)."""
    from leasehold import Ledger

    Ledger.open(sqlite_url).close()
    tokens = {"admin": make_token(sqlite_url, "alice", "admin"), "agent": make_token(sqlite_url, "bob"),
              "reader": make_token(sqlite_url, "carol", "reader"), "agent2": make_token(sqlite_url, "dave")}
    server = ServerProcess(sqlite_url, dict(base_env))
    server.tokens = tokens  # type: ignore[attr-defined]
    yield server
    server.stop()


__all__ = ["ServerProcess", "ServerThread", "free_port", "make_token", "os"]
