"""The dashboard of ``leasehold serve``: server-rendered pages (Jinja2) at ``/``, a small script
and stylesheet of our own under ``/static``, and a Server-Sent Events stream that tells open
pages when the ledger changed.

Pages: **Now** (``/``: leases grouped by holder, most recently active first, with live
countdowns; file reservations; the ready queue; blocked tasks), **Task** (``/tasks/ID``: the lease
timeline drawn from the event log, and the events), **Tickets** (``/tickets``: namespaces, the
feed's live reducer, the drift check) and **Admin** (``/admin``, admin tokens only:
force-release a lease or a file reservation with a reason, revoke tokens).

Sign-in: ``POST /login`` with a token (``leasehold token create``) sets it in an ``HttpOnly;
SameSite=Strict`` cookie (``Secure`` over TLS); every page request verifies it like a bearer
token (a revoked or expired token signs the browser out). Forms that change something carry a
CSRF token (an HMAC of the session's token, so any server process can check it) and must come
with an ``Origin`` (or ``Referer``) of this server; a role below the form's is refused (403)
and audited as ``auth_refused``, like the API.

Routes stay thin: every read and write is one call of the domain (:class:`~leasehold.ledger.Ledger`,
:mod:`leasehold.paths`, :mod:`leasehold.tokens`, the feed and tickets objects).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from leasehold.errors import InvalidInput, LeaseholdError, NotFound, PermissionDenied
from leasehold.model import format_duration, format_ts
from leasehold.server import api

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from typing import Any

    from jinja2 import Environment

    from leasehold.server.app import Service

HERE = os.path.dirname(os.path.abspath(__file__))
COOKIE = "leasehold_session"
#: Leases on one page of the Now page.
PAGE_SIZE = 100
#: Tasks shown from the ready queue, and at most this many blocked tasks.
READY_TOP = 10
BLOCKED_TOP = 25
#: File reservations listed on the Now page at most (``leasehold paths`` lists them all).
RESERVATIONS_TOP = 100
#: Events of one task drawn on its page (the newest).
TASK_EVENTS = 2000
#: How often the event stream looks at the event log's head (seconds): writes made directly on
#: the ledger (not through this server) notify no one.
HEAD_POLL = 0.1
#: Event streams (``/ui/events``) one server process keeps open at most; one more is refused
#: with 503. A browser holds one for all its tabs of the dashboard.
MAX_STREAMS = 256
#: The largest form body accepted (bytes).
FORM_MAX = 64 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    """A dashboard request that is refused: ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Session:
    """Who looks at the dashboard: the ``principal`` and the CSRF token of its session."""

    __slots__ = ("principal", "csrf")

    def __init__(self, principal: api.Principal, csrf: str) -> None:
        self.principal = principal
        self.csrf = csrf

    @property
    def admin(self) -> bool:
        return self.principal.role == "admin"


#: The CSRF key of anonymous sessions: the one ``leasehold serve`` hands all its worker
#: processes (``LEASEHOLD_SERVE_SECRET``), else this process's own.
def _anonymous_key() -> bytes:
    try:
        return bytes.fromhex(os.environ.get("LEASEHOLD_SERVE_SECRET", "")) or os.urandom(32)
    except ValueError:
        return os.urandom(32)


_ANONYMOUS_KEY = _anonymous_key()


def csrf_token(token: str | None) -> str:
    """The CSRF token of the session signed in with ``token``: an HMAC-SHA256 keyed by the
    token itself (only its holder's browser knows it; any server process can check it). In
    anonymous mode (no token) the key is the server's random secret (:data:`_ANONYMOUS_KEY`)."""
    key = token.encode("utf-8", "surrogatepass") if token else _ANONYMOUS_KEY
    return hmac.new(key, b"leasehold dashboard csrf v1", hashlib.sha256).hexdigest()


