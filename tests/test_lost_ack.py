"""Lost acknowledgements on PostgreSQL: "not applied, retry" (75) must be true.

A connection lost after the commit was sent is resolved by looking the call's operation id up:
applied -> success with the recorded outcome; not recorded (the old backend gone) -> 75; the
ledger unreachable -> 76 (OutcomeUnknown) carrying the id.

Two shapes, both with real connections: a TCP proxy on a loopback port between the client and
the server that cuts the connection at an exact point (after the server received the committing
statement, its answer dropped; or before it), and backends terminated (``pg_terminate_backend``
from a second connection, in a loop) while 8 real processes claim and release through a barrier.
``LEASEHOLD_LOST_ACK_CYCLES`` sets the cycles per process of the latter (default 25).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from leasehold import Ledger
from leasehold.errors import OutcomeUnknown, StoreUnavailable
from leasehold.invariants import check_invariants
from tests import pg
from tests.conftest import CLI, REPO, wait_for
from tests.racers import Gate

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


class CuttingProxy:
    """A TCP proxy to the PostgreSQL server that, once armed with ``cut(pattern, after)``,
    cuts the first connection whose client sends bytes containing ``pattern``: with ``after``,
    the bytes reach the server and the server's answer is dropped (the acknowledgement is lost);
    without, the bytes never reach the server. ``refuse`` closes every new connection at once
    (the ledger unreachable)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.pattern: bytes | None = None
        self.after = False
        self.refuse = False
        self.then_refuse = False
        self.fired = threading.Event()
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self, pattern: bytes, after: bool, then_refuse: bool = False) -> None:
        """Arm the cut; ``then_refuse``: from the cut on, refuse every new connection."""
        with self.lock:
            self.pattern, self.after, self.then_refuse = pattern, after, then_refuse
            self.fired.clear()

    def close(self) -> None:
        self.closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            state = {"drop_reply": False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state), daemon=True).start()

    @staticmethod
    def _shut(*socks: socket.socket) -> None:
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _up(self, client: socket.socket, server: socket.socket, state: dict) -> None:
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._shut(client, server)
                return
            with self.lock:
                hit = self.pattern is not None and self.pattern in data
                if hit:
                    self.pattern = None
            if hit and not self.after:
                self.refuse = self.refuse or self.then_refuse
                self._shut(client, server)
                self.fired.set()
                return
            if hit:
                state["drop_reply"] = True
            try:
                server.sendall(data)
            except OSError:
                self._shut(client, server)
                return

    def _down(self, server: socket.socket, client: socket.socket, state: dict) -> None:
        while True:
            try:
                data = server.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._shut(client, server)
                return
            if state["drop_reply"]:
                self.refuse = self.refuse or self.then_refuse
                self._shut(client, server)
                self.fired.set()
                return
            try:
                client.sendall(data)
            except OSError:
                self._shut(client, server)
                return


@pytest.fixture
def proxy(pg_url: str):
    parts = urlsplit(pg_url)
    proxy = CuttingProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{proxy.port}")
    if netloc == parts.netloc:  # no port in the URL
        netloc = parts.netloc.replace(parts.hostname or "", f"127.0.0.1:{proxy.port}")
    query = parts.query + ("&" if parts.query else "") + "sslmode=disable"
    proxy.url = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))  # type: ignore[attr-defined]
    yield proxy
    proxy.close()


def test_claim_whose_answer_is_lost_after_commit_reports_the_grant(pg_url: str, proxy) -> None:
    with Ledger.open(proxy.url, busy_timeout=3) as ledger:
        ledger.add("T")
        proxy.cut(b"INSERT INTO operations", after=True)
        lease = ledger.claim("T", "a:1", ttl=60, op_id="lost-1")
        assert proxy.fired.is_set(), "the proxy never cut the connection"
        assert ledger.store.lost_acks_resolved == 1
    assert lease.fence == 1
    with Ledger.open(pg_url) as direct:
        assert [e.kind for e in direct.events("T")] == ["created", "claimed"]
        assert direct.show("T").lease_until == lease.expires_at


def test_extend_whose_commit_answer_is_lost_reports_the_extension(pg_url: str, proxy) -> None:
    with Ledger.open(proxy.url, busy_timeout=3) as ledger:
        ledger.claim("T", "a:1", ttl=60)
        proxy.cut(b"COMMIT", after=True)
        lease = ledger.extend("T", "a:1", ttl=600)
        assert proxy.fired.is_set() and ledger.store.lost_acks_resolved == 1
    with Ledger.open(pg_url) as direct:
        assert direct.show("T").lease_until == lease.expires_at
        assert [e.kind for e in direct.events("T")].count("extended") == 1


