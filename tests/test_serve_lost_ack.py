"""Lost acknowledgements through ``leasehold serve``: a change whose HTTP answer never reaches
the client is resolved by its operation id before anything is reported.

A real TCP proxy in the test process sits between the client (RemoteLedger, or the CLI as a
real process) and a real server process. Armed with ``cut(path)``, it forwards the next request
for that path to the server, reads the server's whole answer (so the change has applied, or
been refused) and then drops the client's connection without passing the answer on. With
``refuse_after_cut`` it also turns every later connection away, so the client cannot ask again.

Expected: the client sends the change again with the same operation id and reports the true
outcome (the applied change replayed: exit 0; a refusal: exit 1), or, when it cannot reach the
server to ask, 76 (outcome unknown) with the id — never 75 ("nothing applied") after a write
that applied.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from tests.conftest import CLI, wait_for

pytest.importorskip("starlette")


def _read_message(sock: socket.socket, buffer: bytearray) -> bytes | None:
    """One HTTP/1.1 message (head and a Content-Length body) from ``sock``; None at EOF."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    end = buffer.index(b"\r\n\r\n") + 4
    length = 0
    for line in bytes(buffer[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(buffer) < end + length:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    message = bytes(buffer[:end + length])
    del buffer[:end + length]
    return message


class CuttingHTTPProxy:
    """A loopback HTTP proxy to ``port`` that can drop one answer (see the module docstring)."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.armed: str | None = None
        self.refuse_after_cut = False
        self.refusing = False
        self.cuts = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self, path: str, refuse_after: bool = False) -> None:
        with self.lock:
            self.armed, self.refuse_after_cut, self.refusing = path, refuse_after, False

    def close(self) -> None:
        self.closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                refusing = self.refusing
            if refusing:
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        from_client, from_server = bytearray(), bytearray()
        try:
            while True:
                request = _read_message(client, from_client)
                if request is None:
                    return
                target = request.split(b" ", 2)[1].decode()
                upstream.sendall(request)
                answer = _read_message(upstream, from_server)
                if answer is None:
                    return
                with self.lock:
                    cut = self.armed is not None and target.startswith(self.armed)
                    if cut:
                        self.armed = None
                        self.cuts += 1
                        self.refusing = self.refuse_after_cut
                if cut:
                    client.shutdown(socket.SHUT_RDWR)  # the change applied; its answer is dropped
                    return
                client.sendall(answer)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()


@pytest.fixture
def proxied(served):
    proxy = CuttingHTTPProxy(served.port)
    yield served, proxy
    proxy.close()


def _kinds(db: str, task_id: str) -> list[str]:
    from leasehold import Ledger

    with Ledger.open(db) as ledger:
        return [e.kind for e in ledger.events(task_id) if e.kind != "auth_refused"]


def test_a_lost_answer_is_resolved_by_resending_with_the_operation_id(proxied) -> None:
    """RemoteLedger: the claim applied and its answer was cut; the client resends with the same
    id and gets the recorded grant (replayed, applied once). A refused claim whose answer was
    cut reports the true refusal."""
    from leasehold.errors import LeaseHeld
    from leasehold.remote import RemoteLedger

    served, proxy = proxied
    with RemoteLedger(proxy.url, served.tokens["agent"]) as ledger:
        proxy.cut("/v1/tasks/lost-1/claim")
        lease = ledger.claim("lost-1", "bob:s1", ttl=300)
        assert proxy.cuts == 1
        assert lease.holder.session == "s1" and lease.fence == 1
        assert _kinds(served.db, "lost-1").count("claimed") == 1
        assert ledger.lookup_op(ledger.last_op_id).kind == "claim"

        proxy.cut("/v1/tasks/lost-1/claim")
        with pytest.raises(LeaseHeld):
            ledger.claim("lost-1", "bob:s2", ttl=300)
        assert proxy.cuts == 2

        proxy.cut("/v1/tasks/lost-1/release")
        assert ledger.release("lost-1", "bob:s1").released
        assert _kinds(served.db, "lost-1").count("released") == 1
        assert ledger.status("lost-1").lease_actor is None


def test_a_lost_answer_the_client_cannot_resolve_is_76_never_75(proxied, base_env, tmp_path: Path) -> None:
    """The answer is cut and the server cannot be reached again: the change applied, so the
    client says 76 (outcome unknown) with the operation id, never 75 (nothing applied). A change
    without an operation id (a feed post) is 76 at once. Through the CLI as a real process."""
    from leasehold.errors import OutcomeUnknown
    from leasehold.remote import RemoteLedger

    served, proxy = proxied
    token = served.tokens["agent"]
    with RemoteLedger(proxy.url, token) as ledger:
        proxy.cut("/v1/tasks/lost-2/claim", refuse_after=True)
        with pytest.raises(OutcomeUnknown) as caught:
            ledger.claim("lost-2", "bob:s1", ttl=300)
        op_id = caught.value.op_id
        assert op_id
    with RemoteLedger(served.url, token) as direct:
        assert direct.status("lost-2").lease_session == "s1"  # it did apply
        assert direct.lookup_op(op_id).kind == "claim"

    cli = CLI(proxy.url, base_env, tmp_path)
    env = {"LEASEHOLD_TOKEN": token}
    proxy.cut("/v1/tasks/lost-3/claim")  # resolvable: exit 0, the grant printed once
    run = cli("claim", "lost-3", "--session", "s1", "--ttl", "5m", env=env)
    assert run.returncode == 0, run.stderr
    assert _kinds(served.db, "lost-3").count("claimed") == 1

    proxy.cut("/v1/tasks/lost-3/release", refuse_after=True)
    run = cli("release", "lost-3", "--session", "s1", env=env)
    assert run.returncode == 76, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr and "may or may not have applied" in run.stderr
    assert _kinds(served.db, "lost-3").count("released") == 1

    proxy.cut("/v1/feed", refuse_after=True)
    run = cli("feed", "post", "--kind", "info", "--subject", "lost answer", "--session", "s1", env=env)
    assert run.returncode == 76, (run.returncode, run.stderr)
    with RemoteLedger(served.url, token) as direct:
        wait_for(lambda: direct.feed.last(1), 10, "the post recorded")
