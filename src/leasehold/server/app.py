"""The ASGI application of ``leasehold serve`` (Starlette): the JSON API under ``/v1``, the event
stream, health, readiness and metrics.

Routes are built from :data:`leasehold.wire.OPS` (so the routes, ``/openapi.json`` and the remote
client agree by construction); each is a thin translation of HTTP to one call of the domain
(:mod:`leasehold.server.api`). Ledger calls run in worker threads, each with its own connection.

``/mcp`` is the MCP server (Streamable HTTP, :mod:`leasehold.server.mcp_tools`).

Identity: every route but ``/healthz``, ``/readyz``, ``/metrics`` and ``/openapi.json`` needs
``Authorization: Bearer TOKEN``. The token's actor is the caller: a ``holder`` / ``by`` naming
another actor is 403 and audited (an ``auth_refused`` event), as is a role too weak for the
route. No token or a bad one is 401, audited too.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from leasehold import wire
from leasehold.errors import InvalidInput, LeaseholdError, PermissionDenied
from leasehold.server import api
from leasehold.server.metrics import Metrics
from leasehold.server.waits import CHANNEL, Changes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from typing import Any

    from leasehold.ledger import Ledger

_PY_TYPES = {"string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
             "array": (list,), "object": (dict,)}


class Unauthenticated(PermissionDenied):
    """No token, or a token that is not valid."""


class RequestTooLarge(InvalidInput):
    """A request body over the server's limit (HTTP 413, exit 2)."""


#: The largest request body accepted by default (bytes): ``leasehold serve --max-body``.
DEFAULT_MAX_BODY = 1024 * 1024


