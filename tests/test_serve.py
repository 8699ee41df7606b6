"""``leasehold serve`` end to end: a real server process on a loopback port, the CLI as real
processes against it, raw HTTP for the auth matrix and the event stream."""

from __future__ import annotations

import difflib
import http.client
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, wait_for
from tests.server import ServerProcess, make_token

pytest.importorskip("starlette")


def request(server, method: str, path: str, token: str | None = None, body: dict | None = None,
            headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=sent)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, (json.loads(raw) if raw and raw[:1] in b"{[" else {"raw": raw.decode()})


def refused_events(db: str) -> list:
    from leasehold import Ledger

    with Ledger.open(db) as ledger:
        return [e for e in ledger.events() if e.kind == "auth_refused"]


def test_auth_matrix(served, base_env, tmp_path: Path) -> None:
    """Each case: the documented HTTP status and code, the CLI's exit code, and an audit event."""
    tok = served.tokens
    claim = "/v1/tasks/t1/claim"
    body = {"holder": "bob:s1", "ttl": 60}
    revoked = make_token(served.db, "bob")
    from leasehold import Ledger

    with Ledger.open(served.db) as ledger:
        ledger.tokens.revoke(ledger.tokens.list()[-1].id)
    expired = make_token(served.db, "bob", expires=1)
    wait_for(lambda: _expired(served.db), 30, "the 1s token to expire")

    cases = [
        ("no token", None, body, 401),
        ("wrong token", "lh_" + "x" * 43, body, 401),
        ("revoked", revoked, body, 401),
        ("expired", expired, body, 401),
        ("reader writing", tok["reader"], {"holder": "carol:s1"}, 403),
        ("agent acting as another actor", tok["agent"], {"holder": "dave:s1"}, 403),
    ]
    before = len(refused_events(served.db))
    for what, token, sent, status in cases:
        got, answer = request(served, "POST", claim, token, sent)
        assert got == status, (what, answer)
        assert answer["error"]["code"] == "permission_denied" and answer["error"]["exit_code"] == 77, what
    audited = refused_events(served.db)[before:]
    assert [e.details["status"] for e in audited] == [c[3] for c in cases]
    assert audited[-1].details["claimed_holder"] == "dave:s1" and audited[-1].actor == "bob"
    assert all(tok["agent"] not in json.dumps(e.details) for e in audited)  # never the token

    # The open routes need no token; the reader reads.
    assert request(served, "GET", "/healthz")[0] == 200
    assert request(served, "GET", "/readyz")[0] == 200
    assert request(served, "GET", "/openapi.json")[0] == 200
    assert request(served, "GET", "/metrics")[0] == 200
    assert request(served, "GET", "/v1/tasks/t1/status", tok["reader"])[0] == 200

    # An agent claims; only an admin force-releases, with a reason, recorded.
    assert request(served, "POST", claim, tok["agent"], body)[0] == 200
    status, answer = request(served, "POST", "/v1/tasks/t1/force-release", tok["agent"], {"reason": "stuck"})
    assert status == 403 and answer["error"]["exit_code"] == 77
    status, answer = request(served, "POST", "/v1/tasks/t1/force-release", tok["admin"], {"reason": "stuck"})
    assert status == 200 and answer["result"]["released"] is True
    with Ledger.open(served.db) as ledger:
        forced = [e for e in ledger.events("t1") if e.kind == "force_released"][-1]
    assert forced.actor == "alice" and forced.details["reason"] == "stuck"

    # The same through the CLI: exit codes 77 (and 75 for a server that is not there).
    cli = CLI(served.url, base_env, tmp_path)
    assert cli("status", "t1").returncode == 77  # no token
    assert cli("status", "t1", env={"LEASEHOLD_TOKEN": "lh_nope"}).returncode == 77
    run = cli("claim", "t2", "--session", "s1", "--actor", "dave", env={"LEASEHOLD_TOKEN": tok["agent"]})
    assert run.returncode == 77 and "acts as 'bob'" in run.stderr
    run = cli("release", "t2", "--force", "--reason", "x", env={"LEASEHOLD_TOKEN": tok["agent"]})
    assert run.returncode == 77
    gone = CLI("http://127.0.0.1:9", base_env, tmp_path)
    run = gone("status", "t1", env={"LEASEHOLD_TOKEN": tok["agent"]})
    assert run.returncode == 75 and "Traceback" not in run.stderr


