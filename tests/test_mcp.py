"""The MCP server with the ``mcp`` SDK's own client, over both transports — ``leasehold mcp``
spawned over stdio, and ``/mcp`` in a real ``leasehold serve`` process — on SQLite and
PostgreSQL: every tool, the resources, refusals as tool errors naming the holder, a claim race
between two clients in separate OS processes released through a barrier, the tokens, and
malformed calls answered as protocol errors."""

from __future__ import annotations

import json
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests import conftest
from tests.server import ServerProcess, make_token

pytest.importorskip("mcp")

import anyio  # noqa: E402
import httpx2  # noqa: E402
from mcp import Client, ClientSession, StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

TOOLS = ["claim", "extend", "release", "done", "check", "next", "who", "reserve_ticket",
         "post_feed", "reserve_paths", "release_paths", "check_paths"]
#: The budget for tools/list as compact JSON (the README gives the measured size).
TOOLS_BUDGET = 6144


@pytest.fixture(params=["sqlite", "postgres"])
def mcp_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return conftest.create_ledger(str(tmp_path / "ledger.db"))
    return request.getfixturevalue("pg_url")


@asynccontextmanager
async def stdio(db: str, env: dict[str, str], actor: str, session: str, cwd: Path):
    params = StdioServerParameters(command=conftest.LEASEHOLD,
                                   args=["mcp", "--db", db, "--actor", actor, "--session", session],
                                   env=env, cwd=str(cwd))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as client:
            await client.initialize()
            yield client


@asynccontextmanager
async def over_http(url: str, token: str | None, session: str | None = None):
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if session is not None:
        headers["Leasehold-Session"] = session
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http_client:
        async with streamable_http_client(url + "/mcp", http_client=http_client) as (read, write):
            async with ClientSession(read, write) as client:
                await client.initialize()
                yield client


def _text(result) -> str:  # type: ignore[no-untyped-def]
    return result.content[0].text


