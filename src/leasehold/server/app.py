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
        self.ledger()  # open (and migrate) once, up front: a bad URL fails the start

    def ledger(self) -> Ledger:
        """This worker thread's ledger (those of ended threads are closed)."""
        return self.ledgers.get()

    def _open_ledger(self) -> Ledger:
        from leasehold.config import load_settings
        from leasehold.ledger import Ledger

        return Ledger.from_settings(load_settings(self.db))

    def changed(self) -> None:
        """After a change: wake local waiters, and other server processes over PostgreSQL."""
        self.changes.bump()
        led = self.ledger()
        try:
            led.store.notify(CHANNEL)
        except LeaseholdError:
            pass  # the others re-check within RECHECK seconds anyway

    def start(self) -> None:
        self.metrics._tally()  # counters count from here
        self.listener = self.changes.listen(self.ledger(), self.stop)

    def close(self) -> None:
        self.stop.set()
        self.ledgers.close()

    def authenticate(self, request: Request) -> api.Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            if self.anonymous:
                return api.Principal(None, "admin", None)
            raise Unauthenticated("no token: send 'Authorization: Bearer TOKEN'")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("malformed Authorization header: use 'Bearer TOKEN'")
        try:
            info = self.ledger().tokens.verify(token.strip())
        except PermissionDenied as exc:
            raise Unauthenticated(str(exc)) from None
        return api.Principal(info.actor, info.role, info.id)

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


async def _arguments(request: Request, params: dict[str, str]) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.path_params)
    if request.method == "GET":
        source: dict[str, Any] = dict(request.query_params)
        from_query = True
    else:
        raw = await request.body()
        try:
            source = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise InvalidInput("the request body is not JSON") from None
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
    if status < 500 or status == 503:
        service.metrics.refusals.labels(reason=body["error"]["type"]).inc()
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _endpoint(service: Service, op: str) -> Callable[[Request], Any]:
    method, path, role, params = wire.OPS[op]
    handler = api.HANDLERS[op]
    writes = op not in wire.READS

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        principal: api.Principal | None = None
        args: dict[str, Any] = {}
        try:
            principal = await _thread(service.authenticate, request)
            args = await _arguments(request, params)
            api.authorize(principal, op, role, args)
            if args.get("wait") and op in api.WAITING:
                # Validate cheaply first (a bad id or TTL is 400 at once, not after the wait).
                from leasehold.model import Holder, validate_task_id

                if "task_id" in args:
                    validate_task_id(args["task_id"])
                Holder.parse(args["holder"])
                waiting = api.WAITING[op](service, op_id=request.headers.get("leasehold-op-id"), **args)
                result = await _unless_disconnected(request, waiting)
                if result is _GONE:
                    service.metrics.latency.labels(route=op).observe(time.perf_counter() - started)
                    return Response(status_code=499)
                await _thread(service.changed)
            else:
                op_id = request.headers.get("leasehold-op-id") if writes else None
                result = await _thread(_call, service, handler, principal, args, writes, op_id)
            response: Response = JSONResponse({"result": result, "now": time.time()})
        except (PermissionDenied, api.Forbidden) as exc:
            status = 401 if isinstance(exc, Unauthenticated) else 403
            await _thread(service.audit, op, status, str(exc), principal, args)
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


async def _unless_disconnected(request: Request, waiting: Any) -> Any:
    """Await the coroutine ``waiting`` unless the client disconnects first: then cancel it (its
    place in the FIFO is freed at once, so a dead client is never granted a lease it cannot
    receive, nor stalls the waiters behind it) and return ``_GONE``."""
    task = asyncio.ensure_future(waiting)

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except BaseException:
        pass
    return _GONE


def _call(service: Service, handler: Any, principal: api.Principal, args: dict[str, Any],
          writes: bool, op_id: str | None = None) -> Any:
    ledger = service.ledger()
    try:
        return handler(api.Call(ledger, principal, service, op_id), **args)
    finally:
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


def create_app(db: str, *, anonymous: bool = False) -> Starlette:
    """The application over the ledger at ``db`` (any ledger URL leasehold opens).
    ``anonymous``: requests without a token act as admin (the serve command allows it on
    loopback addresses only). Raises the ledger's errors when it cannot be opened."""
    import contextlib

    service = Service(db, anonymous)
    routes: list[Any] = list(_open_routes(service))
    routes.append(Route("/v1/events", _events_endpoint(service), methods=["GET"]))
    from leasehold.server.dashboard import Dashboard

    routes.extend(Dashboard(service).routes())
    # Task ids may hold '/': their parameter takes the rest of the path, so the routes with a
    # suffix after it (/claim, /status, ...) go first.
    for op, (method, path, _role, _params) in sorted(wire.OPS.items(), key=lambda item: item[1][1].endswith("}")):
        routes.append(Route(path.replace("{task_id}", "{task_id:path}"), _endpoint(service, op),
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

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: no_route, 405: no_route})
    app.state.service = service
    return app