def _expired(db: str) -> bool:
    from leasehold import Ledger

    with Ledger.open(db) as ledger:
        now = ledger.now()
        return any(t.state(now) == "expired" for t in ledger.tokens.list())


def _mask(text: str) -> str:
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<ts>", text)
    text = re.sub(r"#\d+ ", "#<id> ", text)
    return re.sub(r"(expires_at|ttl)=[\d.]+", r"\1=<n>", text)


def test_cli_outputs_and_exit_codes_match_a_local_ledger(served, base_env, tmp_path: Path, sqlite_url) -> None:
    """The same commands against a local ledger and through the server: same stdout, stderr
    and exit codes (times masked). The actor comes from the token when none is given."""
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    from tests.conftest import create_ledger

    local = CLI(create_ledger(str(local_dir / "ledger.db")), dict(base_env, LEASEHOLD_ACTOR="bob"), tmp_path)
    remote = CLI(served.url, dict(base_env, LEASEHOLD_TOKEN=served.tokens["agent"]), tmp_path)
    script = [
        ("add", "build", "--title", "Build it", "--priority", "3"),
        ("add", "deploy", "--blocked-by", "build"),
        ("claim", "99927", "--session", "s1", "--ttl", "60", "--json"),
        ("claim", "99927", "--session", "s2"),
        ("share", "99927", "mate-1", "mate-2", "--session", "s1"), ("share", "99927", "mate-3", "--session", "s2"),
        ("share", "nope", "mate-1", "--session", "s1"),
        ("claim", "shared", "--session", "s4", "--share-with", "mate-4", "--json"),
        ("extend", "99927", "--session", "s2"),
        ("status", "99927"), ("status", "nope", "--json"), ("show", "nope"),
        ("check", "99927", "--session", "s1"), ("check", "99927", "--session", "s2"),
        ("who",), ("list",), ("ready",), ("blocked",),
        ("next", "--session", "s3", "--ttl", "60"),
        ("done", "build", "--session", "s3"), ("done", "99927", "--session", "s2"),
        ("release", "99927", "--session", "s1"), ("release", "99927", "--session", "s1"),
        ("next", "--session", "s3", "--json"), ("next", "--session", "s3"),
        ("dep", "list", "deploy"),
        ("claim", "bad id!", "--session", "s1"),
        ("reopen", "build"), ("sweep",),
        ("reserve-path", "src/**", "--session", "s1"), ("paths",),
        ("release-path", "src/**", "--session", "s1"),
        ("done", "deploy", "99927", "--session", "s3"),
        ("log", "99927"),
        ("namespace", "add", "CMB"), ("namespace", "add", "CMB", "--format", "X-{seq}"),
        ("namespace", "list"), ("reserve", "CMB", "--count", "2", "--session", "s1"),
        ("reservation", "show", "CMB-0001"), ("reservation", "show", "CMB-0404"),
        ("reservation", "abandon", "CMB-0002", "--reason", "dup", "--session", "s1"),
        ("feed", "post", "--kind", "actionable", "--reserve", "CMB", "--subject", "{{ITEM_ID}}: flaky",
         "--session", "s1"),
        ("feed", "post", "--kind", "actionable", "--item", "CMB-0003", "--subject", "again", "--session", "s2"),
        ("feed", "post", "--kind", "actionable", "--provisional", "CMB-0003", "--subject", "offline",
         "--session", "s2"),
        ("feed", "confirm", "2", "--session", "s2"), ("feed", "confirm", "2", "--session", "s2"),
        ("feed", "amend", "1", "--subject", "CMB-0003: flaky on macOS", "--session", "s1"),
        ("feed", "list", "--item", "CMB-0003"), ("feed", "tail", "-n", "2"),
        ("queue",), ("drift-check",),
        ("who", "--limit", "1"), ("who", "--all", "--json"), ("list", "--all"), ("list", "--limit", "1"),
        ("list", "--held", "--limit", "1", "--json"), ("log", "CMB-0001", "--all"), ("log", "99927", "--limit", "2"),
        ("ready", "--limit", "1"),
        ("queue", "--limit", "1"), ("queue", "--all", "--json"), ("queue", "--state", "DONE", "--limit", "1"),
        ("feed", "list", "--all"), ("feed", "list", "--limit", "1"),
        ("reserve-path", "docs/**", "--session", "s1"),
        ("release-path", "docs/**", "--force", "--reason", "crashed"), ("paths",),
    ]
    for args in script:
        a, b = local(*args), remote(*args)
        diff = "\n".join(difflib.unified_diff(_mask(a.stdout + a.stderr).splitlines(),
                                              _mask(b.stdout + b.stderr).splitlines(), "local", "remote", lineterm=""))
        assert (a.returncode, _mask(a.stdout), _mask(a.stderr)) == (b.returncode, _mask(b.stdout), _mask(b.stderr)), (args, diff)
    # The whole log differs from the local ledger's (the server records the token's actor and
    # its token events): through the server it equals the served database's own, read locally.
    served_db = CLI(sqlite_url, dict(base_env, LEASEHOLD_ACTOR="bob"), tmp_path)
    for args in [("log", "--all"), ("log", "--all", "--json"), ("log", "--limit", "3")]:
        a, b = served_db(*args), remote(*args)
        assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr), args
    from leasehold import Ledger
    from leasehold.remote import RemoteLedger

    paged = RemoteLedger(served.url, served.tokens["agent"])
    paged.EVENT_PAGE = 4  # many pages: the walk neither skips nor repeats an event
    with Ledger.open(sqlite_url) as direct:
        assert [e.id for e in paged.iter_events()] == [e.id for e in direct.iter_events()]
        assert [e.id for e in paged.iter_events("99927", after=3)] == [e.id for e in direct.iter_events("99927", after=3)]
    paged.close()