def _too_large(limit: int) -> str:
    return f"the request body is larger than the server's limit of {limit} bytes (leasehold serve --max-body)"


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413 and the JSON error
    shape, without holding the body: a declared ``Content-Length`` over the limit is refused
    before a byte of the body is read; a chunked (or understated) body is counted as it
    arrives and refused when the count passes the limit (:class:`RequestTooLarge`, raised
    from ``receive`` into the route, which answers 413; a route that does not answer it
    itself, such as /mcp or a dashboard form, gets the same 413 from here)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0  # the HTTP server itself refuses a malformed length
                if declared > self.limit:
                    await _send_json(send, 413, wire.error_out(RequestTooLarge(_too_large(self.limit)))[1])
                    return
        limit = self.limit
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise RequestTooLarge(_too_large(limit))
            return message  # type: ignore[no-any-return]

        started = False

        async def watched(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except RequestTooLarge as exc:
            if started:
                raise
            await _send_json(send, 413, wire.error_out(exc)[1])


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": raw})


#: Seconds a verified token is trusted without asking the ledger again (per server process):
#: a token revoked through another process, or directly in the database, is refused within
#: this time; one revoked through this process at once. Expiry is checked on every request.
TOKEN_CACHE_TTL = 2.0
#: The shortest time between two NOTIFYs of one server process (seconds).
NOTIFY_INTERVAL = 0.02


class Service:
    """What every request shares: the ledger URL, a ledger per worker thread, the change
    notifier, metrics, and whether anonymous (loopback-only) access was asked for."""

    def __init__(self, db: str, anonymous: bool = False) -> None:
        self.db = db
        self.anonymous = anonymous
        from leasehold.server.ledgers import ThreadLedgers

        self.ledgers = ThreadLedgers(self._open_ledger)
        self.changes = Changes()
        self.metrics = Metrics(self)
        self.changes.on_waiters = self.metrics.waiters.set
        self.stop = threading.Event()
        #: token hash -> (verified at, monotonic seconds; principal; expires_at UTC or None)
        self.verified: dict[str, tuple[float, api.Principal, float | None]] = {}
        #: How many revocations this process has made (a verification that overlapped one is
        #: not cached: it may have read the token before the revocation).
        self.forgotten = 0
        #: Set after a change: the notifier thread sends one NOTIFY for however many changes
        #: happened since its last one (PostgreSQL; other server processes wake on it).
        self.pending_notify = threading.Event()
        self.notifier: threading.Thread | None = None
        self.ledger()  # open (and migrate) once, up front: a bad URL fails the start

    def ledger(self) -> Ledger:
        """This worker thread's ledger (those of ended threads are closed)."""
        return self.ledgers.get()

    def _open_ledger(self) -> Ledger:
        from leasehold.config import load_settings
        from leasehold.ledger import Ledger

        return Ledger.from_settings(load_settings(self.db))

    def changed(self) -> None:
        """After a change: wake local waiters at once, and other server processes over
        PostgreSQL (through the notifier thread: one NOTIFY covers every change made while
        the previous one was sent, instead of one more round trip per request)."""
        self.changes.bump()
        if self.notifier is not None:
            self.pending_notify.set()

    def _notify_loop(self) -> None:
        """Send a NOTIFY after changes, at most one per :data:`NOTIFY_INTERVAL` seconds (the
        changes made meanwhile share the next one): a busy process sends tens of NOTIFYs a
        second, not one per change, and a waiter elsewhere is woken that much later at most."""
        while not self.stop.is_set():
            if not self.pending_notify.wait(0.5):
                continue
            self.pending_notify.clear()
            try:
                self.ledger().store.notify(CHANNEL)
            except LeaseholdError:
                pass  # the others re-check within RECHECK seconds anyway
            self.stop.wait(NOTIFY_INTERVAL)

    def start(self) -> None:
        self.metrics._tally()  # counters count from here
        self.listener = self.changes.listen(self.ledger(), self.stop)
        if self.listener is not None:  # a store that can LISTEN can NOTIFY: other processes listen
            self.notifier = threading.Thread(target=self._notify_loop, name="leasehold-notify", daemon=True)
            self.notifier.start()

    def close(self) -> None:
        self.stop.set()
        self.ledgers.close()

    def anonymous_allowed(self, request: Request) -> bool:
        """In anonymous mode, whether ``request`` may act as admin without a token: only when its
        ``Host`` header names a loopback address or ``localhost``. A web page whose name was made
        to resolve to 127.0.0.1 (DNS rebinding) sends its own name as ``Host`` and is refused."""
        if not self.anonymous:
            return False
        from urllib.parse import urlsplit

        try:
            host = urlsplit("//" + request.headers.get("host", "")).hostname or ""
        except ValueError:
            return False
        return host in ("localhost", "::1") or (host.startswith("127.") and host.replace(".", "").isdigit())

    def cached_principal(self, request: Request) -> api.Principal | None:
        """The caller, when it needs no ledger read: anonymous mode, or a token verified less
        than :data:`TOKEN_CACHE_TTL` seconds ago and not expired since. Else None (then
        :meth:`authenticate`, in a worker thread)."""
        header = request.headers.get("authorization", "")
        if not header:
            return api.Principal(None, "admin", None) if self.anonymous_allowed(request) else None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        from leasehold.tokens import hash_token

        found = self.verified.get(hash_token(token.strip()))
        if found is None:
            return None
        at, principal, expires_at = found
        if time.monotonic() - at > TOKEN_CACHE_TTL or (expires_at is not None and time.time() >= expires_at):
            return None
        return principal

    def authenticate(self, request: Request) -> api.Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            if self.anonymous_allowed(request):
                return api.Principal(None, "admin", None)
            if self.anonymous:
                raise Unauthenticated("no token: anonymous access answers requests for a loopback host "
                                      "only (Host: localhost, 127.0.0.1 or [::1])")
            raise Unauthenticated("no token: send 'Authorization: Bearer TOKEN'")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("malformed Authorization header: use 'Bearer TOKEN'")
        from leasehold.tokens import hash_token

        key = hash_token(token.strip())
        forgotten = self.forgotten
        try:
            info = self.ledger().tokens.verify(token.strip())
        except PermissionDenied as exc:
            self.verified.pop(key, None)
            raise Unauthenticated(str(exc)) from None
        principal = api.Principal(info.actor, info.role, info.id)
        if len(self.verified) > 10000:  # many tokens in turn: start over rather than grow
            self.verified.clear()
        if forgotten == self.forgotten:  # no revocation meanwhile: this answer may be stale
            self.verified[key] = (time.monotonic(), principal, info.expires_at)
        return principal

    def forget_token(self, token_id: str) -> None:
        """A token revoked through this process: refused from the next request on (a
        verification that ran meanwhile is not cached)."""
        self.forgotten += 1
        for key, (_at, principal, _expires) in list(self.verified.items()):
            if principal.token_id == token_id:
                self.verified.pop(key, None)

    def audit(self, op: str, status: int, reason: str, principal: api.Principal | None,
              args: dict[str, Any]) -> None:
        """Record a refused request (``auth_refused``): who, what, why. Never the token."""
        details = {"op": op, "status": status, "reason": reason}
        if principal is not None:
            details["token_id"] = principal.token_id
            details["role"] = principal.role
        for key in ("holder", "by"):
            if args.get(key):
                details["claimed_" + key] = str(args[key])
        task_id = args.get("task_id") if isinstance(args.get("task_id"), str) else None
        try:
            self.ledger().store.append_event("auth_refused", task_id,
                                             principal.actor if principal else None,
                                             "api" if principal and principal.actor else None, None,
                                             details)
        except LeaseholdError:
            pass


def _coerce(name: str, kind: str, value: Any, from_query: bool) -> Any:
    if from_query and isinstance(value, str):
        try:
            if kind == "integer":
                return int(value)
            if kind == "number":
                return float(value)
            if kind == "boolean":
                if value.lower() in ("1", "true", "yes"):
                    return True
                if value.lower() in ("0", "false", "no"):
                    return False
                raise ValueError(value)
            if kind == "array":
                return [part for part in value.split(",") if part]
        except ValueError:
            raise InvalidInput(f"parameter {name!r} must be a {kind}, got {value!r}") from None
    ok = isinstance(value, _PY_TYPES[kind]) and not (kind in ("integer", "number") and isinstance(value, bool))
    if not ok:
        raise InvalidInput(f"parameter {name!r} must be a {kind}")
    return value


def _arguments(request: Request, params: dict[str, str], raw: bytes) -> dict[str, Any]:
    """The operation's arguments from the path, and the query string (GET) or the JSON body
    ``raw`` (POST), typed by ``params``. Raises :class:`InvalidInput`."""
    args: dict[str, Any] = dict(request.path_params)
    if request.method == "GET":
        source: dict[str, Any] = dict(request.query_params)
        from_query = True
    else:
        try:
            source = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise InvalidInput("the request body is not JSON") from None
        except RecursionError:
            raise InvalidInput("the request body is JSON nested too deeply") from None
        if b"\\u" in raw:  # an escape may name a lone UTF-16 surrogate, which no text can hold
            try:
                json.dumps(source, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput("the request body has a lone UTF-16 surrogate (\\ud800-\\udfff) "
                                   "in a string") from None
        if not isinstance(source, dict):
            raise InvalidInput("the request body must be a JSON object")
        from_query = False
    unknown = sorted(set(source) - set(params))
    if unknown:
        raise InvalidInput(f"unknown parameter(s): {', '.join(unknown)}")
    for name, spec in params.items():
        kind = spec.rstrip("?")
        if name in args:
            continue
        value = source.get(name)
        if value is None:
            if not spec.endswith("?"):
                raise InvalidInput(f"parameter {name!r} is required")
            continue
        args[name] = _coerce(name, kind, value, from_query)
    return args


def _error(service: Service, exc: BaseException, op: str) -> JSONResponse:
    status, body = wire.error_out(exc)
    if isinstance(exc, Unauthenticated):
        status = 401
    elif isinstance(exc, RequestTooLarge):
        status = 413
    if status < 500 or status == 503:
        service.metrics.refusals.labels(reason=body["error"]["type"]).inc()
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _endpoint(service: Service, op: str) -> Callable[[Request], Any]:
    method, path, role, params = wire.OPS[op]
    handler = api.HANDLERS[op]
    writes = op not in wire.READS

    def checked_call(request: Request, raw: bytes, state: list[Any]) -> Any:
        """In a worker thread: authenticate (unless the token is cached), read the arguments,
        authorize, and run the call — one thread hop per request. Returns ``_WAIT`` instead of
        running a waiting call (that one waits on the event loop). ``state`` receives the
        principal and the arguments (for the audit of a refusal)."""
        if state[0] is None:
            state[0] = service.authenticate(request)
        state[1] = args = _arguments(request, params, raw)
        api.authorize(state[0], op, role, args)
        if args.get("wait") and op in api.WAITING:
            return _WAIT
        op_id = request.headers.get("leasehold-op-id") if writes else None
        fresh = op_id is not None and request.headers.get("leasehold-op-fresh") == "1"
        return _call(service, handler, state[0], args, writes, op_id, fresh)

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        state: list[Any] = [service.cached_principal(request), {}]
        try:
            raw = await request.body() if request.method != "GET" else b""
            outcome = await _thread(checked_call, request, raw, state)
            principal, args = state
            replayed_at = None
            if outcome is _WAIT:
                # Validate cheaply first (a bad id or TTL is 400 at once, not after the wait).
                from leasehold.model import Holder, validate_task_id

                if "task_id" in args:
                    validate_task_id(args["task_id"])
                Holder.parse(args["holder"])
                waiting = api.WAITING[op](service, op_id=request.headers.get("leasehold-op-id"), **args)
                result = await _unless_disconnected(service, request, waiting)
                if result is _GONE:
                    service.metrics.latency.labels(route=op).observe(time.perf_counter() - started)
                    return Response(status_code=499)
                service.changed()
            else:
                result, replayed_at = outcome
            body = {"result": result, "now": time.time()}
            if replayed_at is not None:
                body["replayed_at"] = replayed_at
            response: Response = JSONResponse(body)
        except (PermissionDenied, api.Forbidden) as exc:
            status = 401 if isinstance(exc, Unauthenticated) else 403
            await _thread(service.audit, op, status, str(exc), state[0], state[1])
            response = _error(service, exc, op)
        except LeaseholdError as exc:
            response = _error(service, exc, op)
        except Exception as exc:  # a bug: 500 with no details leaked
            import logging

            logging.getLogger("leasehold.server").exception("internal error in %s", op)
            response = _error(service, exc, op)
        service.metrics.latency.labels(route=op).observe(time.perf_counter() - started)
        return response

    endpoint.__name__ = op
    return endpoint


_GONE = object()
_WAIT = object()


async def _unless_disconnected(service: Service, request: Request, waiting: Any) -> Any:
    """Await the coroutine ``waiting`` (which returns ``(answer, undo)``) unless the client
    disconnects first: then cancel it (its place in the FIFO is freed at once, so a dead
    client neither stalls the waiters behind it nor keeps a lease it cannot receive: a grant
    already in flight is undone when it lands, see :meth:`Changes.wait_turn`) and return
    ``_GONE``. A grant that lands as the client goes is undone here."""
    task = asyncio.ensure_future(waiting)

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        left = watcher.done()
    finally:
        watcher.cancel()
    if task.done():
        answer, undo = task.result()
        if not left:
            return answer
        await _thread(undo)  # granted just as the client went away: nobody will use it
        await _thread(service.changed)
        return _GONE
    task.cancel()
    try:
        await task
    except BaseException:
        pass
    return _GONE


def _call(service: Service, handler: Any, principal: api.Principal, args: dict[str, Any],
          writes: bool, op_id: str | None = None, fresh: bool = False) -> tuple[Any, float | None]:
    """Run ``handler`` on this thread's ledger: ``(result, replayed_at)``, the latter the
    ledger's clock when the change was a replay of the one its operation id recorded (else
    None; the client judges a replayed lease's validity at that instant). ``fresh``: the client
    says ``op_id`` is on its first send (header ``Leasehold-Op-Fresh: 1``), so the retry lookup
    is skipped (:attr:`Ledger.fresh_op_id`)."""
    ledger = service.ledger()
    ledger.fresh_op_id = op_id if fresh else None
    ledger.replayed_at = None
    try:
        result = handler(api.Call(ledger, principal, service, op_id), **args)
        return result, ledger.replayed_at if writes else None
    finally:
        ledger.fresh_op_id = None
        if writes:
            service.changed()


async def _thread(func: Any, *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(func, *args)


# -- the event stream --------------------------------------------------------------------------
#: Seconds an id hole (a transaction that took an id and has not committed yet) holds the stream
#: back before it is taken for a rollback (sequences never hand an id out twice).
HOLE_GRACE = 2.0


def _events_after(service: Service, last: int) -> list[Any]:
    return service.ledger().events(None, None, last)


def _events_endpoint(service: Service) -> Callable[[Request], Any]:
    async def events(request: Request) -> Response:
        args: dict[str, Any] = {}
        principal = None
        try:
            after_text = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
            try:
                after = int(after_text)
            except ValueError:
                raise InvalidInput(f"Last-Event-ID / after must be an event id, got {after_text!r}") from None
            if not 0 <= after < 2**63:
                raise InvalidInput(f"Last-Event-ID / after must be an event id (0 or more), got {after_text!r}")
            ids = [part for part in request.query_params.get("ids", "").split(",") if part]
            kinds = [part for part in request.query_params.get("kinds", "").split(",") if part]
            principal = await _thread(service.authenticate, request)
        except (PermissionDenied, api.Forbidden) as exc:
            await _thread(service.audit, "events", 401, str(exc), principal, args)
            return _error(service, exc, "events")
        except LeaseholdError as exc:
            return _error(service, exc, "events")

        async def stream() -> AsyncIterator[bytes]:
            loop = asyncio.get_running_loop()
            wake = asyncio.Event()
            service.changes.watch(loop, wake)
            last = after
            hole_since: float | None = None
            try:
                yield b": leasehold event stream\n\n"
                while True:
                    wake.clear()
                    found = await _thread(_events_after, service, last)
                    for event in found:
                        if event.id != last + 1:
                            # A gap: an id taken by a transaction not yet committed (PostgreSQL).
                            now = time.monotonic()
                            hole_since = hole_since or now
                            if now - hole_since < HOLE_GRACE:
                                break
                        hole_since = None
                        last = event.id
                        if (ids and event.task_id not in ids) or (kinds and event.kind not in kinds):
                            continue
                        data = json.dumps(wire.event_out(event), separators=(",", ":"))
                        yield f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n".encode()
                    try:
                        await asyncio.wait_for(wake.wait(), 0.2 if hole_since else 1.0)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
            finally:
                service.changes.unwatch(loop, wake)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return events


# -- open routes -------------------------------------------------------------------------------
def _open_routes(service: Service) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        def check() -> dict[str, Any]:
            led = service.ledger()
            pending = led.store.pending_migrations()
            return {"status": "ready" if not pending else "schema behind", "dialect": led.store.dialect,
                    "pending_migrations": pending}

        try:
            found = await _thread(check)
            return JSONResponse(found, status_code=200 if not found["pending_migrations"] else 503)
        except LeaseholdError as exc:
            return JSONResponse({"status": "unavailable", "message": str(exc)}, status_code=503)

    async def metrics(request: Request) -> Response:
        body, content_type = await _thread(service.metrics.render)
        return Response(body, media_type=content_type)

    async def openapi(request: Request) -> Response:
        from leasehold.server.openapi import document

        return JSONResponse(document())

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]), Route("/openapi.json", openapi, methods=["GET"])]


