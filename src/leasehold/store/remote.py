"""The wire client of a ``leasehold serve`` ledger: JSON over HTTP(S) with the standard library's
:mod:`http.client` only (the CLI and hooks import it on every call: no third-party HTTP stack).

Error translation happens once, here:

- the server's error bodies become the same exception classes and messages a local ledger
  raises (:func:`leasehold.wire.error_in`);
- 401/403, and a remote ledger with no token configured: :class:`PermissionDenied` (exit 77);
- a server that cannot be reached, or answers 503: :class:`StoreUnavailable` (exit 75; nothing
  was applied);
- a change whose answer was lost (the connection dropped after the request was sent): the
  request's operation id (header ``Leasehold-Op-Id``) is looked up on the server
  (``GET /v1/ops/{id}``); when that cannot say, :class:`OutcomeUnknown` (exit 76) carrying the
  id. Reads are simply retried once.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from urllib.parse import quote, urlencode, urlsplit

from leasehold import wire
from leasehold.errors import (
    ConfigError,
    OutcomeUnknown,
    PermissionDenied,
    StoreUnavailable,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Seconds to wait for the server to accept a connection / answer (waits add their own time).
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
#: A kept-alive connection idle longer than this is replaced before a change is sent over it
#: (uvicorn closes idle connections after 5 s: a change must never race that close).
IDLE_REUSE = 3.0


def is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://"))


class Client:
    """One HTTP(S) connection to a server, kept alive between calls.

    ``url``: ``http(s)://host[:port][/prefix]``; ``token``: the Bearer token.
    """

    def __init__(self, url: str, token: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"ledger URL {url!r} is not http(s)://HOST[:PORT]")
        if not token:
            raise PermissionDenied(
                f"no token for the ledger at {url}: set LEASEHOLD_TOKEN or token_file in "
                "leasehold.toml (a file of mode 0600); an admin creates one with 'leasehold token create'"
            )
        self.url = url
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if self.https else 80)
        except ValueError:
            raise ConfigError(f"ledger URL {url!r} has a bad port") from None
        self.prefix = parts.path.rstrip("/")
        #: ``anonymous``: send no Authorization header (a server started with
        #: --anonymous-loopback); any other value is a Bearer token.
        self.token = token
        self.conn: http.client.HTTPConnection | None = None
        self.used = 0.0
        #: The server's clock at the last answer, and our monotonic clock then.
        self.server_now: float | None = None
        self.at = 0.0
        self.last_op_id: str | None = None
        #: The server's clock when the last answer replayed a recorded change (else None).
        self.replayed_at: float | None = None

    def _connection(self, fresh: bool) -> http.client.HTTPConnection:
        if self.conn is not None and (fresh or time.monotonic() - self.used > IDLE_REUSE):
            self.close()
        if self.conn is None:
            if self.https:
                import ssl

                context = ssl.create_default_context(cafile=os.environ.get("LEASEHOLD_CA_FILE") or None)
                self.conn = http.client.HTTPSConnection(self.host, self.port, timeout=CONNECT_TIMEOUT,
                                                        context=context)
            else:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=CONNECT_TIMEOUT)
        return self.conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def now(self) -> float:
        """The server's clock (UTC seconds), from the last answer plus the time since."""
        if self.server_now is None:
            self.call("now")
        assert self.server_now is not None
        return self.server_now + (time.monotonic() - self.at)

    def call(self, op: str, extra_time: float = 0.0, op_id: str | None = None, **args: Any) -> Any:
        """Run operation ``op`` of :data:`leasehold.wire.OPS` with ``args`` (None values are
        left out); returns its ``result``. ``extra_time``: seconds the server may take beyond
        the usual (a wait)."""
        method, path, _role, _params = wire.OPS[op]
        for name in wire.path_params(path):
            path = path.replace("{" + name + "}", quote(str(args.pop(name)), safe=""))
        fields = {k: v for k, v in args.items() if v is not None}
        body = None
        headers = {"Accept": "application/json"}
        if self.token != "anonymous":
            headers["Authorization"] = f"Bearer {self.token}"
        if method == "GET":
            if fields:
                path += "?" + urlencode({k: (",".join(v) if isinstance(v, list) else
                                             ("true" if v is True else "false" if v is False else v))
                                         for k, v in fields.items()})
        else:
            body = json.dumps(fields).encode()
            headers["Content-Type"] = "application/json"
        read = op in wire.READS
        fresh = False
        if not read:
            if op_id is None:
                from leasehold.model import new_op_id

                op_id = new_op_id()
                fresh = True
            headers["Leasehold-Op-Id"] = op_id
            self.last_op_id = op_id
        self._last_request = (op, method, path, body, dict(headers), extra_time)
        if fresh:
            # Generated here for this call and never sent: the server may skip the lookup
            # that serves retries (a resend, below, goes without this header).
            headers["Leasehold-Op-Fresh"] = "1"
        return self._send(op, method, path, body, headers, extra_time, read, op_id)

    def _retry(self, op_id: str | None) -> Any:
        op, method, path, body, headers, extra_time = self._last_request
        return self._send(op, method, path, body, headers, extra_time, True, op_id)

    def _send(self, op: str, method: str, path: str, body: bytes | None, headers: dict[str, str],
              extra_time: float, retry_safe: bool, op_id: str | None) -> Any:
        read = retry_safe
        for attempt in (0, 1):
            conn = self._connection(fresh=attempt > 0)
            sent = False
            try:
                if conn.sock is None:
                    conn.connect()
                conn.sock.settimeout(READ_TIMEOUT + extra_time)
                conn.request(method, self.prefix + path, body=body, headers=headers)
                sent = True  # the whole request is out: the server may act on it from here
                response = conn.getresponse()
                raw = response.read()
                status = response.status
                break
            except (OSError, http.client.HTTPException) as exc:
                early = self._early_answer(conn) if not sent and body else None
                if early is not None:  # refused before the body was all out (413)
                    status, raw = early
                    self.close()
                    break
                self.close()
                if attempt == 0 and (not sent or read):
                    continue  # nothing applied (or a read): once more on a fresh connection
                if not sent or read:
                    raise StoreUnavailable(f"cannot reach the leasehold server at {self.url}: "
                                           f"{_reason(exc)}; retry later") from exc
                return self._resolve(op, op_id, exc)
        self.used = time.monotonic()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = None
        if status == 200 and isinstance(data, dict) and "result" in data:
            if isinstance(data.get("now"), (int, float)):
                self.server_now, self.at = float(data["now"]), time.monotonic()
            replayed = data.get("replayed_at")
            self.replayed_at = float(replayed) if isinstance(replayed, (int, float)) else None
            return data["result"]
        if not read and status not in _REFUSED_BEFORE and not (
                isinstance(data, dict) and isinstance(data.get("error"), dict)):
            # Not the server's answer: a proxy's own error page (502 or 504 when the upstream
            # connection broke or timed out). The change may have reached the server: a lost
            # answer, resolved by its operation id, never "nothing applied".
            return self._resolve(op, op_id, OSError(f"HTTP {status} from a proxy, not the server's answer"))
        raise wire.error_in(status, data)

    @staticmethod
    def _early_answer(conn: http.client.HTTPConnection) -> tuple[int, bytes] | None:
        """The answer a server sent before it stopped reading the request (a body over its
        limit: 413), if it can still be read; else None."""
        if conn.sock is None:
            return None
        try:
            response = http.client.HTTPResponse(conn.sock, method="POST")
            response.begin()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            return None

    def _resolve(self, op: str, op_id: str | None, exc: BaseException) -> Any:
        """The answer to change ``op_id`` was lost: send it again with the same operation id.
        The ledger replays the recorded outcome if it applied, or applies it now if not
        (operation ids: exactly once). When the server cannot be reached for that either:
        :class:`OutcomeUnknown` with the id (exit 76)."""
        if op not in wire.OP_ID_OPS:
            raise OutcomeUnknown(
                f"the answer to {op} was lost ({_reason(exc)}): it may or may not have applied; "
                "look at the ledger before retrying", op_id)
        for _attempt in range(3):
            time.sleep(0.05)
            try:
                return self._retry(op_id)
            except StoreUnavailable:
                continue
        raise OutcomeUnknown(
            f"the answer to {op} was lost ({_reason(exc)}) and the server could not be reached "
            f"again: operation {op_id} may or may not have applied; run 'leasehold op {op_id}' or "
            f"retry with --op-id {op_id}", op_id)

#: Statuses a proxy answers before passing a request on (authentication, size limits): a
#: change refused with one of them did not reach the server.
_REFUSED_BEFORE = frozenset({401, 403, 407, 413, 414, 431})


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__