def test_token_file_must_be_private(served, base_env, tmp_path: Path) -> None:
    work = tmp_path / "seat"
    work.mkdir()
    token_file = work / "token"
    token_file.write_text(served.tokens["agent"] + "\n")
    token_file.chmod(0o644)
    (work / "leasehold.toml").write_text(f'db = "{served.url}"\ntoken_file = "token"\n')
    cli = CLI(served.url, base_env, work)
    run = cli("status", "t1", db=False)
    assert run.returncode == 78 and "chmod 600" in run.stderr
    token_file.chmod(0o600)
    run = cli("claim", "t1", "--session", "s1", db=False)
    assert run.returncode == 0 and "as bob:s1" in run.stdout, run.stderr
    # Token management through the server needs an admin token.
    run = cli("token", "list", db=False)
    assert run.returncode == 77
    run = cli("token", "create", "--actor", "erin", "--role", "reader", "--json", db=False,
              env={"LEASEHOLD_TOKEN": served.tokens["admin"]})
    assert run.returncode == 0, run.stderr
    made = json.loads(run.stdout)
    assert made["role"] == "reader" and made["token"].startswith("lh_")


def test_waiters_are_granted_in_arrival_order_and_woken_at_once(sqlite_url: str, base_env) -> None:
    """10 waiters queue on one task (each one only after the server counts the one before);
    every release hands the lease to the next in line. The server re-checks only every 60 s
    (LEASEHOLD_WAIT_RECHECK) and each waiter gives up after 45 s: every hand-over must come
    from the release waking the next waiter, not from a re-check (no timing is asserted)."""
    from leasehold import Ledger
    from leasehold.remote import RemoteLedger

    Ledger.open(sqlite_url).close()
    token = make_token(sqlite_url, "bob")
    served = ServerProcess(sqlite_url, dict(base_env, LEASEHOLD_WAIT_RECHECK="60"))
    try:
        owner = RemoteLedger(served.url, token)
        owner.claim("job", "bob:owner", ttl=300)
        order: list[int] = []
        lock = threading.Lock()

        def waiter(i: int) -> None:
            with RemoteLedger(served.url, token) as ledger:
                lease = ledger.wait_claim("job", f"bob:w{i}", ttl=300, timeout=45)
                with lock:
                    order.append(i)
                ledger.release("job", lease.holder)

        threads = []
        for i in range(10):
            thread = threading.Thread(target=waiter, args=(i,))
            thread.start()
            threads.append(thread)
            wait_for(lambda n=i + 1: _waiters(served) == n, 30, f"{i + 1} waiters queued")
        owner.release("job", "bob:owner")
        for thread in threads:
            thread.join(120)
        assert order == list(range(10))
        owner.close()
        timed_out = RemoteLedger(served.url, token)
        timed_out.claim("held", "bob:a", ttl=300)
        from leasehold.errors import LeaseHeld

        with pytest.raises(LeaseHeld):
            timed_out.wait_claim("held", "bob:b", timeout=0.3)
        timed_out.close()
    finally:
        served.stop()