async def _every_tool(client: ClientSession, holder: str) -> None:
    """Call every tool once (and the resources) as ``holder``, checking each answer."""
    listed = await client.list_tools()
    assert [t.name for t in listed.tools] == TOOLS
    size = len(json.dumps(listed.model_dump(by_alias=True, mode="json", exclude_none=True,
                                            exclude={"result_type"}), separators=(",", ":")).encode())
    assert size <= TOOLS_BUDGET, size

    claimed = await client.call_tool("claim", {"task": "T-1", "ttl": "5m", "title": "first"})
    assert not claimed.is_error, _text(claimed)
    task = claimed.structured_content
    assert task["lease_holder"] == holder and task["fence"] == 1 and task["lease_valid"] is True
    assert task["ttl_seconds"] == 300 and task["title"] == "first"
    assert _text(claimed).startswith(f"claimed T-1 as {holder} until ")

    extended = await client.call_tool("extend", {"task": "T-1", "ttl": 600, "fence": 1})
    assert not extended.is_error and extended.structured_content["ttl_seconds"] == 600

    check = await client.call_tool("check", {"task": "T-1"})
    assert check.structured_content["verdict"] == "CLEAR" and _text(check) == "VERDICT: CLEAR"
    other = await client.call_tool("check", {"task": "T-1", "session": "someone-else"})
    assert other.structured_content["verdict"] == "BLOCKED" and holder in _text(other)

    who = await client.call_tool("who", {})
    assert [h["holder"] for h in who.structured_content["holders"]] == [holder]

    resource = await client.read_resource("leasehold://task/T-1")
    assert json.loads(resource.contents[0].text)["lease_holder"] == holder
    who_resource = await client.read_resource("leasehold://who")
    assert json.loads(who_resource.contents[0].text)["holders"][0]["tasks"][0]["id"] == "T-1"

    done = await client.call_tool("done", {"task": "T-1"})
    assert not done.is_error and done.structured_content["status"] == "done"
    assert _text(done) == "done T-1 (fence 1)"

    ticket = await client.call_tool("reserve_ticket", {"prefix": "CMB", "count": 2})
    assert [r["ticket_id"] for r in ticket.structured_content["reservations"]] == ["CMB-0001", "CMB-0002"]
    post = await client.call_tool("post_feed", {"kind": "actionable", "reserve": "CMB",
                                                "subject": "{{ITEM_ID}}: fix the retry loop"})
    assert not post.is_error, _text(post)
    assert post.structured_content["item"] == "CMB-0003"
    assert post.structured_content["subject"] == "CMB-0003: fix the retry loop"

    nxt = await client.call_tool("next", {"ttl": "2m"})
    assert [t["id"] for t in nxt.structured_content["tasks"]] == ["CMB-0003"]  # the post made it
    released = await client.call_tool("release", {"task": "CMB-0003"})
    assert released.structured_content["released"] is True
    assert released.structured_content["status"] == "open"

    reserved = await client.call_tool("reserve_paths", {"paths": ["src/api/**"], "reason": "router"})
    assert reserved.structured_content["paths"][0]["holder"] == holder
    blocked = await client.call_tool("check_paths", {"paths": ["src/api/routes.py", "docs/x.md"],
                                                     "session": "someone-else"})
    assert blocked.structured_content["verdict"] == "BLOCKED"
    assert [len(p["blocked_by"]) for p in blocked.structured_content["paths"]] == [1, 0]
    assert holder in _text(blocked)
    mine = await client.call_tool("check_paths", {"paths": ["src/api/routes.py"]})
    assert mine.structured_content["verdict"] == "CLEAR"
    gone = await client.call_tool("release_paths", {"paths": ["src/api/**"]})
    assert gone.structured_content["paths"] == [{"pattern": "src/api/**", "released": True, "fence": 1}]

    # refusals are tool errors with the CLI's text; bad values too (exit 2's message)
    nothing = await client.call_tool("extend", {"task": "T-1"})
    assert nothing.is_error and nothing.structured_content["error"]["exit_code"] == 1
    bad_ttl = await client.call_tool("claim", {"task": "T-2", "ttl": "forever"})
    assert bad_ttl.is_error and bad_ttl.structured_content["error"]["exit_code"] == 2
    bad_count = await client.call_tool("next", {"count": 0})
    assert bad_count.is_error and _text(bad_count) == "count must be at least 1, got 0"
    again = await client.call_tool("next", {"count": 5})
    assert [t["id"] for t in again.structured_content["tasks"]] == ["CMB-0003"]
    assert not (await client.call_tool("done", {"task": "CMB-0003"})).is_error
    none_left = await client.call_tool("next", {})
    assert none_left.is_error and _text(none_left) == "no task available"

    # malformed calls are protocol errors, and the session goes on
    for name, args in (("claim", {"task": 42}), ("claim", {}), ("claim", {"task": "x", "holder": "a:b"}),
                       ("no_such_tool", {})):
        with pytest.raises(MCPError) as info:
            await client.call_tool(name, args)
        assert info.value.code == -32602, (name, info.value)
    assert not (await client.call_tool("who", {})).is_error


