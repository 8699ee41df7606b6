"""``leasehold serve`` against careless and hostile clients: a waiter that goes away, event ids
out of range, start-up failures. Real server processes on loopback ports."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from tests.conftest import wait_for
from tests.test_serve import _waiters

pytest.importorskip("starlette")



def blocked_behind(locker_pid: int) -> int:
    """How many backends wait, directly or behind another waiter, on the locks of the backend
    ``locker_pid`` (only this test's: other xdist workers use the server at the same time)."""
    from tests.pg import admin

    with admin() as conn:
        return int(conn.execute(
            "WITH RECURSIVE behind(pid) AS (SELECT %s::int UNION "
            "SELECT a.pid FROM pg_stat_activity a JOIN behind b ON b.pid = ANY(pg_blocking_pids(a.pid))) "
            "SELECT count(*) - 1 FROM behind", (locker_pid,)).fetchone()[0])

def test_a_waiter_that_disconnects_leaves_the_queue_and_is_never_granted(served) -> None:
    """A client killed mid-wait must free its place at once: the lease goes to the next live
    waiter, never to the dead one (who would hold it for a whole TTL)."""
    from leasehold.remote import RemoteLedger

    token = served.tokens["agent"]
    owner = RemoteLedger(served.url, token)
    owner.claim("gone", "bob:owner", ttl=300)
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    conn.request("POST", "/v1/tasks/gone/claim", body=json.dumps({"holder": "bob:dead", "wait": 120}).encode(),
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    wait_for(lambda: _waiters(served) == 1, 30, "the waiter queued")
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    wait_for(lambda: _waiters(served) == 0, 30, "the dead waiter left the queue")
    owner.release("gone", "bob:owner")
    task = owner.status("gone")
    assert task.lease_actor is None, (task.lease_actor, task.lease_session)
    owner.close()


@pytest.mark.parametrize("last", ["-5", "99999999999999999999999999"])
def test_event_stream_refuses_an_event_id_out_of_range(served, last: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    conn.request("GET", "/v1/events", headers={"Authorization": f"Bearer {served.tokens['reader']}",
                                                "Last-Event-ID": last})
    response = conn.getresponse()  # the status line only: a wrongly accepted stream never ends
    status = response.status
    answer = json.loads(response.read()) if status == 400 else None
    conn.close()
    assert status == 400 and answer["error"]["exit_code"] == 2, (status, answer)


def test_serve_start_up_failures_exit_78_in_one_line(sqlite_cli, tmp_path) -> None:
    """A missing or garbled TLS file, or a port in use: exit 78 (configuration), no traceback."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    for cert in (str(tmp_path / "missing.pem"), str(bad)):
        run = sqlite_cli("serve", "--port", "0", "--tls-cert", cert, "--tls-key", cert)
        assert run.returncode == 78 and "Traceback" not in run.stderr and "internal error" not in run.stderr, run.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        run = sqlite_cli("serve", "--port", str(taken.getsockname()[1]))
    assert run.returncode == 78 and "could not start" in run.stderr, (run.returncode, run.stderr)


def _raw(port: int, head: bytes, chunks: list[bytes]) -> tuple[int, dict]:
    """Send ``head`` then ``chunks`` on a raw socket, stopping early when the server answers
    (it refuses before the body ends); return the status and the JSON body."""
    import select

    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered already
            try:
                sock.sendall(chunk)
            except OSError:
                break
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())
    finally:
        sock.close()


def test_request_bodies_over_the_limit_are_413_without_being_read(served, base_env) -> None:
    """A declared Content-Length over the limit is refused from the headers alone (the body is
    never sent here: a server that waited for it would time out); a chunked body is counted as
    it arrives and refused when it passes the limit (--max-body 4096). Both 413 with the JSON
    error shape (exit 2); a body under the limit is served."""
    from leasehold.errors import InvalidInput
    from leasehold.remote import RemoteLedger
    from tests.server import ServerProcess

    token = served.tokens["agent"]
    auth = f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n".encode()
    head = b"POST /v1/tasks/big/claim HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 10485760\r\n\r\n"
    status, answer = _raw(served.port, head, [])
    assert status == 413, (status, answer)
    assert answer["error"]["code"] == "invalid_input" and answer["error"]["exit_code"] == 2
    assert "larger than" in answer["error"]["message"]

    small = ServerProcess(served.db, dict(base_env), "--max-body", "4096")
    try:
        body = json.dumps({"holder": "bob:s1", "title": "x" * 60000}).encode()
        chunks = [b"%x\r\n%s\r\n" % (len(body[i:i + 1024]), body[i:i + 1024]) for i in range(0, len(body), 1024)]
        chunks.append(b"0\r\n\r\n")
        head = b"POST /v1/tasks/big/claim HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n"
        status, answer = _raw(small.port, head, chunks)
        assert status == 413, (status, answer)
        assert answer["error"]["exit_code"] == 2 and "4096 bytes" in answer["error"]["message"]
        with RemoteLedger(small.url, token) as ledger:
            with pytest.raises(InvalidInput, match="larger than"):
                ledger.claim("big", "bob:s1", ttl=60, title="y" * 8000)
            # Megabytes: the server answers and closes while the client is still sending; the
            # client reads that answer (exit 2), never "cannot reach the server" (75).
            with pytest.raises(InvalidInput, match="larger than"):
                ledger.client.call("feed_import", lines=["z" * 1000] * 4000, by="bob:s1")
            assert ledger.claim("big", "bob:s1", ttl=60, title="small").task.lease_session == "s1"
    finally:
        small.stop()


def test_an_oversized_chunked_body_is_413_on_every_route(served) -> None:
    """The limit holds beyond the JSON API: a chunked body over it sent to /mcp (and to a
    dashboard form) is 413 with the JSON error shape, not 500."""
    token = served.tokens["agent"]
    chunk = b"x" * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 20 + [b"0\r\n\r\n"]  # 1.25 MiB
    for path, kind in ((b"/mcp", b"application/json"), (b"/v1/feed/import", b"application/json")):
        head = (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                + b"\r\nContent-Type: " + kind + b"\r\nAccept: application/json, text/event-stream\r\n"
                + b"Transfer-Encoding: chunked\r\n\r\n")
        status, answer = _raw(served.port, head, chunks)
        assert status == 413 and answer["error"]["exit_code"] == 2, (path, status, answer)


def test_a_deeply_nested_body_is_400_not_500(served) -> None:
    """JSON nested deeper than the parser's recursion limit (well under --max-body) is bad
    input (400, exit 2), not an internal error."""
    token = served.tokens["agent"]
    for body in (b"[" * 100000 + b"]" * 100000, b'{"holder": "bob:s", "title": ' + b"[" * 100000 + b"]" * 100000 + b"}"):
        head = (b"POST /v1/tasks/deep/claim HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        status, answer = _raw(served.port, head + body, [])
        assert status == 400 and answer["error"]["exit_code"] == 2, (status, answer)
        assert "nested" in answer["error"]["message"]


def test_a_lone_surrogate_in_a_json_string_is_400_not_500(served) -> None:
    """JSON may escape a lone UTF-16 surrogate (``"\\ud800"``), which no UTF-8 text can
    hold: bad input (400, exit 2), not an internal error, wherever the string goes."""
    token = served.tokens["agent"]
    for path, body in (("/v1/tasks/sur/claim", b'{"holder": "bob:s", "title": "\\ud800"}'),
                       ("/v1/feed", b'{"holder": "bob:s", "kind": "info", "subject": "x", "body": "a\\udcff"}')):
        head = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        status, answer = _raw(served.port, head + body, [])
        assert status == 400 and answer["error"]["exit_code"] == 2, (path, status, answer)
        assert "surrogate" in answer["error"]["message"]


def test_plain_http_on_a_public_address_warns_at_start(sqlite_url, base_env) -> None:
    """Serving plain HTTP on a non-loopback address prints a one-line warning (tokens travel
    in clear text); on loopback it does not."""
    import subprocess

    from tests.conftest import LEASEHOLD
    from tests.server import free_port, wait_healthy

    for host, warned in (("0.0.0.0", True), ("127.0.0.1", False)):
        port = free_port()
        proc = subprocess.Popen([LEASEHOLD, "serve", "--db", sqlite_url, "--host", host, "--port", str(port)],
                                env=dict(base_env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc=proc)
        finally:
            proc.terminate()
            _out, err = proc.communicate(timeout=30)
        lines = [line for line in err.splitlines() if "warning" in line]
        assert bool(lines) == warned, err
        if warned:
            assert len(lines) == 1 and "clear text" in lines[0] and host in lines[0]


def test_a_waiter_that_disconnects_while_its_grant_is_in_flight_leaves_no_lease(pg_url, base_env) -> None:
    """The grant races the disconnect: the waiter's claim is blocked inside PostgreSQL (the
    test holds the task's row lock) when its client goes away. The waiter leaves the queue at
    once; when the claim then commits, the server releases the lease nobody will use, and the
    next waiter gets it."""
    from leasehold import Ledger
    from leasehold.remote import RemoteLedger
    from tests.server import ServerProcess, make_token

    Ledger.open(pg_url).close()
    token = make_token(pg_url, "bob")
    server = ServerProcess(pg_url, dict(base_env))
    locker = None
    try:
        with RemoteLedger(server.url, token) as ledger:
            ledger.add("inflight")
            import psycopg

            locker = psycopg.connect(pg_url, autocommit=False)
            locker.execute("SELECT id FROM tasks WHERE id = 'inflight' FOR UPDATE")

            def blocked() -> bool:
                return bool(blocked_behind(locker.info.backend_pid))

            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("POST", "/v1/tasks/inflight/claim",
                         body=json.dumps({"holder": "bob:dead", "wait": 120, "ttl": 300}).encode(),
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            wait_for(blocked, 30, "the waiter's claim blocked on the row lock")
            conn.sock.shutdown(socket.SHUT_RDWR)
            conn.close()
            wait_for(lambda: _waiters(server) == 0, 30, "the dead waiter left the queue")
            locker.commit()  # the claim goes through now, for a client that is gone

            def released() -> bool:
                task = ledger.status("inflight")
                return task is not None and task.lease_actor is None and any(
                    e.kind == "claimed" and e.session == "dead" for e in ledger.events("inflight"))

            wait_for(released, 30, "the grant to the gone waiter released")
            lease = ledger.wait_claim("inflight", "bob:next", ttl=60, timeout=30)
            assert lease.holder.session == "next"
    finally:
        if locker is not None:
            locker.close()
        server.stop()


def test_a_resent_wait_whose_grant_was_given_up_never_gets_a_released_lease(pg_url, base_env) -> None:
    """The client's connection drops just as its waiting claim is granted, and it sends the
    claim again with the same operation id (what the client does after a lost answer). The
    server gives up the grant of the gone request; the resend must then either get that lease
    and keep it, or be refused (exit 1): never be answered with a lease that is released."""
    import threading

    import psycopg

    from leasehold import Ledger
    from leasehold.server.waits import undo_op_id
    from tests.server import ServerProcess, make_token

    Ledger.open(pg_url).close()
    token = make_token(pg_url, "bob")
    server = ServerProcess(pg_url, dict(base_env))
    locker = None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Leasehold-Op-Id": "wait-op-1"}
    body = json.dumps({"holder": "bob:w", "wait": 60, "ttl": 300}).encode()

    def blocked() -> int:
        return blocked_behind(locker.info.backend_pid)

    try:
        with Ledger.open(pg_url) as ledger:
            ledger.add("resent")
            locker = psycopg.connect(pg_url, autocommit=False)
            locker.execute("SELECT id FROM tasks WHERE id = 'resent' FOR UPDATE")
            first = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            first.request("POST", "/v1/tasks/resent/claim", body=body, headers=headers)
            wait_for(lambda: blocked() == 1, 30, "the first claim blocked on the row lock")
            first.sock.shutdown(socket.SHUT_RDWR)
            first.close()
            wait_for(lambda: _waiters(server) == 0, 30, "the gone waiter left the queue")
            answers: list = []

            def resend() -> None:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                conn.request("POST", "/v1/tasks/resent/claim", body=body, headers=headers)
                response = conn.getresponse()
                answers.append((response.status, json.loads(response.read())))
                conn.close()

            thread = threading.Thread(target=resend)
            thread.start()
            wait_for(lambda: blocked() == 2, 30, "the resend blocked behind the first claim")
            locker.commit()
            thread.join(60)
            assert answers, "no answer to the resend"
            status, answer = answers[0]
            mark = undo_op_id("wait-op-1", "resent")
            wait_for(lambda: ledger.lookup_op(mark) is not None, 30, "the grant kept or given up")
            task = ledger.status("resent")
            if status == 200:
                assert task.lease_holder == "bob:w" and task.fence == answer["result"]["fence"], (answer, task)
                assert task.lease_valid(ledger.now())
            else:
                assert status == 409 and answer["error"]["exit_code"] == 1, answer
                assert task.lease_holder is None
    finally:
        if locker is not None:
            locker.close()
        server.stop()


def test_giving_up_a_grant_and_handing_it_to_a_resend_exclude_each_other(ledger) -> None:
    """Whichever comes first wins, on each backend: a resend's replayed grant kept first is
    never released by the give-up; a grant given up first is never handed to the resend."""
    from leasehold.server.waits import keep_replayed, release_unused

    lease = ledger.claim("kept", "bob:w", ttl=60, op_id="op-kept")
    replayed = ledger.claim("kept", "bob:w", ttl=60, op_id="op-kept")
    assert ledger.replayed_at is not None
    [kept] = keep_replayed(ledger, [replayed], "op-kept")
    release_unused([lease], ledger, "op-kept")
    task = ledger.status("kept")
    assert task.lease_holder == "bob:w" and task.fence == kept.fence == lease.fence

    lease = ledger.claim("given-up", "bob:w", ttl=60, op_id="op-given-up")
    release_unused([lease], ledger, "op-given-up")
    replayed = ledger.claim("given-up", "bob:w", ttl=60, op_id="op-given-up")
    assert ledger.replayed_at is not None and keep_replayed(ledger, [replayed], "op-given-up") == []
    assert ledger.status("given-up").lease_holder is None


BOGUS_CURSORS = (
    "/v1/pages/tasks?after_priority=0&after_created=nan&after_id=a",
    "/v1/pages/tasks?after_priority=0&after_created=inf&after_id=a",
    "/v1/pages/tasks?after_priority=x&after_created=1&after_id=a",
    "/v1/pages/tasks?after_priority=0&after_created=1",
    "/v1/pages/feed?after_ts=nan&after_id=1",
    "/v1/pages/feed?after_ts=-inf&after_id=1",
    "/v1/pages/feed?after_ts=1&after_id=x",
    "/v1/log/page?after=x",
    "/v1/log/page?page=0",
)


def test_bogus_page_cursors_are_400(served) -> None:
    """A cursor no page ever ends with (not a number, not finite, half of one) is bad input:
    400 (exit 2), never 500, never a silently wrong page."""
    for query in BOGUS_CURSORS:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        conn.request("GET", query, headers={"Authorization": f"Bearer {served.tokens['reader']}"})
        response = conn.getresponse()
        answer = json.loads(response.read())
        conn.close()
        assert response.status == 400 and answer["error"]["exit_code"] == 2, (query, answer)


@pytest.mark.slow
def test_many_waiters_killed_at_once_leave_the_queue_and_stall_no_one(served, base_env, tmp_path) -> None:
    """Eight CLI processes wait on a task (claim --wait, next --wait) and are all killed with
    SIGKILL at once: every place in the queues is freed, no lease goes to a dead process, and
    a live waiter behind them is granted as soon as the task is released."""
    import signal

    from tests.conftest import CLI

    cli = CLI(served.url, dict(base_env, LEASEHOLD_TOKEN=served.tokens["agent"]), tmp_path)
    assert cli("claim", "crowd", "--session", "owner", "--ttl", "5m").returncode == 0
    doomed = [cli.popen("claim", "crowd", "--session", f"dead{i}", "--wait", "5m", stdout=-1, stderr=-1)
              for i in range(6)]
    doomed += [cli.popen("next", "--session", f"deadnext{i}", "--wait", "5m", stdout=-1, stderr=-1)
               for i in range(2)]
    wait_for(lambda: _waiters(served) == 8, 60, "eight waiters queued")
    for proc in doomed:
        proc.send_signal(signal.SIGKILL)
    for proc in doomed:
        proc.communicate(timeout=30)
    wait_for(lambda: _waiters(served) == 0, 30, "the killed waiters left the queues")
    live = cli.popen("claim", "crowd", "--session", "live", "--wait", "60", stdout=-1, stderr=-1)
    wait_for(lambda: _waiters(served) == 1, 30, "the live waiter queued")
    assert cli("release", "crowd", "--session", "owner").returncode == 0
    out, err = live.communicate(timeout=60)
    assert live.returncode == 0 and "claimed crowd as bob:live" in out, err
    assert cli("add", "loose").returncode == 0
    from leasehold import Ledger

    with Ledger.open(served.db) as ledger:
        assert ledger.status("loose").lease_actor is None  # no dead next-waiter took it
        assert not [e for e in ledger.events() if e.kind == "claimed" and (e.session or "").startswith("dead")]