def _waiters(server) -> int:
    _status, answer = request(server, "GET", "/metrics")
    found = re.search(r"^leasehold_waiters ([\d.]+)$", answer["raw"], re.M)
    return int(float(found.group(1))) if found else -1


def test_cli_claim_wait_and_next_wait(served, base_env, tmp_path: Path) -> None:
    cli = CLI(served.url, dict(base_env, LEASEHOLD_TOKEN=served.tokens["agent"]), tmp_path)
    assert cli("claim", "w1", "--session", "a").returncode == 0
    run = cli("claim", "w1", "--session", "b", "--wait", "0.3s")
    assert run.returncode == 1 and "held by bob:a" in run.stderr
    waiter = cli.popen("claim", "w1", "--session", "b", "--wait", "60", stdout=-1, stderr=-1)
    wait_for(lambda: _waiters(served) == 1, 30, "the waiter queued")
    assert cli("release", "w1", "--session", "a").returncode == 0
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0 and "claimed w1 as bob:b" in out, err
    nexter = cli.popen("next", "--session", "c", "--wait", "60", stdout=-1, stderr=-1)
    wait_for(lambda: _waiters(served) == 1, 30, "next waiting")
    assert cli("add", "fresh").returncode == 0
    out, err = nexter.communicate(timeout=60)
    assert nexter.returncode == 0 and "claimed fresh as bob:c" in out, err
    run = cli("next", "--session", "c", "--wait", "0.2")
    assert run.returncode == 1


def test_event_stream_resumes_without_gap_or_duplicate(served) -> None:
    """Read part of the stream, drop the connection mid-stream, write more, reconnect with
    Last-Event-ID: every event exactly once, in order."""
    from leasehold.remote import RemoteLedger

    token = served.tokens["agent"]
    writer = RemoteLedger(served.url, token)
    for i in range(5):
        writer.add(f"e{i}")
    seen: list[int] = []

    def read(last: int, count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        conn.request("GET", "/v1/events", headers={"Authorization": f"Bearer {served.tokens['reader']}",
                                                   "Last-Event-ID": str(last)})
        response = conn.getresponse()
        assert response.status == 200
        got = 0
        while got < count:
            line = response.fp.readline().decode()
            if line.startswith("id:"):
                seen.append(int(line[3:]))
                got += 1
        conn.sock.close()  # mid-stream, without a goodbye
        conn.close()

    read(0, 4)
    for i in range(5, 9):
        writer.add(f"e{i}")
    read(seen[-1], 1)
    read(seen[-1], len(writer.events()) - len(seen))
    all_ids = [e.id for e in writer.events()]
    assert seen == all_ids

    # The Python iterator follows the stream; --kinds filters; a reader may watch.
    reader = RemoteLedger(served.url, served.tokens["reader"])
    found = []

    def follow() -> None:
        for event in reader.watch(kinds=["claimed"], timeout=20):
            found.append(event)
            if len(found) == 2:
                return

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.3)  # nothing to wait on: the iterator starts from "now" either way
    writer.claim("e1", "bob:s", ttl=60)
    writer.add("e-not-a-claim")
    writer.claim("e2", "bob:s", ttl=60)
    thread.join(30)
    assert [(e.kind, e.task_id) for e in found] == [("claimed", "e1"), ("claimed", "e2")]
    writer.close()
    reader.close()


