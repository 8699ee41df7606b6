"""The client side of the event stream (``GET /v1/events``, Server-Sent Events) with
:mod:`http.client`: events in id order, resumed from the last id seen (``Last-Event-ID``) after
a dropped connection, so a reader sees no gap and no duplicate."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlencode

from leasehold.errors import LeaseholdError, StoreUnavailable
from leasehold.wire import error_in, event_in

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from leasehold.model import Event
    from leasehold.store.remote import Client

#: Seconds between reconnection attempts; the stream gives up (StoreUnavailable) after
#: RECONNECT_FOR seconds without a connection.
RETRY = 0.2
RECONNECT_FOR = 30.0


def stream(client: Client, ids: list[str], kinds: list[str], after: int | None,
           timeout: float | None) -> Iterator[Event]:
    """Yield events (ids > ``after``; None: only new ones) until ``timeout`` seconds pass
    (None: forever)."""
    if after is None:
        newest = client.call("events", limit=1)
        after = newest[-1]["id"] if newest else 0
    deadline = None if timeout is None else time.monotonic() + timeout
    last = after
    lost_since: float | None = None
    query = {k: ",".join(v) for k, v in (("ids", ids), ("kinds", kinds)) if v}
    while deadline is None or time.monotonic() < deadline:
        conn = _connect(client)
        try:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)}
            if client.token != "anonymous":
                headers["Authorization"] = f"Bearer {client.token}"
            conn.request("GET", client.prefix + "/v1/events" + ("?" + urlencode(query) if query else ""),
                         headers=headers)
            response = conn.getresponse()
            if response.status != 200:
                raw = response.read()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                raise error_in(response.status, body)
            lost_since = None
            event_id: str | None = None
            data: list[str] = []
            while deadline is None or time.monotonic() < deadline:
                if deadline is not None and conn.sock is not None:
                    conn.sock.settimeout(max(0.05, min(5.0, deadline - time.monotonic())))
                try:
                    line = response.fp.readline()
                except TimeoutError:
                    if deadline is not None and time.monotonic() >= deadline:
                        return
                    raise
                if not line:
                    raise ConnectionResetError("the event stream ended")
                text = line.decode("utf-8").rstrip("\r\n")
                if not text:
                    if data and event_id is not None and int(event_id) > last:
                        last = int(event_id)
                        yield event_in(json.loads("\n".join(data)))
                    event_id, data = None, []
                elif text.startswith("id:"):
                    event_id = text[3:].strip()
                elif text.startswith("data:"):
                    data.append(text[5:].lstrip())
        except LeaseholdError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            now = time.monotonic()
            lost_since = lost_since or now
            if now - lost_since > RECONNECT_FOR:
                raise StoreUnavailable(f"lost the event stream of {client.url}: {exc}; retry later") from exc
            time.sleep(RETRY)
        finally:
            conn.close()


def _connect(client: Client) -> http.client.HTTPConnection:
    from leasehold.store.remote import CONNECT_TIMEOUT

    if client.https:
        import os
        import ssl

        context = ssl.create_default_context(cafile=os.environ.get("LEASEHOLD_CA_FILE") or None)
        return http.client.HTTPSConnection(client.host, client.port, timeout=CONNECT_TIMEOUT, context=context)
    return http.client.HTTPConnection(client.host, client.port, timeout=CONNECT_TIMEOUT)
