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
