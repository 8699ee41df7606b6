"""The dashboard against careless and hostile use, over plain HTTP (no browser): a ledger that
goes away under a running ``leasehold serve`` process, floods of event streams.

Browser-side hostile cases (many tabs, markup in names) are in ``tests/test_dashboard.py``.
"""

from __future__ import annotations

import http.client
from urllib.parse import urlencode, urlsplit

from tests import pg
from tests.server import ServerProcess, make_token


def _request(url: str, method: str, path: str, token: str, body: dict[str, str] | None = None,
             timeout: float = 30) -> tuple[int, str, str]:
    """``(status, content type, body)`` of one request with the session cookie."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    headers = {"Cookie": f"leasehold_session={token}", "Origin": url}
    data = None
    if body is not None:
        data = urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("content-type") or "", response.read().decode()
    finally:
        conn.close()


def test_a_ledger_gone_under_the_server_gives_error_pages_not_500s(pg_url: str, base_env: dict[str, str]) -> None:
    """The ledger's schema is dropped while the server runs: every page, the sign-in form, the
    forms and the event stream answer 503 with a page that says so (never a bare "Internal Server
    Error"), and the server logs no traceback."""
    token = make_token(pg_url, "alice", "admin")
    server = ServerProcess(pg_url, dict(base_env))
    try:
        assert _request(server.url, "GET", "/", token)[0] == 200
        schema = pg_url.rsplit("search_path%3D", 1)[1]
        pg.drop_schema(schema)
        for method, path, body in (("GET", "/", None), ("GET", "/tickets", None), ("GET", "/admin", None),
                                   ("GET", "/tasks/x", None), ("POST", "/login", {"token": token}),
                                   ("POST", "/admin/force-release", {"csrf": "x", "task_id": "x", "reason": "r"}),
                                   ("POST", "/logout", {"csrf": "x"})):
            status, kind, text = _request(server.url, method, path, token, body)
            assert status == 503, (method, path, status, text[:300])
            assert kind.startswith("text/html") and "Ledger unavailable" in text and "ledger is unavailable" in text
        status, kind, text = _request(server.url, "GET", "/ui/events", token)
        assert status == 503 and "ledger is unavailable" in text
    except BaseException:
        server.stop()
        raise
    server.proc.terminate()
    server.proc.wait(15)
    assert server.proc.stderr is not None
    log = server.proc.stderr.read()
    server.stop()
    assert "Traceback" not in log, log[-3000:]


def test_event_streams_are_capped_and_all_hear_a_direct_write(sqlite_url: str, base_env: dict[str, str]) -> None:
    """A flood of event streams: the server keeps at most MAX_STREAMS open (one more is 503, and
    a closed one frees its place), stays responsive, and every open stream hears of a change
    written directly on the ledger file (one head follower wakes them all)."""
    import asyncio

    from leasehold import Ledger
    from leasehold.server.dashboard import MAX_STREAMS

    token = make_token(sqlite_url, "carol", "reader")
    server = ServerProcess(sqlite_url, dict(base_env))
    port = server.port

    async def open_stream() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /ui/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"Cookie: leasehold_session={token}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        return reader, writer, head

    async def until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
        data = b""
        while marker not in data:
            chunk = await reader.read(4096)
            assert chunk, data
            data += chunk
        return data

    async def main() -> None:
        streams = []
        for start in range(0, MAX_STREAMS, 64):
            streams += await asyncio.gather(*[open_stream() for _ in range(min(64, MAX_STREAMS - start))])
        assert all(head.startswith(b"HTTP/1.1 200") for _, _, head in streams)
        await asyncio.wait_for(asyncio.gather(*[until(r, b"event: hello") for r, _, _ in streams]), 60)
        reader, writer, head = await open_stream()
        assert head.startswith(b"HTTP/1.1 503"), head
        writer.close()
        loop = asyncio.get_running_loop()
        status, _, _ = await loop.run_in_executor(None, _request, server.url, "GET", "/", token)
        assert status == 200  # the pages still answer
        with Ledger.open(sqlite_url) as ledger:  # not through the server: only the head moves
            ledger.claim("flood-1", "bob:s", ttl=60)
        await asyncio.wait_for(asyncio.gather(*[until(r, b"event: change") for r, _, _ in streams]), 60)
        streams.pop()[1].close()  # a closed stream frees its place (once the server notices)
        deadline = loop.time() + 30
        while True:
            reader, writer, head = await open_stream()
            writer.close()
            if head.startswith(b"HTTP/1.1 200"):
                break
            assert loop.time() < deadline, head
            await asyncio.sleep(0.05)
        for _, w, _ in streams:
            w.close()

    try:
        asyncio.run(main())
    finally:
        server.stop()


def test_anonymous_forms_work_on_every_worker_process(pg_url: str, base_env: dict[str, str]) -> None:
    """``--anonymous-loopback --workers 3``: a form's CSRF token, rendered by one worker
    process, is accepted by the others (it was keyed by a per-process random secret, so most
    posts landed on a worker that refused them)."""
    import re

    server = ServerProcess(pg_url, dict(base_env), "--workers", "3", "--anonymous-loopback")
    try:
        status, _, text = _request(server.url, "GET", "/", "")
        assert status == 200
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', text)
        assert csrf
        for _ in range(24):  # a connection each: the kernel spreads them over the workers
            status, _, text = _request(server.url, "POST", "/logout", "", {"csrf": csrf.group(1)})
            assert status == 303, text[:300]
    finally:
        server.stop()


def test_sign_out_forgets_a_token_revoked_since_the_page_was_drawn(sqlite_url: str, base_env: dict[str, str]) -> None:
    """*Sign out* after the session's token was revoked (or expired) still forgets the cookie,
    instead of a "sign in first" page that keeps it; from another site it is still refused."""
    from leasehold import Ledger

    token = make_token(sqlite_url, "carol", "reader")
    server = ServerProcess(sqlite_url, dict(base_env))
    try:
        with Ledger.open(sqlite_url) as ledger:
            (info,) = [t for t in ledger.tokens.list() if t.actor == "carol"]
            ledger.tokens.revoke(info.id)
        parts = urlsplit(server.url)
        for origin, status in (("https://evil.example", 403), (server.url, 303)):
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            conn.request("POST", "/logout", body="csrf=stale", headers={
                "Cookie": f"leasehold_session={token}", "Origin": origin,
                "Content-Type": "application/x-www-form-urlencoded"})
            response = conn.getresponse()
            assert response.status == status, response.read()[:300]
            cookie = response.getheader("set-cookie") or ""
            conn.close()
        assert response.getheader("location") == "/login"
        assert cookie.startswith("leasehold_session=") and "Max-Age=0" in cookie
    finally:
        server.stop()


def test_the_now_page_lists_at_most_a_hundred_file_reservations(sqlite_url: str, base_env: dict[str, str]) -> None:
    """Thousands of file reservations made the Now page megabytes (fetched again on every
    change): it lists the first RESERVATIONS_TOP by pattern and says how many there are."""
    from leasehold import Ledger, paths
    from leasehold.server.dashboard import RESERVATIONS_TOP

    with Ledger.open(sqlite_url) as ledger:
        paths.reserve(ledger, [f"src/m{i:03d}/**" for i in range(RESERVATIONS_TOP + 5)], "bob:s", 600)
    token = make_token(sqlite_url, "carol", "reader")
    server = ServerProcess(sqlite_url, dict(base_env))
    try:
        status, _, text = _request(server.url, "GET", "/", token)
    finally:
        server.stop()
    assert status == 200
    assert text.count("<tr data-path=") == RESERVATIONS_TOP
    assert f"({RESERVATIONS_TOP} of {RESERVATIONS_TOP + 5})" in text and "leasehold paths" in text


def test_anonymous_mode_answers_loopback_host_names_only(sqlite_url: str, base_env: dict[str, str]) -> None:
    """``--anonymous-loopback`` binds loopback, but a web page whose own name was made to resolve
    to 127.0.0.1 (DNS rebinding) reaches it too, same-origin, and would act as admin: requests
    whose ``Host`` is not a loopback name get no anonymous session (dashboard: to the sign-in
    page; API: 401), while 127.0.0.1 and localhost work as before."""
    server = ServerProcess(sqlite_url, dict(base_env), "--anonymous-loopback")
    parts = urlsplit(server.url)

    def get(path: str, host: str) -> int:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("GET", path, headers={"Host": host})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    try:
        for host in (f"127.0.0.1:{parts.port}", f"localhost:{parts.port}"):
            assert get("/admin", host) == 200 and get("/v1/leases/board", host) == 200
        for host in (f"rebound.example:{parts.port}", f"127.0.0.1.evil.example:{parts.port}"):
            assert get("/admin", host) == 303  # to the sign-in page
            assert get("/v1/leases/board", host) == 401
    finally:
        server.stop()


def test_the_admin_page_shows_only_outcomes_the_server_wrote(sqlite_url: str, base_env: dict[str, str]) -> None:
    """``/admin?done=TEXT`` showed any TEXT as the green outcome of an admin action: a link
    could make the page say "Sign in again at https://evil.example". The outcome now carries a
    signature of the session's; a force-release still shows its own."""
    import re

    from leasehold import Ledger

    token = make_token(sqlite_url, "alice", "admin")
    with Ledger.open(sqlite_url) as ledger:
        ledger.claim("t-1", "bob:s", ttl=600)
    server = ServerProcess(sqlite_url, dict(base_env))
    try:
        phish = "Session expired: sign in again at https://evil.example"
        status, _, text = _request(server.url, "GET", "/admin?done=" + phish.replace(" ", "+"), token)
        assert status == 200 and "evil.example" not in text and 'role="status"' not in text.split("<main", 1)[1]
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', text)
        assert csrf
        parts = urlsplit(server.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request("POST", "/admin/force-release", body=urlencode({"csrf": csrf.group(1), "task_id": "t-1",
                                                                       "reason": "stuck"}),
                     headers={"Cookie": f"leasehold_session={token}", "Origin": server.url,
                              "Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        location = response.getheader("location") or ""
        conn.close()
        assert response.status == 303 and location.startswith("/admin?done=")
        status, _, text = _request(server.url, "GET", location, token)
        assert status == 200 and "released t-1" in text
    finally:
        server.stop()