def test_serve_refuses_anonymous_on_a_public_address_and_bad_options(sqlite_cli) -> None:
    run = sqlite_cli("serve", "--host", "0.0.0.0", "--anonymous-loopback")
    assert run.returncode == 2 and "loopback" in run.stderr
    # A name is not an address: "127.example.net" may resolve anywhere.
    for host in ("127.example.invalid", "127.0.0.1.example.invalid", "::"):
        run = sqlite_cli("serve", "--host", host, "--anonymous-loopback", "--port", "1")
        assert run.returncode == 2 and "loopback" in run.stderr, (host, run.stderr)
    assert sqlite_cli("serve", "--tls-cert", "x.pem").returncode == 2
    assert sqlite_cli("serve", "--workers", "2").returncode == 2  # SQLite: one process
    run = sqlite_cli("serve", "--max-body", "10")
    assert run.returncode == 2 and "--max-body" in run.stderr and "Traceback" not in run.stderr


def test_cli_start_up_does_not_import_the_server_stack(sqlite_cli) -> None:
    import subprocess
    import sys

    code = ("import sys; from leasehold.cli import main; main(['status', 'x']); "
            "bad = [m for m in ('starlette', 'uvicorn', 'prometheus_client', 'anyio') if m in sys.modules]; "
            "print(bad)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(sqlite_cli.env, LEASEHOLD_DB=sqlite_cli.db), timeout=60)
    assert run.stdout.strip().endswith("[]"), run.stdout + run.stderr


@pytest.mark.slow(group="races-pg")  # up to 34 connections: not beside the other PostgreSQL races
def test_two_server_processes_over_postgres_one_winner_per_round(pg_url, base_env) -> None:
    """Two stateless server processes over one PostgreSQL: 32 claimers split across them race
    on one task, released through a barrier — exactly one winner per round; a release through
    one process wakes a waiter queued on the other."""
    from multiprocessing import get_context

    from leasehold import Ledger

    Ledger.open(pg_url).close()
    token = make_token(pg_url, "bob")
    servers = [ServerProcess(pg_url, dict(base_env)) for _ in range(2)]
    try:
        ctx = get_context("fork")  # the parent holds no server and no connection here
        barrier = ctx.Barrier(32)
        results = ctx.Queue()
        rounds = 3
        procs = [ctx.Process(target=_racer, args=(servers[i % 2].url, token, i, rounds, barrier, results))
                 for i in range(32)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=120) for _ in range(32 * rounds)]
        for proc in procs:
            proc.join(60)
        for r in range(rounds):
            winners = [o for o in outcomes if o[0] == r and o[2]]
            assert len(winners) == 1, (r, winners)
        from leasehold.remote import RemoteLedger

        a, b = RemoteLedger(servers[0].url, token), RemoteLedger(servers[1].url, token)
        a.claim("x", "bob:a", ttl=300)
        woke: list[float] = []
        thread = threading.Thread(target=lambda: (b.wait_claim("x", "bob:b", timeout=60), woke.append(time.monotonic())))
        thread.start()
        wait_for(lambda: _waiters(servers[1]) == 1, 30, "the waiter queued on the second server")
        released = time.monotonic()
        a.release("x", "bob:a")
        thread.join(60)
        assert woke and woke[0] - released < 0.9, woke[0] - released  # NOTIFY, not the 1 s re-check
        a.close()
        b.close()
    finally:
        for server in servers:
            server.stop()


def _racer(url: str, token: str, i: int, rounds: int, barrier, results) -> None:  # type: ignore[no-untyped-def]
    os.environ["LEASEHOLD_TOKEN"] = token
    from leasehold.errors import LeaseHeld
    from leasehold.remote import RemoteLedger

    ledger = RemoteLedger(url, token)
    for r in range(rounds):
        barrier.wait()
        try:
            ledger.claim(f"race-{r}", f"bob:racer{i}", ttl=300)
            results.put((r, i, True))
        except LeaseHeld:
            results.put((r, i, False))
    ledger.close()