def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(os.path.join(HERE, "templates")),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["ts"] = format_ts
    env.filters["clock"] = lambda ts: "-" if ts is None else time.strftime("%H:%M:%S", time.gmtime(ts))
    env.filters["duration"] = lambda s: "-" if s is None else format_duration(round(float(s), 3))
    env.filters["quote"] = lambda s: quote(str(s), safe="/")
    env.filters["task_url"] = task_url
    # as JSON text, escaped by the template like any text (tojson's \u0027 for ' is for scripts)
    env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)
    env.filters["left"] = _left
    return env


def task_url(task_id: object) -> str:
    """The Task page's address of ``task_id``: one escaped path segment (a ``/`` in an id is
    escaped too, so that ``a/../../admin`` cannot lead to another page); ``.`` and ``..``, which
    browsers resolve away even escaped, go by ``/task?id=``."""
    text = str(task_id)
    if text in (".", ".."):
        return "/task?id=" + quote(text, safe="")
    return "/tasks/" + quote(text, safe="")


def _left(seconds: float) -> str:
    """``seconds`` until expiry for people: ``4m 05s left`` / ``expired 12s ago``."""
    whole = int(abs(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
    return f"{text} left" if seconds > 0 else f"expired {text} ago"


class Dashboard:
    """The dashboard's routes over a :class:`~leasehold.server.app.Service`."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.env = _environment()
        self.follower = _HeadFollower(service)

    # -- plumbing --------------------------------------------------------------------------
    def routes(self) -> list[Route | Mount]:
        from starlette.staticfiles import StaticFiles

        return [
            Route("/", self.now_page, methods=["GET"], name="dash_now"),
            Route("/login", self.login_page, methods=["GET"], name="dash_login"),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/tasks/{task_id:path}", self.task_page, methods=["GET"], name="dash_task"),
            Route("/task", self.task_lookup, methods=["GET"]),
            Route("/tickets", self.tickets_page, methods=["GET"], name="dash_tickets"),
            Route("/admin", self.admin_page, methods=["GET"], name="dash_admin"),
            Route("/admin/force-release", self.force_release, methods=["POST"]),
            Route("/admin/force-release-paths", self.force_release_paths, methods=["POST"]),
            Route("/admin/revoke", self.revoke, methods=["POST"]),
            Route("/ui/events", self.events, methods=["GET"]),
            Mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static"),
        ]

    def _render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = self.env.get_template(name).render(**context)
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    async def _session(self, request: Request) -> Session | None:
        """The signed-in session, or None (no cookie, or a token no longer valid)."""
        token = request.cookies.get(COOKIE)
        if not token:
            if self.service.anonymous_allowed(request):
                return Session(api.Principal(None, "admin", None), csrf_token(None))
            return None

        def verify() -> api.Principal | None:
            try:
                info = self.service.ledger().tokens.verify(token)
            except PermissionDenied:
                return None
            except LeaseholdError as exc:  # the ledger cannot be read: not the token's fault
                raise Refused(503, f"the ledger is unavailable: {exc}") from None
            return api.Principal(info.actor, info.role, info.id)

        principal = await _thread(verify)
        return None if principal is None else Session(principal, csrf_token(token))

    async def _page(self, request: Request, build: Any, *args: Any, admin: bool = False) -> Response:
        """Run ``build(session, *args) -> (template, context)`` in a worker thread for a signed-in
        session and render it; no session: to the sign-in page."""
        try:
            session = await self._session(request)
        except Refused as exc:
            return self._render("error.html", exc.status, session=None, title="Ledger unavailable",
                                message=exc.message)
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        if admin and not session.admin:
            await _thread(self._audit, "dashboard_admin", 403, "the admin page needs an admin token",
                          session.principal, {})
            return self._render("error.html", 403, session=session, title="Not allowed",
                                message="The admin page needs an admin token; this session's token is "
                                        f"a {session.principal.role} token.")
        try:
            def run() -> str:
                template, context = build(session, *args)
                return self.env.get_template(template).render(session=session, **context)

            body = await _thread(run)
        except NotFound as exc:
            return self._render("error.html", 404, session=session, title="Not found", message=str(exc))
        except InvalidInput as exc:
            return self._render("error.html", 400, session=session, title="Invalid input", message=str(exc))
        except LeaseholdError as exc:
            return self._render("error.html", 503, session=session, title="Ledger unavailable",
                                message=str(exc))
        return HTMLResponse(body, headers=SECURITY_HEADERS)

    def _audit(self, op: str, status: int, reason: str, principal: api.Principal | None,
               args: dict[str, Any]) -> None:
        self.service.audit(op, status, reason, principal, args)

    def _same_origin(self, request: Request) -> bool:
        """True when the request's ``Origin`` (else ``Referer``) names this server's host and
        port (the ``Host`` header; the scheme is not compared, so that a TLS-terminating proxy
        in front that passes ``Host`` through works). A request with neither is refused:
        browsers send ``Origin`` with every form POST."""
        from urllib.parse import urlsplit

        host = request.headers.get("host", "").lower()
        source = request.headers.get("origin") or request.headers.get("referer") or ""
        try:
            parts = urlsplit(source)
        except ValueError:
            return False
        return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == host

    async def _form(self, request: Request) -> dict[str, str]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            raise Refused(400, "send the form as application/x-www-form-urlencoded")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > FORM_MAX:
                raise Refused(413, "the form is too large")
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20))
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "the form is not valid") from None

    async def _post(self, request: Request, op: str, role: str) -> tuple[Session, dict[str, str]]:
        """A state-changing form: same origin, signed in, the session's CSRF token, ``role``."""
        session = await self._session(request)
        if not self._same_origin(request):
            await _thread(self._audit, op, 403, "cross-origin form post refused",
                          session.principal if session else None, {})
            raise Refused(403, "refused: the form did not come from this server (Origin/Referer)")
        if session is None:
            raise Refused(401, "sign in first")
        form = await self._form(request)
        if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
            await _thread(self._audit, op, 403, "missing or wrong CSRF token", session.principal, {})
            raise Refused(403, "refused: the form's CSRF token is missing or wrong; reload the page")
        if api.RANK[session.principal.role] < api.RANK[role]:
            reason = f"a {session.principal.role} token may not {op.replace('_', ' ')} (needs {role})"
            await _thread(self._audit, op, 403, reason, session.principal, form)
            raise Refused(403, "refused: " + reason)
        return session, form

    def _refused(self, exc: Refused, session: Session | None = None) -> HTMLResponse:
        title = "Ledger unavailable" if exc.status == 503 else "Refused"
        return self._render("error.html", exc.status, session=session, title=title, message=exc.message)

    def _by(self, session: Session) -> str | None:
        actor = session.principal.actor
        return f"{actor}:dashboard" if actor else None

    # -- sign-in ---------------------------------------------------------------------------
    async def login_page(self, request: Request) -> Response:
        return self._render("login.html", session=None, next=_safe_next(request.query_params.get("next")),
                            error=None)

    async def login(self, request: Request) -> Response:
        try:
            if not self._same_origin(request):
                raise Refused(403, "refused: the form did not come from this server (Origin/Referer)")
            form = await self._form(request)
        except Refused as exc:
            return self._refused(exc)
        token = form.get("token", "").strip()
        target = _safe_next(form.get("next"))

        def verify() -> str | None:
            try:
                self.service.ledger().tokens.verify(token)
                return None
            except PermissionDenied as exc:
                self._audit("dashboard_login", 401, str(exc), None, {})
                return "That token is not valid (unknown, revoked or expired)."
            except LeaseholdError as exc:
                raise Refused(503, f"the ledger is unavailable: {exc}") from None

        try:
            error = "Paste a token." if not token else await _thread(verify)
        except Refused as exc:
            return self._refused(exc)
        if error:
            return self._render("login.html", 401, session=None, next=target, error=error)
        response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    async def logout(self, request: Request) -> Response:
        try:
            await self._post(request, "dashboard_logout", "reader")
        except Refused as exc:
            # a token revoked or expired since the page was drawn: forget it all the same
            if not (exc.status == 401 and request.cookies.get(COOKIE)):
                return self._refused(exc)
        response = RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # -- Now ---------------------------------------------------------------------------------
    async def now_page(self, request: Request) -> Response:
        try:
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            page = 1
        return await self._page(request, self._now, page)

    def _now(self, session: Session, page: int) -> tuple[str, dict[str, Any]]:
        from leasehold import paths

        ledger = self.service.ledger()
        head = _head(ledger)
        tasks, counts = ledger.lease_board(PAGE_SIZE, (page - 1) * PAGE_SIZE)
        now = ledger.now()
        groups: list[dict[str, Any]] = []
        for task in tasks:
            if not groups or groups[-1]["holder"] != task.lease_holder:
                groups.append({"holder": task.lease_holder, "leases": [], "active": task.updated_at})
            groups[-1]["leases"].append(task)
            groups[-1]["active"] = max(groups[-1]["active"] or 0, task.updated_at or 0)
        reservations = paths.active(ledger)
        ready = ledger.ready(READY_TOP)
        blocked = ledger.blocked()
        pages = max(1, -(-counts["leases"] // PAGE_SIZE))
        return "now.html", {
            "title": "Now", "nav": "now", "live": True, "now": now, "head": head, "groups": groups,
            "counts": counts, "page": page, "pages": pages, "page_size": PAGE_SIZE,
            "reservations": reservations[:RESERVATIONS_TOP], "reservations_total": len(reservations), "ready": ready, "blocked": blocked[:BLOCKED_TOP],
            "blocked_total": len(blocked), "ready_top": READY_TOP,
        }

    # -- Task --------------------------------------------------------------------------------
    async def task_lookup(self, request: Request) -> Response:
        task_id = request.query_params.get("id", "").strip()
        if task_id in (".", ".."):  # no /tasks/ address survives the browser: the page itself
            return await self._page(request, self._task, task_id)
        return RedirectResponse(task_url(task_id) if task_id else "/", status_code=303)

    async def task_page(self, request: Request) -> Response:
        return await self._page(request, self._task, request.path_params["task_id"])

    def _task(self, session: Session, task_id: str) -> tuple[str, dict[str, Any]]:
        from leasehold.server.dashboard import timeline

        ledger = self.service.ledger()
        head = _head(ledger)
        task = ledger.show(task_id)
        events = ledger.events(task_id, TASK_EVENTS)
        now = ledger.now()
        found = timeline.bars(events, now)
        scale = timeline.scale_for(found, events, now)
        takeovers = [(bar, found[i - 1]) for i, bar in enumerate(found) if i and bar.takeover_of]
        return "task.html", {
            "title": f"Task {task.id}", "nav": "task", "live": True, "task": task, "events": events, "bars": found,
            "scale": scale, "now": now, "head": head, "takeovers": takeovers,
            "blockers": ledger.blockers(task_id), "truncated": len(events) >= TASK_EVENTS,
            "limit": TASK_EVENTS,
        }

    # -- Tickets -----------------------------------------------------------------------------
    async def tickets_page(self, request: Request) -> Response:
        return await self._page(request, self._tickets)

    def _tickets(self, session: Session) -> tuple[str, dict[str, Any]]:
        ledger = self.service.ledger()
        head = _head(ledger)
        queue = ledger.feed.queue(201)
        return "tickets.html", {
            "title": "Tickets", "nav": "tickets", "live": True, "head": head, "now": ledger.now(),
            "namespaces": ledger.tickets.namespaces(), "queue": queue[:200], "queue_more": len(queue) > 200,
            "drift": ledger.feed.drift(),
        }

    # -- Admin -------------------------------------------------------------------------------
    async def admin_page(self, request: Request) -> Response:
        return await self._page(request, self._admin, request.query_params.get("task", ""),
                                request.query_params.get("pattern", ""), request.query_params.get("done", ""),
                                request.query_params.get("sig", ""), admin=True)

    def _admin(self, session: Session, task_id: str, pattern: str, done: str,
               sig: str) -> tuple[str, dict[str, Any]]:
        from leasehold import paths

        if not hmac.compare_digest(sig, _done_sig(session, done)):
            done = ""  # not a message this server wrote for this session: a link could say anything

        ledger = self.service.ledger()
        now = ledger.now()
        return "admin.html", {
            "title": "Admin", "nav": "admin", "now": now, "head": _head(ledger),
            "tokens": ledger.tokens.list(), "reservations": paths.active(ledger),
            "task_id": task_id[:200], "pattern": pattern[:500], "done": done[:300],
        }

    async def _admin_post(self, request: Request, op: str, action: Any) -> Response:
        session = None
        try:
            session, form = await self._post(request, op, "admin")

            def run() -> str:
                try:
                    return str(action(session, form))
                finally:
                    self.service.changed()

            message = await _thread(run)
        except Refused as exc:
            return self._refused(exc, session)
        except (InvalidInput, NotFound) as exc:
            return self._render("error.html", 404 if isinstance(exc, NotFound) else 400, session=session,
                                title="Not done", message=str(exc))
        except LeaseholdError as exc:
            return self._render("error.html", 409, session=session, title="Not done", message=str(exc))
        done = message[:300]
        return RedirectResponse(f"/admin?done={quote(done, safe='')}&sig={_done_sig(session, done)}", status_code=303,
                                headers=SECURITY_HEADERS)

    async def force_release(self, request: Request) -> Response:
        def action(session: Session, form: dict[str, str]) -> str:
            task_id = form.get("task_id", "").strip()
            reason = form.get("reason", "").strip()
            if not reason:
                raise InvalidInput("a force-release needs a reason: say why the lease is cleared")
            result = self.service.ledger().force_release(task_id, reason, self._by(session))
            holder = result.task.lease_holder if result.task else None
            return result.message if result.released else f"{task_id}: {result.message}" + (
                f" (held by {holder})" if holder else "")

        return await self._admin_post(request, "force_release", action)

    async def force_release_paths(self, request: Request) -> Response:
        def action(session: Session, form: dict[str, str]) -> str:
            from leasehold import paths

            pattern = form.get("pattern", "").strip()
            reason = form.get("reason", "").strip()
            if not reason:
                raise InvalidInput("a force-release needs a reason: say why the reservation is cleared")
            cleared = paths.force_release(self.service.ledger(), [pattern], reason, self._by(session))
            holders = [r.holder for _, found in cleared for r in found]
            if not holders:
                return f"nobody had reserved {pattern}; nothing to release"
            return f"released {pattern} (held by {', '.join(holders)})"

        return await self._admin_post(request, "force_release_paths", action)

    async def revoke(self, request: Request) -> Response:
        def action(session: Session, form: dict[str, str]) -> str:
            from leasehold.model import Holder

            by = Holder(session.principal.actor, "dashboard") if session.principal.actor else None
            info, revoked = self.service.ledger().tokens.revoke(form.get("token_id", "").strip(), by=by)
            self.service.forget_token(info.id)  # refused from the next request on
            return f"revoked {info.id} ({info.actor}, {info.role})" if revoked else f"{info.id} was already revoked"

        return await self._admin_post(request, "token_revoke", action)

    # -- live updates --------------------------------------------------------------------------
    async def events(self, request: Request) -> Response:
        """``text/event-stream``: a ``change`` event (data: ``{"head": id}``) whenever the event
        log's head moves — a change through this server, another server process (PostgreSQL
        NOTIFY) or directly on the ledger (the head is looked at every :data:`HEAD_POLL` s, once
        for all the streams of this process) — and once more a second later (a commit that took
        a lower id may land after a higher one on PostgreSQL). The page then fetches its
        fragment again: no polling in the browser. At most :data:`MAX_STREAMS` streams are open
        at once in one server process: beyond, 503."""
        try:
            session = await self._session(request)
        except Refused as exc:
            return Response(exc.message, status_code=exc.status, headers=SECURITY_HEADERS)
        if session is None:
            return Response("sign in first", status_code=401, headers=SECURITY_HEADERS)
        follower = self.follower
        if len(follower.streams) >= MAX_STREAMS:
            return Response(f"too many open event streams (at most {MAX_STREAMS}); reload the page later",
                            status_code=503, headers=dict(SECURITY_HEADERS, **{"Retry-After": "30"}))
        token = request.cookies.get(COOKIE)

        async def stream() -> AsyncIterator[bytes]:
            wake = asyncio.Event()
            follower.subscribe(wake)
            try:
                try:
                    last = await _thread(lambda: _head(self.service.ledger()))
                except LeaseholdError:
                    last = follower.head or 0
                seen = follower.reads
                yield f"retry: 1000\nevent: hello\ndata: {json.dumps({'head': last})}\n\n".encode()
                settle_at: float | None = None
                checked = quiet = time.monotonic()
                while True:
                    wake.clear()
                    head = follower.head if follower.reads > seen and follower.head is not None else last
                    now = time.monotonic()
                    if head != last or (settle_at is not None and now >= settle_at):
                        settle_at = now + 1.0 if head != last else None
                        last = head
                        quiet = now
                        yield f"event: change\ndata: {json.dumps({'head': head})}\n\n".encode()
                    elif now - quiet > 15:
                        quiet = now
                        yield b": keep-alive\n\n"
                    if token and now - checked > 30:  # a revoked token ends the stream
                        checked = now
                        try:
                            signed_out = await self._session(request) is None
                        except Refused:
                            signed_out = False  # the ledger is unavailable: ask again later
                        if signed_out:
                            yield b"event: signed-out\ndata: {}\n\n"
                            return
                    due = [quiet + 15, checked + 30] + ([settle_at] if settle_at is not None else [])
                    try:
                        await asyncio.wait_for(wake.wait(), max(0.01, min(due) - time.monotonic()))
                    except TimeoutError:
                        pass
            finally:
                follower.unsubscribe(wake)

        headers = dict(SECURITY_HEADERS, **{"X-Accel-Buffering": "no"})
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


class _HeadFollower:
    """Follows the event log's head for all the open event streams of one server process: one
    read every :data:`HEAD_POLL` seconds while a stream is open (not one per stream), and one at
    once after a change made through this server. ``head`` is the last head read (None before
    the first read), ``reads`` counts the reads; every stream's event is set when the head
    moves. A ledger that cannot be read keeps the last head and is tried again."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.head: int | None = None
        self.reads = 0
        self.streams: set[asyncio.Event] = set()
        self.task: asyncio.Task[None] | None = None

    def subscribe(self, event: asyncio.Event) -> None:
        self.streams.add(event)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def unsubscribe(self, event: asyncio.Event) -> None:
        self.streams.discard(event)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        self.service.changes.watch(loop, wake)
        try:
            while self.streams:
                wake.clear()
                try:
                    head: int | None = await _thread(lambda: _head(self.service.ledger()))
                except LeaseholdError:
                    head = self.head
                self.reads += 1
                if head != self.head:
                    self.head = head
                    for event in list(self.streams):
                        event.set()
                try:
                    await asyncio.wait_for(wake.wait(), HEAD_POLL)
                except TimeoutError:
                    pass
        finally:
            self.service.changes.unwatch(loop, wake)


def _done_sig(session: Session | None, message: str) -> str:
    """The signature of an Admin page outcome ``message`` for ``session`` (keyed by its CSRF
    token), so that only the server's own outcomes are shown as such."""
    key = (session.csrf if session else "").encode()
    return hmac.new(key, b"done\0" + message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _head(ledger: Any) -> int:
    newest = ledger.events(None, 1)
    return int(newest[-1].id) if newest else 0


def _safe_next(target: str | None) -> str:
    """A local path to go to after sign-in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _thread(func: Any, *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(func, *args)