def test_release_lost_before_the_server_saw_it_is_75_and_not_applied(pg_url: str, proxy) -> None:
    with Ledger.open(proxy.url, busy_timeout=3) as ledger:
        ledger.claim("T", "a:1", ttl=60)
        proxy.cut(b"INSERT INTO operations", after=False)
        with pytest.raises(StoreUnavailable, match="checked and not applied"):
            ledger.release("T", "a:1", op_id="rel-1")
        assert ledger.lookup_op("rel-1") is None
        assert ledger.show("T").lease_holder == "a:1"
        # Retrying with the same id is safe and applies once.
        assert ledger.release("T", "a:1", op_id="rel-1").released
    with Ledger.open(pg_url) as direct:
        assert [e.kind for e in direct.events("T")].count("released") == 1


def test_unreachable_after_commit_is_outcome_unknown_carrying_the_op_id(pg_url: str, proxy) -> None:
    with Ledger.open(proxy.url, busy_timeout=1) as ledger:
        ledger.add("T")
        proxy.cut(b"INSERT INTO operations", after=True, then_refuse=True)
        with pytest.raises(OutcomeUnknown) as caught:
            ledger.claim("T", "a:1", ttl=60, op_id="unknown-1")
        assert caught.value.op_id == "unknown-1" and caught.value.exit_code == 76
        assert "leasehold op unknown-1" in str(caught.value)
        proxy.refuse = False
        op = ledger.lookup_op("unknown-1")  # reachable again: it had applied
        assert op is not None and op.kind == "claim" and op.tasks[0].fence == 1
        # The retry with the same id returns the recorded grant, without a second one.
        assert ledger.claim("T", "a:1", ttl=60, op_id="unknown-1").fence == 1
    with Ledger.open(pg_url) as direct:
        assert [e.kind for e in direct.events("T")] == ["created", "claimed"]


def test_cli_exit_76_names_the_op_id_and_op_finds_it(pg_url: str, proxy, base_env: dict,
                                                      tmp_path: Path) -> None:
    with Ledger.open(pg_url) as ledger:
        ledger.add("T")
    cli = CLI(proxy.url, dict(base_env, LEASEHOLD_BUSY_TIMEOUT="1"), tmp_path)
    proxy.cut(b"INSERT INTO operations", after=True, then_refuse=True)
    got = cli("claim", "T", "--actor", "a", "--session", "1", "--op-id", "cli-76", "--json")
    assert got.returncode == 76, got.stderr
    assert "cli-76" in got.stderr and "Traceback" not in got.stderr
    error = json.loads(got.stdout)["error"]
    assert error["type"] == "OutcomeUnknown" and error["op_id"] == "cli-76"
    direct = CLI(pg_url, base_env, tmp_path)
    looked = direct("op", "cli-76", "--json")
    assert looked.returncode == 0 and json.loads(looked.stdout)["applied"] is True
    again = direct("claim", "T", "--actor", "a", "--session", "1", "--op-id", "cli-76", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["fence"] == 1


# -- backends terminated in a loop while 8 processes claim and release -------------------------
def test_terminated_backends_never_make_75_a_lie(pg_url: str, tmp_path: Path, base_env: dict) -> None:
    cycles = int(os.environ.get("LEASEHOLD_LOST_ACK_CYCLES", "25"))
    tasks = [f"T{i}" for i in range(4)]
    with Ledger.open(pg_url) as ledger:
        for task_id in tasks:
            ledger.add(task_id)
    go = Gate(tmp_path / "go")
    workers = []
    for i in range(8):
        name = f"w{i}"
        ready = tmp_path / f"ready-{i}"
        env = dict(base_env, PYTHONPATH=str(REPO))
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.racers", "ackloop", str(go), str(ready), pg_url, name,
             str(cycles), ",".join(tasks), str(tmp_path / f"pid-{i}"), str(tmp_path / f"out-{i}")],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        workers.append((proc, ready))
    wait_for(lambda: all(r.exists() for _, r in workers) or any(p.poll() is not None for p, _ in workers),
             timeout=60, what="the workers to reach the barrier")
    assert all(p.poll() is None for p, _ in workers), "a worker died before the barrier"
    go.release()
    kills = 0
    rng = random.Random(7)
    with pg.admin() as admin:
        while any(p.poll() is None for p, _ in workers):
            pid_file = tmp_path / f"pid-{rng.randrange(8)}"
            try:
                pid = int(pid_file.read_text())
            except (OSError, ValueError):
                continue
            # Only a leasehold backend of this test's workers (a pid they just published).
            row = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid = %s AND application_name = 'leasehold' AND state = 'active'",
                (pid,)).fetchone()
            kills += bool(row and row[0])
            time.sleep(rng.uniform(0, 0.004))
    for proc, _ in workers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    calls = []
    for i in range(8):
        calls += [json.loads(line) for line in (tmp_path / f"out-{i}").read_text().splitlines()]
    outcome = Counter(c["result"] for c in calls)
    assert not [c for c in calls if c["result"].startswith("other")], outcome
    with Ledger.open(pg_url) as ledger:
        events = ledger.events()
        # The event log names the operation that wrote each event (details "op").
        applied = Counter((e.kind, e.details.get("op")) for e in events
                          if e.kind in ("claimed", "released"))
        assert set(applied.values()) <= {1}, "an operation applied twice"
        for c in calls:
            key = ("claimed" if c["kind"] == "claim" else "released", c["op"])
            recorded = ledger.lookup_op(c["op"]) is not None
            if c["result"] == "75":
                assert key not in applied, f"reported 75 (not applied) but applied: {c}"
                assert not recorded, c
            elif c["result"] == "ok":
                assert key in applied, f"reported success but missing from the event log: {c}"
                assert recorded, c
            elif c["result"] == "76":
                assert (key in applied) == recorded, c
            else:
                assert c["result"] == "conflict" and c["kind"] == "claim", c
                assert key not in applied, c
        assert check_invariants(events) == []
    print(f"\n{len(calls)} calls, {kills} backends terminated, outcomes {dict(outcome)}, "
          f"lost acknowledgements resolved as applied: {sum(c['resolved'] for c in calls)}")
    assert kills > 0