def test_hooks_through_the_server_gate_and_fail_closed(served, base_env, tmp_path: Path) -> None:
    """The agent hooks pointed at the server: another session's lease denies the dispatch; an
    unreachable server (or no token) denies too, never allows."""
    from tests.test_hooks import denied, hook, payload

    env = dict(base_env, LEASEHOLD_TOKEN=served.tokens["agent"], HOME=str(tmp_path / "home"))
    cli = CLI(served.url, env, tmp_path)
    assert cli("claim", "99927", "--session", "other-session").returncode == 0
    reason = denied(hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json")))
    assert "99927" in reason and "bob:other-session" in reason
    gone = CLI("http://127.0.0.1:9", env, tmp_path)
    assert "cannot check this call" in denied(hook(gone, "pre-tool-use", payload("pre_tool_use_agent.json")))
    no_token = CLI(served.url, dict(env, LEASEHOLD_TOKEN=""), tmp_path)
    assert "cannot check this call" in denied(hook(no_token, "pre-tool-use", payload("pre_tool_use_agent.json")))


def test_shares_and_session_end_through_the_server(served, base_env, tmp_path: Path) -> None:
    """Through the server: a shared lease lets the named teammates through the dispatch gate
    and no one else; the session-end hook releases that session's leases and reservations."""
    from tests.test_hooks import SESSION, decision, denied, hook, payload

    env = dict(base_env, LEASEHOLD_TOKEN=served.tokens["agent"], HOME=str(tmp_path / "home"))
    cli = CLI(served.url, env, tmp_path)
    proc = cli("claim", "99927", "--session", "lead", "--share-with", "mate-1", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["shared_with"] == ["mate-1"], proc.stderr
    prompt = payload("pre_tool_use_agent.json")
    assert decision(hook(cli, "pre-tool-use", dict(prompt, session_id="mate-1"))) is None
    assert "bob:lead" in denied(hook(cli, "pre-tool-use", dict(prompt, session_id="stranger")))
    proc = cli("share", "99927", "mate-2", "--session", "stranger")
    assert proc.returncode == 1 and "held by bob:lead" in proc.stderr
    assert cli("claim", "A-1", "--session", SESSION).returncode == 0
    assert cli("reserve-path", "src/**", "--session", SESSION).returncode == 0
    proc = hook(cli, "session-end", payload("session_end.json"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    held = {t["id"]: t["lease_holder"] for t in json.loads(cli("list", "--json").stdout)}
    assert held == {"99927": "bob:lead", "A-1": None}
    assert json.loads(cli("paths", "--json").stdout) == []
    from leasehold.remote import RemoteLedger

    assert cli("claim", "B-2", "--session", "counted").returncode == 0
    remote = RemoteLedger(served.url, served.tokens["agent"])
    try:
        assert remote.shared_among(["99927", "B-2", "not an id!"]) == {"99927": ["mate-1"]}
        assert remote.release_session_count("counted") == (1, 0)
        assert remote.release_session_count("counted") == (0, 0)
    finally:
        remote.close()


def test_missions_through_the_server(served, base_env, tmp_path: Path) -> None:
    cli = CLI(served.url, dict(base_env, LEASEHOLD_TOKEN=served.tokens["agent"], LEASEHOLD_SESSION="s1"), tmp_path)
    assert cli("missions", "init").returncode == 0
    assert cli("missions", "new", "Fix the thing").returncode == 0
    run = cli("missions", "claim", "--next")
    assert run.returncode == 0 and "as bob:s1 (fence 1)" in run.stdout, run.stderr
    mission = next((tmp_path / "missions" / "active").glob("*.md")).stem
    assert cli("missions", "claim", mission, env={"LEASEHOLD_SESSION": "s2"}).returncode == 1
    assert cli("missions", "done", mission).returncode == 0
    assert (tmp_path / "missions" / "done" / f"{mission}.md").exists()


def test_operation_ids_travel_through_the_server(served) -> None:
    """A change sent twice with one operation id (a client resending after a lost answer) is
    applied once and replayed; the id can be looked up through the server."""
    from leasehold.remote import RemoteLedger

    with RemoteLedger(served.url, served.tokens["agent"]) as ledger:
        first = ledger.claim("op-1", "bob:s1", ttl=60, op_id="retry-me-1")
        ledger.release("op-1", "bob:s1")
        again = ledger.claim("op-1", "bob:s1", ttl=60, op_id="retry-me-1")
        assert again.fence == first.fence == 1
        assert [e.kind for e in ledger.events("op-1")].count("claimed") == 1
        found = ledger.lookup_op("retry-me-1")
        assert found is not None and found.kind == "claim" and found.holder == "bob:s1"
        assert ledger.lookup_op("never-sent") is None


def test_reservations_posts_and_paths_resent_with_one_op_id_apply_once(served) -> None:
    """The client resends a change whose answer was lost with the same ``Leasehold-Op-Id``:
    a ticket reservation, a feed post and a file reservation are then replayed (the same
    numbers, the same post, the same grant), not applied twice; other arguments under that
    id are 400 invalid_input."""
    from leasehold import Ledger

    agent = served.tokens["agent"]
    sends = [
        ("/v1/namespaces/CMB/reserve", {"holder": "bob:s1", "count": 2}),
        ("/v1/feed", {"kind": "actionable", "subject": "x", "holder": "bob:s1", "reserve": "CMB"}),
        ("/v1/paths/reserve", {"patterns": ["src/**"], "holder": "bob:s1", "ttl": 60}),
    ]
    for n, (path, body) in enumerate(sends):
        header = {"Leasehold-Op-Id": f"resent-{n}", "Content-Type": "application/json"}
        first = request(served, "POST", path, agent, body, headers=header)
        again = request(served, "POST", path, agent, body, headers=header)
        assert first[0] == again[0] == 200, (first, again)
        assert again[1]["result"] == first[1]["result"], path
        other = request(served, "POST", path, agent, {**body, "holder": "bob:s2"}, headers=header)
        assert other[0] == 400 and other[1]["error"]["code"] == "invalid_input", other
    with Ledger.open(served.db) as ledger:
        kinds = [e.kind for e in ledger.events()]
        assert kinds.count("reserved") == 3 and kinds.count("posted") == 1
        assert kinds.count("path_reserved") == 1
        assert ledger.lookup_op("resent-0").kind == "reserve"


def test_reads_may_name_any_holder_changes_only_the_tokens_actor(served, base_env, tmp_path: Path) -> None:
    """Reading is open to every token: ``check`` for another actor's holder and ``leases_of``
    another actor answer 200 (to an agent and to a reader alike); a change naming another
    actor stays 403."""
    from leasehold.remote import RemoteLedger

    tok = served.tokens
    with RemoteLedger(served.url, tok["agent2"]) as dave:
        dave.claim("read-1", "dave:s1", ttl=300)
    for token in (tok["agent"], tok["reader"]):
        status, answer = request(served, "GET", "/v1/tasks/read-1/check?holder=dave:s1", token)
        assert status == 200 and answer["result"]["clear"] is True, answer
        status, answer = request(served, "GET", "/v1/leases?holder=dave:s1", token)
        assert status == 200 and [t["id"] for t in answer["result"]] == ["read-1"], answer
        assert request(served, "GET", "/v1/tasks/read-1/status", token)[0] == 200
    with RemoteLedger(served.url, tok["agent"]) as bob:
        verdict = bob.check("read-1", "dave:s1")
        assert verdict.clear and verdict.task.lease_actor == "dave"
        assert not bob.check("read-1", "bob:s1").clear
    status, answer = request(served, "POST", "/v1/tasks/read-1/release", tok["agent"], {"holder": "dave:s1"})
    assert status == 403 and answer["error"]["exit_code"] == 77


def _requests_of(server, route: str) -> int:
    _status, answer = request(server, "GET", "/metrics")
    pattern = r'^leasehold_request_seconds_count\{route="' + re.escape(route) + r'"\} ([\d.]+)$'
    found = re.search(pattern, answer["raw"], re.M)
    return int(float(found.group(1))) if found else 0


def test_list_all_and_feed_list_all_are_paged_over_http(served, base_env, tmp_path: Path) -> None:
    """``list --all`` and ``feed list --all`` through the server read page after page (a
    cursor each), never the whole listing in one answer; the output is the local one."""
    from leasehold import Ledger
    from leasehold.remote import RemoteLedger

    with Ledger.open(served.db) as ledger:
        for i in range(30):
            ledger.add(f"many-{i:02d}", priority=i % 4)
        for i in range(14):
            ledger.feed.post("info", f"note {i}", "bob:s1")
        want_tasks = [t.id for t in ledger.iter_tasks()]
        want_posts = [p.id for p in ledger.feed.iter_posts()]
    with RemoteLedger(served.url, served.tokens["reader"]) as remote:
        remote.TASK_PAGE = 4
        feed = remote.feed
        feed.POST_PAGE = 3
        before = _requests_of(served, "tasks_page"), _requests_of(served, "feed_page")
        assert [t.id for t in remote.iter_tasks()] == want_tasks
        assert [p.id for p in feed.iter_posts()] == want_posts
        after = _requests_of(served, "tasks_page"), _requests_of(served, "feed_page")
    assert after[0] - before[0] == 30 // 4 + 1 and after[1] - before[1] == 14 // 3 + 1, (before, after)

    env = dict(base_env, LEASEHOLD_TOKEN=served.tokens["reader"])
    for args in (("list", "--all", "--json"), ("feed", "list", "--all", "--json")):
        remote_run = CLI(served.url, env, tmp_path)(*args)
        local_run = CLI(served.db, base_env, tmp_path)(*args)
        assert remote_run.returncode == 0 == local_run.returncode, remote_run.stderr
        assert remote_run.stdout == local_run.stdout
    assert _requests_of(served, "tasks_page") > after[0] and _requests_of(served, "feed_page") > after[1]


def test_a_fresh_operation_id_that_is_not_fresh_still_replays(served) -> None:
    """``Leasehold-Op-Fresh: 1`` lets the server skip the retry lookup; a client that sends it
    with an id already used still gets the recorded outcome (the record written in the call's
    own transaction catches it), never a second grant."""
    from leasehold.remote import RemoteLedger

    token = served.tokens["agent"]
    with RemoteLedger(served.url, token) as ledger:
        first = ledger.claim("fr-1", "bob:s1", ttl=60, op_id="fresh-or-not-1")
        ledger.release("fr-1", "bob:s1")
        status, answer = request(served, "POST", "/v1/tasks/fr-1/claim", token, {"holder": "bob:s1", "ttl": 60},
                                 headers={"Leasehold-Op-Id": "fresh-or-not-1", "Leasehold-Op-Fresh": "1",
                                          "Content-Type": "application/json"})
        assert status == 200 and answer["result"]["fence"] == first.fence == 1, answer
        assert [e.kind for e in ledger.events("fr-1")].count("claimed") == 1
        assert ledger.status("fr-1").lease_actor is None


def test_a_revoked_token_is_refused_despite_the_verification_cache(served) -> None:
    """Verified tokens are trusted for 2 s per server process: revoked through the server, a
    token is refused on its very next request; revoked in the database directly (another
    process's view), within that time."""
    from leasehold import Ledger
    from leasehold.remote import RemoteLedger

    first, second = make_token(served.db, "erin"), make_token(served.db, "frank")
    with Ledger.open(served.db) as ledger:
        ids = {t.actor: t.id for t in ledger.tokens.list()}
    for token in (first, second):
        assert request(served, "GET", "/v1/whoami", token)[0] == 200  # verified: now cached
    with RemoteLedger(served.url, served.tokens["admin"]) as admin:
        admin.tokens.revoke(ids["erin"])
    status, answer = request(served, "GET", "/v1/whoami", first)
    assert status == 401 and "revoked" in answer["error"]["message"], answer
    with Ledger.open(served.db) as ledger:
        ledger.tokens.revoke(ids["frank"])
    wait_for(lambda: request(served, "GET", "/v1/whoami", second)[0] == 401, 30, "the direct revocation seen")


def test_a_token_revoked_on_the_dashboard_is_refused_at_once(served) -> None:
    """Revoked through this server process's dashboard (not only its API), a token verified a
    moment ago is refused on its very next request, as the README promises."""
    from urllib.parse import urlencode

    from leasehold import Ledger
    from leasehold.server.dashboard import COOKIE, csrf_token

    victim = make_token(served.db, "gina")
    with Ledger.open(served.db) as ledger:
        token_id = next(t.id for t in ledger.tokens.list() if t.actor == "gina")
    assert request(served, "GET", "/v1/whoami", victim)[0] == 200  # verified: now cached
    admin = served.tokens["admin"]
    form = urlencode({"csrf": csrf_token(admin), "token_id": token_id}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    conn.request("POST", "/admin/revoke", body=form, headers={
        "Cookie": f"{COOKIE}={admin}", "Origin": served.url,
        "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 303, response.status
    status, answer = request(served, "GET", "/v1/whoami", victim)
    assert status == 401 and "revoked" in answer["error"]["message"], answer
