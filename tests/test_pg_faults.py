"""Faults on PostgreSQL: backends terminated mid-operation, and clients with skewed clocks.

A command is caught mid-operation by holding the task's row lock from a separate connection, so
the command's backend is waiting inside its transaction when it is terminated.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from leasehold import Ledger
from leasehold.errors import StoreUnavailable
from tests import pg
from tests.conftest import CLI, wait_for

pytestmark = pytest.mark.postgres


def schema_of(url: str) -> str:
    return url.rsplit("%3D", 1)[1]


class RowLock:
    """Hold ``tasks`` row ``task_id`` locked FOR UPDATE from another connection."""

    def __init__(self, url: str, task_id: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT id FROM tasks WHERE id = %s FOR UPDATE", (task_id,))
        self.pid = self.conn.info.backend_pid

    def release(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.close()


def waiting_backend(blocker_pid: int) -> int | None:
    """The pid of a backend waiting on a lock held by ``blocker_pid``."""
    with pg.admin() as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            (blocker_pid,),
        ).fetchone()
    return row[0] if row else None


def terminate(pid: int) -> None:
    with pg.admin() as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]


@pytest.fixture
def pg_cli(pg_url: str, base_env: dict[str, str], tmp_path: Path) -> CLI:
    return CLI(pg_url, base_env, tmp_path)


def test_terminating_the_claimers_backend_exits_75_and_grants_nothing(pg_url: str, pg_cli: CLI) -> None:
    with Ledger.open(pg_url) as ledger:
        ledger.add("T1")
    lock = RowLock(pg_url, "T1")
    proc = pg_cli.popen("claim", "T1", "--actor", "c", "--session", "1",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victim = wait_for(lambda: waiting_backend(lock.pid), what="the claim to wait on the row lock")
    terminate(victim)
    out, err = proc.communicate(timeout=30)
    lock.release()
    assert proc.returncode == 75, err
    assert "lost the PostgreSQL ledger" in err and "not applied" in err
    assert "Traceback" not in err
    with Ledger.open(pg_url) as ledger:
        task = ledger.show("T1")
        assert task.lease_actor is None and task.fence == 0 and task.status == "open"
        assert [e.kind for e in ledger.events("T1")] == ["created"]
    again = pg_cli("claim", "T1", "--actor", "c", "--session", "1", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["fence"] == 1


def test_terminating_the_holders_backend_mid_done_keeps_the_lease(pg_url: str, pg_cli: CLI) -> None:
    assert pg_cli("claim", "T2", "--actor", "h", "--session", "1").returncode == 0
    lock = RowLock(pg_url, "T2")
    proc = pg_cli.popen("done", "T2", "--actor", "h", "--session", "1",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victim = wait_for(lambda: waiting_backend(lock.pid), what="done to wait on the row lock")
    terminate(victim)
    _, err = proc.communicate(timeout=30)
    lock.release()
    assert proc.returncode == 75, err
    status = json.loads(pg_cli("status", "T2", "--json").stdout)
    assert status["lease_holder"] == "h:1" and status["status"] == "in_progress"
    log = [e["kind"] for e in json.loads(pg_cli("log", "T2", "--json").stdout)]
    assert log == ["created", "claimed"]
    assert pg_cli("done", "T2", "--actor", "h", "--session", "1").returncode == 0


def test_a_long_lived_ledger_survives_its_backend_being_terminated(pg_url: str) -> None:
    with Ledger.open(pg_url) as holder:
        holder.claim("T3", "h:1", ttl=60)
        first = holder.store.backend_pid()
        terminate(first)
        # an idle connection the server ended is replaced before the next call
        wait_for(lambda: waiting_gone(first), what="the backend to exit")
        assert holder.extend("T3", "h:1").fence == 1
        assert holder.store.backend_pid() != first
        # terminated mid-transaction: that call fails with StoreUnavailable, the next works
        lock = RowLock(pg_url, "T3")
        import threading

        errors: list[BaseException] = []

        def extend() -> None:
            try:
                holder.extend("T3", "h:1")
            except BaseException as exc:  # noqa: B036 - collected for the assertion
                errors.append(exc)

        thread = threading.Thread(target=extend)
        thread.start()
        terminate(wait_for(lambda: waiting_backend(lock.pid), what="extend to wait"))
        thread.join(30)
        lock.release()
        assert len(errors) == 1 and isinstance(errors[0], StoreUnavailable)
        assert holder.extend("T3", "h:1").fence == 1
        kinds = [e.kind for e in holder.events("T3")]
        assert kinds == ["created", "claimed", "extended", "extended"]


def waiting_gone(pid: int) -> bool:
    with pg.admin() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                            (pid,)).fetchone()[0] == 0


def test_an_unreachable_server_exits_75(base_env: dict[str, str], tmp_path: Path) -> None:
    pg.require_pg()
    cli = CLI("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2", base_env, tmp_path)
    result = cli("status", "T")
    assert result.returncode == 75
    assert "cannot reach the PostgreSQL ledger at 127.0.0.1:1/test" in result.stderr


# -- clock skew ----------------------------------------------------------------------------
SKEW_SITE = textwrap.dedent("""
    import os, time
    _offset = float(os.environ["FAKE_CLOCK_OFFSET"])
    _real_time, _real_time_ns = time.time, time.time_ns
    time.time = lambda: _real_time() + _offset
    time.time_ns = lambda: _real_time_ns() + int(_offset * 1e9)