def _race_stdio(db: str, env: dict[str, str], cwd: str, name: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with stdio(db, env, name, f"{name}-s", Path(cwd)) as client:
            await anyio.to_thread.run_sync(barrier.wait)
            result = await client.call_tool("claim", {"task": "race", "ttl": "5m"})
            # the loser (refused: the winner's lease is committed) asks the gate too
            check = await client.call_tool("check", {"task": "race"}) if result.is_error else None
            results.put((name, result.is_error, _text(result), result.structured_content,
                         check and check.structured_content["verdict"], check and _text(check)))

    anyio.run(main)


def _race_http(url: str, token: str, name: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with over_http(url, token, f"{name}-s") as client:
            await anyio.to_thread.run_sync(barrier.wait)
            result = await client.call_tool("claim", {"task": "race", "ttl": "5m"})
            # the loser (refused: the winner's lease is committed) asks the gate too
            check = await client.call_tool("check", {"task": "race"}) if result.is_error else None
            results.put((name, result.is_error, _text(result), result.structured_content,
                         check and check.structured_content["verdict"], check and _text(check)))

    anyio.run(main)


def _race(target, args_of) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Two racers in their own OS processes, each with its own MCP client, released together
    through a barrier once both are initialized."""
    from multiprocessing import get_context

    ctx = get_context("fork")  # the test process holds no event loop and no client here
    barrier = ctx.Barrier(2, timeout=90)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_of(name), barrier, results)) for name in ("ann", "ben")]
    for proc in procs:
        proc.start()
    try:
        outcomes = [results.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return outcomes


def _one_winner(outcomes: list[tuple], holder_of) -> str:  # type: ignore[no-untyped-def]
    winners = [o for o in outcomes if not o[1]]
    losers = [o for o in outcomes if o[1]]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    winner = holder_of(winners[0][0])
    assert winners[0][3]["lease_holder"] == winner
    error = losers[0][3]["error"]
    assert error["type"] == "LeaseHeld" and error["holder"] == winner and error["lease_until"]
    assert losers[0][2].startswith(f"Task race held by {winner} until "), losers[0][2]
    # the held task blocks the loser's check
    assert losers[0][4] == "BLOCKED" and losers[0][5].startswith(f"VERDICT: BLOCKED — held by {winner} until ")
    return winner


def test_stdio_every_tool_race_and_check(mcp_db: str, base_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # the repository root check_paths resolves paths against

    async def main() -> None:
        async with stdio(mcp_db, base_env, "alice", "s1", tmp_path) as client:
            await _every_tool(client, "alice:s1")

    anyio.run(main)

    outcomes = _race(_race_stdio, lambda name: (mcp_db, base_env, str(tmp_path), name))
    _one_winner(outcomes, lambda name: f"{name}:{name}-s")


def test_stdio_with_the_newer_protocol(sqlite_url: str, base_env, tmp_path: Path) -> None:
    """The SDK's high-level ``Client`` negotiates the newer protocol revision over stdio."""
    async def main() -> None:
        params = StdioServerParameters(command=conftest.LEASEHOLD, args=["mcp", "--db", sqlite_url, "--session", "m"],
                                       env=dict(base_env, LEASEHOLD_ACTOR="mo"), cwd=str(tmp_path))
        async with Client(params) as client:
            assert client.protocol_version not in ("2025-11-25", "2025-06-18")
            claimed = await client.call_tool("claim", {"task": "N-1"})
            assert claimed.structured_content["lease_holder"] == "mo:m"
            task = json.loads((await client.read_resource("leasehold://task/N-1")).contents[0].text)
            assert task["lease_holder"] == "mo:m" and task["exists"] is True

    anyio.run(main)


def test_stdio_session_defaults_to_the_runtime_then_a_generated_one(sqlite_url: str, base_env, tmp_path: Path) -> None:
    async def claim_with(env: dict[str, str], task: str) -> str:
        params = StdioServerParameters(command=conftest.LEASEHOLD, args=["mcp", "--db", sqlite_url],
                                       env=env, cwd=str(tmp_path))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as client:
                await client.initialize()
                result = await client.call_tool("claim", {"task": task})
                assert not result.is_error, _text(result)
                return result.structured_content["lease_holder"]

    runtime = anyio.run(claim_with, dict(base_env, CLAUDE_CODE_SESSION_ID="cc-123"), "a")
    assert runtime == "tester:cc-123"
    generated = anyio.run(claim_with, dict(base_env, LEASEHOLD_ACTOR="zed"), "b")
    assert generated.startswith("zed:mcp-") and len(generated) == len("zed:mcp-") + 8


def test_http_tokens_every_tool_race_and_check(mcp_db: str, base_env: dict[str, str]) -> None:
    from leasehold import Ledger

    Ledger.open(mcp_db).close()
    tokens = {"bob": make_token(mcp_db, "bob"), "dave": make_token(mcp_db, "dave"),
              "carol": make_token(mcp_db, "carol", "reader")}
    server = ServerProcess(mcp_db, dict(base_env))
    try:
        # no token, a wrong one, a malformed header: 401 before any MCP message is read
        import http.client

        for headers in ({}, {"Authorization": "Bearer lh_wrong"}, {"Authorization": "Basic x"}):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("POST", "/mcp", body=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                         headers={"Content-Type": "application/json",
                                  "Accept": "application/json, text/event-stream", **headers})
            response = conn.getresponse()
            body = json.loads(response.read())
            assert response.status == 401 and body["error"]["exit_code"] == 77, body
            conn.close()

        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/mcp", headers={"Authorization": f"Bearer {tokens['bob']}",
                                             "Accept": "text/event-stream"})
        response = conn.getresponse()
        assert response.status == 405 and response.getheader("Allow") == "POST"
        conn.close()

        async def refused_by_the_sdk_client() -> None:
            with pytest.raises(BaseException):  # noqa: B017 - the SDK raises its transport error
                async with over_http(server.url, "lh_wrong") as client:
                    await client.list_tools()

        anyio.run(refused_by_the_sdk_client)

        async def main() -> None:
            async with over_http(server.url, tokens["bob"], "web-1") as client:
                await _every_tool(client, "bob:web-1")
            async with over_http(server.url, tokens["carol"]) as reader:
                denied = await reader.call_tool("claim", {"task": "R", "session": "x"})
                assert denied.is_error and denied.structured_content["error"]["exit_code"] == 77
                assert "reader token may not claim" in _text(denied)
                assert not (await reader.call_tool("who", {})).is_error
            # the SDK's high-level Client negotiates the newer protocol (no handshake)
            headers = {"Authorization": f"Bearer {tokens['dave']}", "Leasehold-Session": "modern"}
            async with httpx2.AsyncClient(headers=headers, timeout=30) as http_client:
                async with Client(streamable_http_client(server.url + "/mcp", http_client=http_client)) as modern:
                    assert modern.protocol_version not in ("2025-11-25", "2025-06-18")
                    claimed = await modern.call_tool("claim", {"task": "M-1"})
                    assert claimed.structured_content["lease_holder"] == "dave:modern"
                    with pytest.raises(MCPError):
                        await modern.call_tool("claim", {"task": 1})
            async with over_http(server.url, tokens["dave"]) as no_session:  # no Leasehold-Session header
                missing = await no_session.call_tool("claim", {"task": "R"})
                assert missing.is_error and "no session" in _text(missing)
            # a runtime that sends an unset ${VAR} literally: refused, not one shared holder
            async with over_http(server.url, tokens["dave"], "${RUN_ID}") as literal:
                shared = await literal.call_tool("claim", {"task": "R"})
                assert shared.is_error and "unexpanded" in _text(shared), _text(shared)
                assert shared.structured_content["error"]["exit_code"] == 2

        anyio.run(main)

        outcomes = _race(_race_http, lambda name: (server.url, tokens["bob" if name == "ann" else "dave"], name))
        holders = {"ann": "bob:ann-s", "ben": "dave:ben-s"}
        _one_winner(outcomes, holders.__getitem__)
        # the refused write of the reader and the 401s were audited
        with Ledger.open(mcp_db) as ledger:
            refused = [e for e in ledger.events(None, None) if e.kind == "auth_refused"]
        assert any(e.details.get("op") == "mcp" and e.details.get("status") == 401 for e in refused)
        assert any(e.details.get("op") == "mcp:claim" and e.details.get("status") == 403 for e in refused)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/metrics")
        assert 'leasehold_request_seconds_count{route="mcp"}' in conn.getresponse().read().decode()
        conn.close()
    finally:
        server.stop()


