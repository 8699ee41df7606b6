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
    from tests.pg import admin
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
                with admin() as conn:
                    return bool(conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND query ILIKE '%tasks%'").fetchone()[0])

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