""")


@pytest.fixture
def skewed(pg_url: str, base_env: dict[str, str], tmp_path: Path):
    """CLI runners whose process clock is hours off (time.time patched via sitecustomize)."""
    site = tmp_path / "skewsite"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SKEW_SITE)

    def make(offset_hours: float) -> CLI:
        env = dict(base_env, PYTHONPATH=str(site), FAKE_CLOCK_OFFSET=str(offset_hours * 3600))
        return CLI(pg_url, env, tmp_path)

    return make


def test_the_skew_harness_really_skews(skewed) -> None:
    ahead = skewed(+5)
    out = subprocess.run([sys.executable, "-c", "import time; print(time.time())"],
                         env=ahead.env, capture_output=True, text=True, check=True)
    assert float(out.stdout) - time.time() > 4.9 * 3600


def test_clients_with_skewed_clocks_agree_on_holders_and_expiry(skewed, pg_url: str) -> None:
    ahead, behind = skewed(+3), skewed(-3)
    claim = ahead("claim", "S1", "--actor", "fast", "--session", "1", "--ttl", "10m", "--json")
    assert claim.returncode == 0, claim.stderr
    data = json.loads(claim.stdout)
    assert data["lease_valid"] is True
    with Ledger.open(pg_url) as ledger:
        server_now = ledger.now()
        task = ledger.show("S1")
    assert abs(server_now - time.time()) < 60  # this host's clock is the honest one
    assert task.lease_until == pytest.approx(server_now + 600, abs=30)
    # The client 3 h behind must not think the lease runs 3 h longer; the one ahead must not
    # think it expired 3 h ago.
    for client in (ahead, behind):
        status = json.loads(client("status", "S1", "--json").stdout)
        assert status["lease_holder"] == "fast:1" and status["lease_valid"] is True
        stolen = client("claim", "S1", "--actor", "thief", "--session", "2")
        assert stolen.returncode == 1 and "held by fast:1" in stolen.stderr
        gate = client("check", "S1", "--actor", "thief", "--session", "2")
        assert gate.returncode == 1
    # A 1-second lease taken by the client that is behind expires on the server's clock.
    assert behind("claim", "S2", "--actor", "slow", "--session", "1", "--ttl", "1s").returncode == 0
    with Ledger.open(pg_url) as ledger:
        wait_for(lambda: not ledger.show("S2").lease_valid(ledger.now()), what="S2 to expire")
    taken = ahead("claim", "S2", "--actor", "fast", "--session", "1", "--json")
    assert taken.returncode == 0, taken.stderr
    assert json.loads(taken.stdout)["fence"] == 2
    swept = json.loads(behind("sweep", "--json").stdout)
    assert swept == []  # nothing is expired on the server's clock


_STALLED_CLIENT = textwrap.dedent("""
    import os, signal, sys
    import leasehold.store.postgres as pgstore
    from leasehold import Ledger

    pgstore.IDLE_IN_TRANSACTION_TIMEOUT = 1  # the default is 60 s; the rule is the same
    with Ledger.open(sys.argv[1]) as ledger:
        ledger.claim("T", "a:s1", ttl=3600)
        ledger.release("T", "a:s1")
        with ledger.store._write() as tx:
            tx.one("lock_task", id="T")  # the row is locked inside an open transaction
            print(ledger.store.conn.info.backend_pid, flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)  # the client vanishes, its connection stays
""")


def test_a_client_that_vanishes_inside_a_transaction_does_not_hold_the_task(pg_url: str) -> None:
    # A half-open connection (a partition, a stopped client) used to keep its row lock until the
    # server's TCP timeout, hours: every claim of the task answered 75 meanwhile. leasehold's
    # sessions set idle_in_transaction_session_timeout, so the server rolls it back.
    import signal

    child = subprocess.Popen([sys.executable, "-c", _STALLED_CLIENT, pg_url],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        with Ledger.open(pg_url) as ledger:
            def claimed():  # type: ignore[no-untyped-def]
                try:
                    return ledger.claim("T", "b:s2", ttl=60)
                except StoreUnavailable:  # the lock is still held: busy, retry
                    return None

            lease = wait_for(claimed, timeout=60, what="the stalled client's lock to go")
            assert lease.fence == 2 and str(lease.holder) == "b:s2"
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as conn:
                gone = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                    (pid,)).fetchone()
            assert gone == (0,)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)


def test_a_url_that_sets_the_idle_transaction_timeout_keeps_its_own(pg_url: str) -> None:
    assert "options=" in pg_url and "#" not in pg_url
    url = pg_url.replace("options=", "options=-c%20idle_in_transaction_session_timeout%3D4321%20", 1)
    shouted = pg_url.replace("options=", "options=-c%20IDLE_IN_TRANSACTION_SESSION_TIMEOUT%3D7s%20", 1)
    for target, expected in ((pg_url, "1min"), (url, "4321ms"), (shouted, "7s")):
        with Ledger.open(target) as ledger:
            ledger.status("T")
            value = ledger.store.conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
            assert list(value.values()) == [expected]


def test_ssl_required_of_a_server_without_ssl_is_a_configuration_error(pg_url: str) -> None:
    # Retrying cannot help until the URL or the server changes: 78, not 75.
    import psycopg

    from leasehold.errors import ConfigError

    with psycopg.connect(pg_url) as conn:
        if conn.execute("SHOW ssl").fetchone() != ("off",):
            pytest.skip("this server has SSL on: sslmode=require succeeds here")
    sep = "&" if "?" in pg_url else "?"
    for extra in ("sslmode=require", "sslmode=verify-full&sslrootcert=/nonexistent/root.crt"):
        with pytest.raises(ConfigError, match="retrying will not help"):
            Ledger.open(pg_url + sep + extra).status("T")