def test_cli_start_up_does_not_import_mcp(sqlite_cli) -> None:
    import subprocess
    import sys

    code = ("import sys; from leasehold.cli import main; main(['status', 'x']); "
            "print([m for m in ('mcp', 'anyio', 'leasehold.server.mcp_tools') if m in sys.modules])")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(sqlite_cli.env, LEASEHOLD_DB=sqlite_cli.db), timeout=60)
    assert run.stdout.strip().endswith("[]"), run.stdout + run.stderr
    size = sqlite_cli("mcp", "--tools-size", "--json")
    assert size.returncode == 0, size.stderr
    assert json.loads(size.stdout)["bytes"] <= TOOLS_BUDGET


def test_stdio_garbage_and_malformed_requests_do_not_end_the_session(sqlite_url: str, base_env, tmp_path: Path) -> None:
    """Raw JSON-RPC on the real process's stdin: a line that is not JSON, a tools/call without a
    name, arguments that are not an object — each refused (or skipped), and the next call is
    answered."""
    import subprocess

    proc = subprocess.Popen([conftest.LEASEHOLD, "mcp", "--db", sqlite_url, "--session", "raw"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=base_env, cwd=tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    lines = [
        "not json at all",
        {"id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                                     "clientInfo": {"name": "raw", "version": "1"}}},
        {"method": "notifications/initialized"},
        {"id": 2, "method": "tools/call", "params": {"arguments": {}}},
        {"id": 3, "method": "tools/call", "params": {"name": "who", "arguments": [1]}},
        {"id": 4, "method": "tools/call", "params": {"name": "claim", "arguments": {"task": "raw-1"}}},
    ]
    try:
        for line in lines:
            text = line if isinstance(line, str) else json.dumps({"jsonrpc": "2.0", **line})
            proc.stdin.write(text + "\n")
        proc.stdin.flush()
        answers = {}
        while len(answers) < 4:
            message = json.loads(proc.stdout.readline())
            answers[message["id"]] = message
        assert answers[1]["result"]["serverInfo"]["name"] == "leasehold"
        assert answers[2]["error"]["code"] == -32602 and answers[3]["error"]["code"] == -32602
        assert answers[4]["result"]["structuredContent"]["lease_holder"].endswith(":raw")
    finally:
        proc.stdin.close()
        assert proc.wait(30) == 0  # stdin closed: the server ends cleanly


def test_stdio_bad_ledger_is_one_line_and_its_exit_code(base_env, tmp_path: Path) -> None:
    import subprocess

    run = subprocess.run([conftest.LEASEHOLD, "mcp", "--db", str(tmp_path / "missing.db"), "--session", "s"],
                         capture_output=True, text=True, env=base_env, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 78 and run.stdout == "" and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_stdio_out_of_range_values_are_tool_errors_not_bugs(sqlite_url: str, base_env, tmp_path: Path) -> None:
    """Values the schema lets through but the ledger refuses — an integer TTL too large for a
    float, a session argument that is not a valid name — are tool errors with exit code 2,
    never an internal error (70) nor silently read as something else; an integral float where
    the schema says integer (which JSON Schema admits) is taken as the integer."""
    (tmp_path / ".git").mkdir()

    async def main() -> None:
        async with stdio(sqlite_url, base_env, "vic", "v1", tmp_path) as client:
            for name, args in (("claim", {"task": "V-1", "ttl": 10**400}),
                               ("reserve_paths", {"paths": ["src/**"], "ttl": 10**400}),
                               ("claim", {"task": "V-1", "ttl": -(10**400)}),
                               ("claim", {"task": "V-1", "ttl": 0})):
                result = await client.call_tool(name, args)
                assert result.is_error, (name, args, _text(result))
                assert result.structured_content["error"]["exit_code"] == 2, _text(result)
                assert "out of range" in _text(result)
            assert not (await client.call_tool("claim", {"task": "V-1", "ttl": 90})).is_error
            # JSON Schema's "integer" admits 2.0 (a client whose numbers are all floats): taken as 2
            tickets = await client.call_tool("reserve_ticket", {"prefix": "FL", "count": 2.0})
            assert not tickets.is_error, _text(tickets)
            assert [r["ticket_id"] for r in tickets.structured_content["reservations"]] == ["FL-0001", "FL-0002"]
            with pytest.raises(MCPError):
                await client.call_tool("reserve_ticket", {"prefix": "FL", "count": 2.5})
            # an invalid session is an error, not "no session" (which would answer BLOCKED)
            for session in ("two words", "a:b"):
                bad = await client.call_tool("check", {"task": "V-1", "session": session})
                assert bad.is_error and bad.structured_content["error"]["exit_code"] == 2, _text(bad)
                assert "session" in _text(bad)
            assert (await client.call_tool("check", {"task": "V-1"})).structured_content["verdict"] == "CLEAR"

    anyio.run(main)


def test_stdio_against_a_remote_ledger_that_revokes_the_token_then_goes_away(sqlite_url: str, base_env,
                                                                               tmp_path: Path) -> None:
    """``leasehold mcp`` with LEASEHOLD_DB=http://... and a token: the token revoked mid-session
    makes each call a tool error with exit code 77, the service gone makes it 75 (nothing
    applied, retry), and a resource read says the same in its error data — the session
    survives both."""
    import subprocess

    token = make_token(sqlite_url, "rita")
    server = ServerProcess(sqlite_url, dict(base_env))
    try:
        env = dict(base_env, LEASEHOLD_DB=server.url, LEASEHOLD_TOKEN=token)

        async def main() -> None:
            params = StdioServerParameters(command=conftest.LEASEHOLD, args=["mcp", "--session", "r1"],
                                           env=env, cwd=str(tmp_path))
            async with stdio_client(params) as (read, write):
                async with ClientSession(read, write) as client:
                    await client.initialize()
                    claimed = await client.call_tool("claim", {"task": "REM-1"})
                    assert claimed.structured_content["lease_holder"] == "rita:r1", _text(claimed)
                    listed = subprocess.run([conftest.LEASEHOLD, "token", "list", "--db", sqlite_url, "--json"],
                                            capture_output=True, text=True, env=base_env, timeout=60)
                    token_id = next(t["id"] for t in json.loads(listed.stdout) if t["actor"] == "rita")
                    assert subprocess.run([conftest.LEASEHOLD, "token", "revoke", token_id, "--db", sqlite_url],
                                          capture_output=True, env=base_env, timeout=60).returncode == 0
                    for expected in (77, 75):
                        if expected == 75:
                            server.stop()
                        result = await client.call_tool("extend", {"task": "REM-1"})
                        # a token revoked outside the server is refused within its 2 s token cache
                        deadline = time.monotonic() + 15
                        while not result.is_error and expected == 77 and time.monotonic() < deadline:
                            await anyio.sleep(0.2)
                            result = await client.call_tool("extend", {"task": "REM-1"})
                        assert result.is_error, _text(result)
                        assert result.structured_content["error"]["exit_code"] == expected, _text(result)
                        with pytest.raises(MCPError) as info:
                            await client.read_resource("leasehold://task/REM-1")
                        assert info.value.code == -32603 and info.value.data["exit_code"] == expected
                    with pytest.raises(MCPError) as info:
                        await client.read_resource("leasehold://nothing")
                    assert info.value.code == -32002

        anyio.run(main)
    finally:
        server.stop()


def test_anonymous_loopback_mcp_refuses_a_foreign_host_or_origin(sqlite_url: str, base_env) -> None:
    """DNS rebinding: a page at evil.example whose name re-resolves to 127.0.0.1 must not act
    through an ``--anonymous-loopback`` service's /mcp (no token is needed there). A foreign
    Host is 401 (or 421), a foreign Origin 403, nothing is claimed; loopback callers still work."""
    import http.client

    from leasehold import Ledger

    server = ServerProcess(sqlite_url, dict(base_env), "--anonymous-loopback")
    try:
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "claim", "arguments": {"task": "evil", "session": "x"}}}
        port = server.port
        # A foreign Host is refused before /mcp by the service's loopback-Host rule (401), or by
        # the SDK's own check (421); a foreign Origin by the SDK (403).
        for headers, status in (({"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}, (401, 421)),
                                ({"Host": f"127.0.0.1:{port}", "Origin": f"http://evil.example:{port}"}, (403,))):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/mcp", body=json.dumps(call),
                         headers={"Content-Type": "application/json", "MCP-Protocol-Version": "2025-11-25",
                                  "Accept": "application/json, text/event-stream", **headers})
            response = conn.getresponse()
            response.read()
            assert response.status in status, (headers, response.status)
            conn.close()
        with Ledger.open(sqlite_url) as ledger:
            assert ledger.status("evil") is None

        async def main() -> None:
            async with over_http(server.url, None, "local") as client:
                claimed = await client.call_tool("claim", {"task": "fine"})
                assert claimed.structured_content["lease_holder"] == "anonymous:local"

        anyio.run(main)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # a browser on localhost
        conn.request("POST", "/mcp", body=json.dumps(dict(call, params={"name": "who", "arguments": {}})),
                     headers={"Content-Type": "application/json", "MCP-Protocol-Version": "2025-11-25",
                              "Accept": "application/json, text/event-stream",
                              "Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"})
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.stop()


def test_the_ledgers_of_ended_worker_threads_are_closed(tmp_path: Path) -> None:
    """``leasehold mcp`` and ``leasehold serve`` open a ledger per worker thread, and anyio ends
    idle workers (10 s) and starts new ones for the next burst: the ended threads' ledgers
    must be closed, or every burst after a quiet spell leaves its connections open (over
    PostgreSQL, dozens per burst until the server refuses more). Counted as this process's
    open descriptors of the ledger file."""
    import threading

    from leasehold import Ledger
    from leasehold.server.ledgers import ThreadLedgers

    db = conftest.create_ledger(str(tmp_path / "ledger.db"))

    def descriptors() -> int:
        fds = Path("/proc/self/fd")
        return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == os.path.realpath(db))

    before = descriptors()
    ledgers = ThreadLedgers(lambda: Ledger.open(db))
    ledgers.REAP_EVERY = 0.0  # look on every call
    workers = [threading.Thread(target=lambda: ledgers.get().now()) for _ in range(5)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert 1 <= len(ledgers) <= 5  # each later thread may already have closed earlier ones
    ledgers.get().now()  # a live thread's call closes the ended threads' ledgers
    assert len(ledgers) == 1 and descriptors() - before == 1
    ledgers.close()
    assert len(ledgers) == 0 and descriptors() == before


__all__ = ["os"]