def test_a_write_without_operation_id_whose_commit_answer_is_lost_is_not_called_not_applied(
        pg_url: str, proxy) -> None:
    # A namespace definition carries no operation id to look up: when the answer to its COMMIT
    # is lost, "not applied, retry" (75) would be a lie if the server committed; the outcome is
    # unknown (76).
    with Ledger.open(proxy.url, busy_timeout=3) as ledger:
        ledger.add("warm")
        proxy.cut(b"COMMIT", after=True)
        with pytest.raises(OutcomeUnknown, match="could not find out whether it applied"):
            ledger.tickets.add_namespace("DOC")
        wait_for(proxy.fired.is_set, timeout=10, what="the proxy to cut the connection")
    with Ledger.open(pg_url) as direct:
        assert direct.tickets.namespace("DOC").prefix == "DOC"  # it did apply


@pytest.mark.parametrize("what", ["reserve", "post", "amend", "confirm", "reserve_path", "release_path"])
def test_ticket_feed_and_path_writes_whose_commit_answer_is_lost_report_what_applied(
        pg_url: str, proxy, what: str) -> None:
    """Reservations, posts and file reservations carry an operation id: a lost answer to their
    COMMIT is resolved by looking it up (the call reports what applied, once), not 76."""
    from leasehold import paths

    with Ledger.open(proxy.url, busy_timeout=3) as ledger:
        root = ledger.feed.post("actionable", "root", "a:1", provisional="DOC-0007")
        paths.reserve(ledger, ["held/**"], "a:1", 60)
        calls = {
            "reserve": lambda: ledger.tickets.reserve("DOC", "a:1")[0].seq,
            "post": lambda: ledger.feed.post("actionable", "x", "a:1", reserve="DOC").item,
            "amend": lambda: ledger.feed.amend(root.id, "a:1", subject="y").refs,
            "confirm": lambda: ledger.feed.confirm(root.id, "a:1").confirmed.refs,
            "reserve_path": lambda: paths.reserve(ledger, ["src/**"], "a:1", 60)[0].fence,
            "release_path": lambda: paths.release(ledger, ["held/**"], "a:1")[0][1].fence,
        }
        proxy.cut(b"COMMIT", after=True)
        value = calls[what]()
        assert proxy.fired.is_set(), "the proxy never cut the connection"
        assert ledger.store.lost_acks_resolved == 1
    expected = {"reserve": 1, "post": "DOC-0001", "amend": root.id, "confirm": root.id,
                "reserve_path": 2, "release_path": 1}
    assert value == expected[what]
    with Ledger.open(pg_url) as direct:
        if what in ("reserve", "post"):
            assert direct.tickets.reserve("DOC", "b:2")[0].seq == 2  # applied once
        if what in ("post", "amend", "confirm"):
            assert len(direct.feed.posts()) == 2
        if what == "reserve_path":
            assert [r.pattern for r in paths.active(direct)] == ["held/**", "src/**"]
        if what == "release_path":
            assert paths.active(direct) == []


