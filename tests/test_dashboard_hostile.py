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