def create_app(db: str, *, anonymous: bool = False, max_body: int = DEFAULT_MAX_BODY) -> Starlette:
    """The application over the ledger at ``db`` (any ledger URL leasehold opens).
    ``anonymous``: requests without a token act as admin (the serve command allows it on
    loopback addresses only). ``max_body``: the largest request body accepted (bytes; more
    is 413). Raises the ledger's errors when it cannot be opened."""
    import contextlib

    service = Service(db, anonymous)
    routes: list[Any] = list(_open_routes(service))
    routes.append(Route("/v1/events", _events_endpoint(service), methods=["GET"]))
    from leasehold.server.dashboard import Dashboard

    routes.extend(Dashboard(service).routes())
    # Task and operation ids may hold '/' (a mission command's steps are ID/KIND-N): their
    # parameter takes the rest of the path, so the routes with a suffix after it (/claim,
    # /status, ...) go first.
    for op, (method, path, _role, _params) in sorted(wire.OPS.items(), key=lambda item: item[1][1].endswith("}")):
        routes.append(Route(path.replace("{task_id}", "{task_id:path}").replace(
            "{operation_id}", "{operation_id:path}"), _endpoint(service, op),
                            methods=[method], name=op))

    # The MCP server at /mcp (leasehold.server.mcp_tools), behind the same bearer tokens; left
    # out (404) when the mcp SDK is not installed.
    try:
        from leasehold.server import mcp_tools
    except ImportError:
        mcp_manager = None
    else:
        mcp_route, mcp_manager = mcp_tools.mount(service)
        routes.insert(0, mcp_route)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.start()
        try:
            if mcp_manager is None:
                yield
            else:
                async with mcp_manager.run():
                    yield
        finally:
            service.close()

    async def no_route(request: Request, exc: Exception) -> Response:
        from starlette.exceptions import HTTPException

        status = exc.status_code if isinstance(exc, HTTPException) else 404
        code, exit_code = ("not_found", 3) if status == 404 else ("invalid_input", 2)
        return JSONResponse({"error": {"code": code, "type": "NotFound" if status == 404 else "InvalidInput",
                                       "exit_code": exit_code,
                                       "message": f"no route {request.method} {request.url.path}"}},
                            status_code=status)

    from starlette.middleware import Middleware

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: no_route, 405: no_route},
                    middleware=[Middleware(BodyLimit, limit=max_body)])
    app.state.service = service
    return app