def test_reservation_unreachable_after_commit_is_76_with_the_op_id_and_the_retry_replays(
        pg_url: str, proxy) -> None:
    with Ledger.open(proxy.url, busy_timeout=1) as ledger:
        ledger.add("warm")
        proxy.cut(b"COMMIT", after=True, then_refuse=True)
        with pytest.raises(OutcomeUnknown) as caught:
            ledger.tickets.reserve("DOC", "a:1", 2, op_id="res-76")
        assert caught.value.op_id == "res-76" and "leasehold op res-76" in str(caught.value)
        proxy.refuse = False
        op = ledger.lookup_op("res-76")
        assert op is not None and op.kind == "reserve"
        again = ledger.tickets.reserve("DOC", "a:1", 2, op_id="res-76")
        assert [r.ticket_id for r in again] == ["DOC-0001", "DOC-0002"]
    with Ledger.open(pg_url) as direct:
        assert direct.tickets.reserve("DOC", "b:2")[0].seq == 3


def test_terminated_backends_never_make_75_a_lie_for_reservations_and_posts(
        pg_url: str, tmp_path: Path, base_env: dict) -> None:
    """Backends terminated in a loop while 6 processes reserve ticket numbers and post (each
    call with its own op id): a call that reported 75 reserved and posted nothing, one that
    reported success holds exactly the number it printed, and no number is reserved twice."""
    cycles = int(os.environ.get("LEASEHOLD_LOST_ACK_CYCLES", "25"))
    go = Gate(tmp_path / "go")
    workers = []
    for i in range(6):
        ready = tmp_path / f"ready-{i}"
        env = dict(base_env, PYTHONPATH=str(REPO))
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.racers", "ticketloop", str(go), str(ready), pg_url,
             f"w{i}", str(cycles), str(tmp_path / f"pid-{i}"), str(tmp_path / f"out-{i}")],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        workers.append((proc, ready))
    wait_for(lambda: all(r.exists() for _, r in workers) or any(p.poll() is not None for p, _ in workers),
             timeout=60, what="the workers to reach the barrier")
    assert all(p.poll() is None for p, _ in workers), "a worker died before the barrier"
    go.release()
    kills = 0
    rng = random.Random(11)
    with pg.admin() as admin:
        while any(p.poll() is None for p, _ in workers):
            try:
                pid = int((tmp_path / f"pid-{rng.randrange(6)}").read_text())
            except (OSError, ValueError):
                continue
            row = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid = %s AND application_name = 'leasehold' AND state = 'active'",
                (pid,)).fetchone()
            kills += bool(row and row[0])
            time.sleep(rng.uniform(0, 0.004))
    for proc, _ in workers:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    calls = []
    for i in range(6):
        calls += [json.loads(line) for line in (tmp_path / f"out-{i}").read_text().splitlines()]
    outcome = Counter(c["result"] for c in calls)
    assert not [c for c in calls if c["result"].startswith("other")], outcome
    with Ledger.open(pg_url) as ledger:
        reserved = Counter(e.details.get("op") for e in ledger.events() if e.kind == "reserved")
        assert set(reserved.values()) <= {1}, "an operation reserved twice"
        by_op = {e.details.get("op"): e.task_id for e in ledger.events() if e.kind == "reserved"}
        assert len(set(by_op.values())) == len(by_op), "a number reserved twice"
        posts = Counter(p.subject for p in ledger.feed.posts())
        for c in calls:
            recorded = ledger.lookup_op(c["op"]) is not None
            if c["result"] == "75":
                assert c["op"] not in by_op and not recorded, f"reported 75 (not applied) but applied: {c}"
                assert posts[c["op"]] == 0, c
            elif c["result"] == "ok":
                assert recorded and by_op.get(c["op"]) == c["item"], c
                assert posts[c["op"]] == (c["kind"] == "post"), c
            else:
                assert (c["op"] in by_op) == recorded, c
    print(f"\n{len(calls)} calls, {kills} backends terminated, outcomes {dict(outcome)}")
    assert kills > 0
