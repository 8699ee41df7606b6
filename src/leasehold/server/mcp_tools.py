"""leasehold over the Model Context Protocol: the tools, the resources, and the two ways they
are served (the official ``mcp`` SDK's low-level ``Server``; no JSON-RPC is written here).

- ``leasehold mcp``: over stdio, for a runtime that spawns it (:func:`run_stdio`), against the
  ledger the configuration names (local, or ``LEASEHOLD_DB=https://...`` with a token).
- ``/mcp`` in ``leasehold serve``: Streamable HTTP (stateless, JSON responses), behind the
  service's bearer tokens (:func:`mount`).

Each tool is a thin call into :class:`~leasehold.ledger.Ledger` (or :mod:`leasehold.paths`) with
the CLI's rules and error texts. A result carries ``structuredContent`` (the README's JSON
shapes; a list is wrapped in an object, as MCP requires) and one human line. A refusal or any
other :class:`~leasehold.errors.LeaseholdError` is a tool error (``isError``) whose text is the
CLI's message (``Task 42 held by bob:s2 until ...``) and whose structured content is the CLI's
``{"error": {...}}``. Arguments that do not match a tool's input schema, or an unknown tool, are
a protocol error (``-32602``), never a crash.

Identity: the actor comes from the token (``/mcp``, or a remote ledger) or the configuration
(``LEASEHOLD_ACTOR``, leasehold.toml, git, ``$USER``); the session is the tool's ``session``
argument, else the server's own (stdio: ``--session``, ``LEASEHOLD_SESSION``,
``CLAUDE_CODE_SESSION_ID``, ``CODEX_THREAD_ID``, ``GEMINI_SESSION_ID``, ``CLAUDE_SESSION_ID``,
else one generated per server process; ``/mcp``: the ``Leasehold-Session`` request header).
"""

from __future__ import annotations

import json
import os

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from leasehold import __version__
from leasehold.errors import InvalidInput, LeaseholdError, NoneAvailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from leasehold.ledger import Ledger
    from leasehold.model import Holder

INSTRUCTIONS = (
    "leasehold coordinates concurrent agents: claim a task before working on it, extend the "
    "lease every TTL/3 while you work, then done or release it. A refusal names the holder and "
    "its expiry: pick other work. Every tool acting as a holder takes an optional session "
    "(default: this server's session). TTLs are durations: 90s, 10m, 2h."
)

# -- the tools ---------------------------------------------------------------------------------
_S = {"type": "string"}
_I = {"type": "integer"}
_B = {"type": "boolean"}
_TTL = {"type": ["string", "number"]}
_PATHS = {"type": "array", "items": _S, "minItems": 1}


def _schema(required: tuple[str, ...], **props: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


#: name -> (description, input schema, read-only)
TOOLS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "claim": ("Take the lease on a task (created if unknown); refused while another holder's "
              "lease is valid. Returns the task with holder, expiry and fence.",
              _schema(("task",), task=_S, ttl=_TTL, title=_S, priority=_I, session=_S), False),
    "extend": ("Heartbeat: push your lease's expiry to now + TTL (holder only; default the "
               "lease's own TTL). Call it every TTL/3 while working.",
               _schema(("task",), task=_S, ttl=_TTL, fence=_I, session=_S), False),
    "release": ("Give up your lease; the task goes back to open (keep_status: clear the lease "
                "only).", _schema(("task",), task=_S, keep_status=_B, session=_S), False),
    "done": ("Mark your task done and release it (holder only).",
             _schema(("task",), task=_S, fence=_I, session=_S), False),
    "check": ("Is the task clear for this session to work on? Returns the verdict (CLEAR or "
              "BLOCKED with the holder) and the task with its lease.",
              _schema(("task",), task=_S, session=_S), True),
    "next": ("Claim the highest-priority available task (up to count at once).",
             _schema((), ttl=_TTL, count=_I, session=_S), False),
    "who": ("Active leases grouped by holder, most recently active first.", _schema(()), True),
    "reserve_ticket": ("Reserve the next ticket number(s) in a namespace such as CMB; a number "
                       "is never handed out twice.",
                       _schema(("prefix",), prefix=_S, count=_I, session=_S), False),
    "post_feed": ("Append a post to the feed. reserve=PREFIX files it under a newly reserved "
                  "number ({{ITEM_ID}} in subject/body becomes it); item names an existing one.",
                  _schema(("kind", "subject"), kind={"enum": ["actionable", "claimed", "done",
                                                              "release", "repair", "info"]},
                          subject=_S, body=_S, item=_S, reserve=_S, session=_S), False),
    "reserve_paths": ("Reserve files by gitignore-style patterns (relative to the repository "
                      "root), all or none; refused when another holder's overlapping "
                      "reservation conflicts.",
                      _schema(("paths",), paths=_PATHS, ttl=_TTL, shared=_B, reason=_S,
                              session=_S), False),
    "release_paths": ("Release your reservations of these patterns (exactly as reserved).",
                      _schema(("paths",), paths=_PATHS, session=_S), False),
    "check_paths": ("Which of these repository-relative files are under another session's "
                    "exclusive reservation (the edit gate's verdict)?",
                    _schema(("paths",), paths=_PATHS, session=_S), True),
}


def tool_list() -> list[types.Tool]:
    """The tools as MCP ``Tool`` objects (what ``tools/list`` answers)."""
    out = []
    for name, (description, schema, read_only) in TOOLS.items():
        annotations = types.ToolAnnotations(read_only_hint=True) if read_only else None
        out.append(types.Tool(name=name, description=description, input_schema=schema,
                              annotations=annotations))
    return out


def tools_list_bytes() -> int:
    """The size in bytes of the ``tools/list`` result as compact JSON (what a runtime puts in
    the model's context)."""
    result = types.ListToolsResult(tools=tool_list())
    data = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    data.pop("resultType", None)
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


# -- who calls ---------------------------------------------------------------------------------
class Caller:
    """Who calls: ``actor``, the default ``session`` (None: every call must name one) and the
    ``role`` (``agent``, ``admin`` or ``reader``)."""

    __slots__ = ("actor", "session", "role", "principal")

    def __init__(self, actor: str, session: str | None, role: str = "admin", principal: Any = None) -> None:
        self.actor = actor
        self.session = session
        self.role = role
        #: The service's principal (``/mcp``), for the audit of a refused call.
        self.principal = principal

    def holder(self, session: str | None) -> Holder:
        """``actor:session`` with ``session`` (the tool argument) or the default. Raises
        :class:`InvalidInput` when neither names one, or the name is not valid (or is an
        unexpanded ``${VAR}``)."""
        from leasehold.model import Holder, validate_name

        chosen = session if session else self.session
        if not chosen:
            raise InvalidInput("no session: pass the session argument (or start the MCP server "
                               "with --session / LEASEHOLD_SESSION, or send a Leasehold-Session "
                               "header)")
        if "${" in chosen:
            # A runtime that sends an unset ${VAR} as its literal text (Claude Code does, in
            # headers) would make every one of its agents the same holder.
            raise InvalidInput(f"session {chosen!r} is an unexpanded ${{VAR}}: set the variable, or "
                               "pass the session argument")
        return Holder(self.actor, validate_name(chosen, "session"))


class Backend:
    """Where the tools find their ledger and their caller. A ledger per worker thread (a
    SQLite connection belongs to the thread that opened it)."""

    def ledger(self) -> Ledger:
        raise NotImplementedError

    def caller(self, request: Any) -> Caller:
        raise NotImplementedError

    def after_write(self) -> None:
        """Called after a tool that writes (the service wakes its waiters)."""

    def forbidden(self, name: str, reason: str, caller: Caller) -> None:
        """Called when ``caller``'s role may not run tool ``name`` (the service audits it)."""

    def workdir(self) -> str | None:
        """The folder relative file paths are resolved against (stdio), or None: paths are
        taken as repository-relative as given (a server far from the files)."""
        return None

    def limiter(self) -> Any:
        """The ``anyio.CapacityLimiter`` tool calls run under, or None (anyio's default)."""
        return None


class LocalBackend(Backend):
    """``leasehold mcp`` over stdio: the ledger of ``settings``; the actor from the
    configuration (a remote ledger: the token's); the session from ``session`` (the flag) or
    the environment, else one generated for this process."""

    def __init__(self, settings: Any, actor_flag: str | None = None, session_flag: str | None = None) -> None:
        from leasehold.config import resolve_actor, resolve_session
        from leasehold.server.ledgers import ThreadLedgers

        self.settings = settings
        self.ledgers = ThreadLedgers(self._open_ledger)
        actor, _ = resolve_actor(actor_flag, settings)
        session, source = resolve_session(session_flag, required=False)
        if session is None and os.environ.get("CLAUDE_SESSION_ID"):  # an older Claude Code name
            from leasehold.model import validate_name

            session, source = validate_name(os.environ["CLAUDE_SESSION_ID"], "session"), "CLAUDE_SESSION_ID"
        if session is None:
            import secrets

            session, source = f"mcp-{secrets.token_hex(4)}", "generated for this server process"
        self.session_source = source
        self._caller = Caller(actor, session, "admin")
        self._limiter: Any = None
        self.ledger().now()  # open it now: a bad ledger fails the start, in one line

    def ledger(self) -> Ledger:
        return self.ledgers.get()

    def _open_ledger(self) -> Ledger:
        from leasehold.ledger import Ledger

        return Ledger.from_settings(self.settings)

    def caller(self, request: Any) -> Caller:
        return self._caller

    def limiter(self) -> Any:
        # One call at a time: one agent's calls, one worker thread, one connection (over
        # PostgreSQL a server per agent session must not hold a connection per pool thread).
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return self._limiter

    def workdir(self) -> str | None:
        return os.getcwd()

    def close(self) -> None:
        self.ledgers.close()


# -- results -----------------------------------------------------------------------------------
def _ok(data: dict[str, Any], text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                structured_content=data)


def _refused(exc: BaseException, kind: str, code: int, message: str) -> types.CallToolResult:
    """The CLI's ``{"error": {...}}`` and its one line, as a tool error."""
    error: dict[str, Any] = {"type": kind, "exit_code": code, "message": message}
    for attr in ("task_id", "holder", "fence", "op_id"):
        if hasattr(exc, attr):
            value = getattr(exc, attr)
            error[attr] = value if value is None or isinstance(value, (str, int, float)) else str(value)
    if getattr(exc, "expires_at", None) is not None:
        from leasehold.model import format_ts_precise

        error["lease_until"] = format_ts_precise(exc.expires_at)  # type: ignore[attr-defined]
    return types.CallToolResult(content=[types.TextContent(type="text", text=" ".join(message.split()))],
                                structured_content={"error": error}, is_error=True)


def _ttl(value: Any) -> float | None:
    """A TTL argument (a duration string or seconds; any size of integer) in seconds, or
    None. Raises :class:`InvalidInput` (exit 2) for anything out of 1 s to 7 days."""
    from leasehold.model import parse_ttl

    return None if value is None else parse_ttl(value)


def _lease_line(verb: str, lease: Any) -> str:
    from leasehold.cli.leases import lease_line

    return lease_line(verb, lease)


def _claim(led: Ledger, c: Caller, a: dict[str, Any]) -> types.CallToolResult:
    lease = led.claim(a["task"], c.holder(a.get("session")), _ttl(a.get("ttl")), title=a.get("title"),
                      priority=a.get("priority"))
    return _ok(lease.task.to_dict(led.replayed_at or lease.task.updated_at), _lease_line("claimed", lease))


def _extend(led: Ledger, c: Caller, a: dict[str, Any]) -> types.CallToolResult:
    lease = led.extend(a["task"], c.holder(a.get("session")), _ttl(a.get("ttl")), a.get("fence"))
    return _ok(lease.task.to_dict(led.replayed_at or lease.task.updated_at), _lease_line("extended", lease))


def _release(led: Ledger, c: Caller, a: dict[str, Any]) -> types.CallToolResult:
    result = led.release(a["task"], c.holder(a.get("session")), keep_status=bool(a.get("keep_status")))
    data = result.task.to_dict(result.task.updated_at) if result.task else {}
    data["released"] = result.released
    return _ok(data, result.message)


def _done(led: Ledger, c: Caller, a: dict[str, Any]) -> types.CallToolResult:
    task = led.complete(a["task"], c.holder(a.get("session")), a.get("fence"))
    return _ok(task.to_dict(task.updated_at), f"done {task.id} (fence {task.fence})")


def _check(led: Ledger, c: Caller, a: dict[str, Any]) -> types.CallToolResult:
    # No session at all: every valid lease blocks. A session given but invalid is an error
    # (never read as "no session").
    holder: Holder | None = c.holder(a.get("session")) if a.get("session") or c.session else None
    verdict = led.check(a["task"], holder)
    enforce = os.environ.get("LEASEHOLD_ENFORCE", "1").strip().lower() not in ("0", "false", "no", "off")
    text = "VERDICT: CLEAR" if verdict.clear else f"VERDICT: BLOCKED — {verdict.reason}"
    if not enforce:
        text += " (enforcement off)"
    data = {"verdict": "CLEAR" if verdict.clear else "BLOCKED", "reason": verdict.reason,
            "enforce": enforce, "holder": str(holder) if holder else None,
            "task": verdict.task.to_dict(led.now()) if verdict.task else None}
    return _ok(data, text)


def _next(led: Ledger, c: Caller, a: dict[str, Any]) -> types.CallToolResult:
    leases = led.next(c.holder(a.get("session")), _ttl(a.get("ttl")), a.get("count", 1))
    if not leases:
        raise NoneAvailable("no task available")
    data = {"tasks": [lease.task.to_dict(led.replayed_at or lease.task.updated_at) for lease in leases]}
    return _ok(data, "\n".join(_lease_line("claimed", lease) for lease in leases))


#: The most holders ``who`` lists (the CLI's default page).
WHO_LIMIT = 100


def who_data(led: Ledger) -> tuple[dict[str, Any], str]:
    """``{"holders": [...]}`` (the CLI's ``who --json`` list) and its text."""
    from leasehold.model import format_ts

    now = led.now()
    holders, lines = [], []
    for holder, tasks in led.who(WHO_LIMIT):
        actor, _, session = holder.rpartition(":")
        holders.append({"holder": holder, "actor": actor, "session": session,
                        "tasks": [t.to_dict(now) for t in tasks]})
        lines.append(f"{holder}  ({len(tasks)} lease{'s' if len(tasks) != 1 else ''})")
        lines.extend(f"  {t.id}  until {format_ts(t.lease_until)}  (fence {t.fence})" for t in tasks)
    return {"holders": holders}, "\n".join(lines) or "no active leases"


def _who(led: Ledger, c: Caller, a: dict[str, Any]) -> types.CallToolResult:
    return _ok(*who_data(led))


def _reserve_ticket(led: Ledger, c: Caller, a: dict[str, Any]) -> types.CallToolResult:
    reservations = led.tickets.reserve(a["prefix"], c.holder(a.get("session")), a.get("count", 1))
    return _ok({"reservations": [r.to_dict() for r in reservations]},
               "\n".join(r.ticket_id for r in reservations))


def _post_feed(led: Ledger, c: Caller, a: dict[str, Any]) -> types.CallToolResult:
    from leasehold.untrusted import escape

    post = led.feed.post(a["kind"], a["subject"], c.holder(a.get("session")), body=a.get("body"),
                         item=a.get("item"), reserve=a.get("reserve"))
    flags = f"  [{' '.join(post.flags)}]" if post.flags else ""
    return _ok(post.to_dict(), f"posted #{post.id} {post.kind} {post.item or '-'}: {escape(post.subject)}{flags}")


def _path_line(verb: str, res: Any) -> str:
    from leasehold.cli.paths import _line

    return _line(verb, res)


def _reserve_paths(led: Ledger, c: Caller, a: dict[str, Any]) -> types.CallToolResult:
    from leasehold import paths

    granted = paths.reserve(led, a["paths"], c.holder(a.get("session")), _ttl(a.get("ttl")),
                            shared=bool(a.get("shared")), reason=a.get("reason"))
    now = led.now()
    return _ok({"paths": [r.to_dict(now) for r in granted]},
               "\n".join(_path_line("reserved", r) for r in granted))


def _release_paths(led: Ledger, c: Caller, a: dict[str, Any]) -> types.CallToolResult:
    from leasehold import paths

    data, lines = [], []
    for pattern, res in paths.release(led, a["paths"], c.holder(a.get("session"))):
        data.append({"pattern": pattern, "released": res is not None, "fence": res.fence if res else None})
        lines.append(f"released {pattern}" if res else f"{pattern} is not reserved by you; nothing to release")
    return _ok({"paths": data}, "\n".join(lines))


def _check_paths(led: Ledger, c: Caller, a: dict[str, Any], workdir: str | None = None) -> types.CallToolResult:
    from leasehold import paths

    holder = c.holder(a.get("session"))
    results = paths.check(led, a["paths"], holder.session, workdir)
    now = led.now()
    data, lines = [], []
    for path, blocked in results:
        data.append({"path": path, "blocked_by": [r.to_dict(now) for r in blocked]})
        for r in blocked:
            lines.append(f"{path}: " + _path_line("reserved", r))
    verdict = "BLOCKED" if lines else "CLEAR"
    text = "VERDICT: CLEAR" if not lines else "VERDICT: BLOCKED — " + "; ".join(lines)
    return _ok({"verdict": verdict, "paths": data}, text)


HANDLERS: dict[str, Callable[..., types.CallToolResult]] = {
    "claim": _claim, "extend": _extend, "release": _release, "done": _done, "check": _check,
    "next": _next, "who": _who, "reserve_ticket": _reserve_ticket, "post_feed": _post_feed,
    "reserve_paths": _reserve_paths, "release_paths": _release_paths, "check_paths": _check_paths,
}


def call(backend: Backend, caller: Caller, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    """Run tool ``name`` (arguments already valid against its schema) in this thread: its
    result, or a tool error for any failure (never an exception)."""
    from leasehold.tokens import RANK

    read_only = TOOLS[name][2]
    try:
        if not read_only and RANK.get(caller.role, 0) < RANK["agent"]:
            from leasehold.server.api import Forbidden

            reason = f"a {caller.role} token may not {name.replace('_', ' ')} (needs agent)"
            backend.forbidden(name, reason, caller)
            raise Forbidden(reason)
        led = backend.ledger()
        handler = HANDLERS[name]
        if name == "check_paths":
            result = handler(led, caller, arguments, backend.workdir())
        else:
            result = handler(led, caller, arguments)
        return result
    except LeaseholdError as exc:
        return _refused(exc, type(exc).__name__, exc.exit_code, str(exc))
    except Exception as exc:  # a bug: a tool error, never a dead session
        import logging

        logging.getLogger("leasehold.mcp").exception("internal error in tool %s", name)
        return _refused(exc, "InternalError", 70, f"leasehold: internal error: {type(exc).__name__}: {exc}")
    finally:
        if not read_only:
            try:
                backend.after_write()
            except Exception:
                pass


# -- the server --------------------------------------------------------------------------------
_VALIDATORS: dict[str, Any] = {}


def _validate(name: str, arguments: dict[str, Any]) -> None:
    """Raise a protocol error (-32602) for arguments that do not match the tool's schema."""
    import jsonschema

    validator = _VALIDATORS.get(name)
    if validator is None:
        validator = _VALIDATORS[name] = jsonschema.Draft202012Validator(TOOLS[name][1])
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)[:100]
        what = error.message if len(error.message) <= 300 else error.message[:300] + "..."
        raise MCPError(code=types.INVALID_PARAMS,
                       message=f"invalid arguments for {name}{' at ' + where if where else ''}: {what}")


#: The MCP specification's error code for a resource that does not exist.
RESOURCE_NOT_FOUND = -32002
WHO_URI = "leasehold://who"
TASK_TEMPLATE = "leasehold://task/{id}"


def build(backend: Backend) -> Server[Any]:
    """The low-level MCP ``Server`` of ``backend``: the tools, and the read-only resources
    ``leasehold://who`` and ``leasehold://task/{id}``."""

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tool_list())

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        name = params.name
        if name not in TOOLS:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown tool {name!r}")
        arguments = dict(params.arguments or {})
        _validate(name, arguments)
        for key, value in arguments.items():  # JSON Schema's integer admits 2.0: pass on 2
            if isinstance(value, float) and TOOLS[name][1]["properties"][key] is _I:
                arguments[key] = int(value)
        caller = backend.caller(ctx.request)
        return await anyio.to_thread.run_sync(call, backend, caller, name, arguments,
                                              limiter=backend.limiter())

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[types.Resource(
            name="who", uri=WHO_URI, description="Active leases grouped by holder (JSON).",
            mime_type="application/json")])

    async def list_templates(ctx: Any, params: Any) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[types.ResourceTemplate(
            name="task", uri_template=TASK_TEMPLATE, mime_type="application/json",
            description="A task with its lease (the status JSON).")])

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        backend.caller(ctx.request)  # authenticated (HTTP) before anything is read

        def read() -> dict[str, Any]:
            led = backend.ledger()
            if uri == WHO_URI:
                return who_data(led)[0]
            prefix = TASK_TEMPLATE.split("{")[0]
            if uri.startswith(prefix):
                from urllib.parse import unquote

                from leasehold.cli.fast import status_dict

                task_id = unquote(uri[len(prefix):])
                task = led.status(task_id)
                return status_dict(task_id, task, led.now())
            raise MCPError(code=RESOURCE_NOT_FOUND, message=f"unknown resource {uri}")

        try:
            data = await anyio.to_thread.run_sync(read, limiter=backend.limiter())
        except LeaseholdError as exc:
            # A bad task id is the caller's (-32602); a store that cannot answer, a revoked
            # token, ... are not (-32603). The data carries the CLI's type and exit code.
            code = types.INVALID_PARAMS if exc.exit_code == 2 else types.INTERNAL_ERROR
            raise MCPError(code=code, message=str(exc),
                           data={"type": type(exc).__name__, "exit_code": exc.exit_code}) from None
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, mime_type="application/json", text=json.dumps(data, ensure_ascii=False))])

    return Server("leasehold", version=__version__, instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool, on_list_resources=list_resources,
                  on_list_resource_templates=list_templates, on_read_resource=read_resource)


class ServiceBackend(Backend):
    """``/mcp`` in ``leasehold serve``: the service's ledgers; the caller from the bearer
    token :class:`Authenticated` checked (anonymous mode: actor ``anonymous``), the default
    session from the ``Leasehold-Session`` header."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def ledger(self) -> Ledger:
        return self.service.ledger()  # type: ignore[no-any-return]

    def after_write(self) -> None:
        self.service.changed()

    def caller(self, request: Any) -> Caller:
        principal = None if request is None else request.scope.get("state", {}).get(PRINCIPAL)
        if principal is None:  # never reached: Authenticated runs first
            raise MCPError(code=types.INVALID_REQUEST, message="not authenticated")
        session = request.headers.get("leasehold-session") or None
        return Caller(principal.actor or "anonymous", session, principal.role, principal)

    def forbidden(self, name: str, reason: str, caller: Caller) -> None:
        self.service.audit(f"mcp:{name}", 403, reason, caller.principal, {})


PRINCIPAL = "leasehold_principal"


class Authenticated:
    """The ASGI application at ``/mcp``: the service's bearer-token check (401 without a
    token or with a bad one, audited like the API's), then the SDK's Streamable HTTP app (a GET,
    the optional server-to-client event stream, is 405: a stateless server sends nothing
    unasked)."""

    def __init__(self, service: Any, inner: Any) -> None:
        self.service = service
        self.inner = inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import time

        from starlette.concurrency import run_in_threadpool
        from starlette.requests import Request

        from leasehold.errors import PermissionDenied
        from leasehold.server.app import _error

        started = time.perf_counter()
        request = Request(scope, receive)
        try:
            try:
                principal = await run_in_threadpool(self.service.authenticate, request)
            except PermissionDenied as exc:
                await run_in_threadpool(self.service.audit, "mcp", 401, str(exc), None, {})
                await _error(self.service, exc, "mcp")(scope, receive, send)
                return
            except LeaseholdError as exc:
                await _error(self.service, exc, "mcp")(scope, receive, send)
                return
            if scope.get("method") == "GET":
                # Stateless: no server-initiated messages, so no event stream to open (the
                # spec's answer is 405; the SDK would hold the request open with nothing to say).
                from starlette.responses import Response

                await Response(status_code=405, headers={"Allow": "POST"})(scope, receive, send)
                return
            scope.setdefault("state", {})[PRINCIPAL] = principal
            await self.inner(scope, receive, send)
        finally:
            self.service.metrics.latency.labels(route="mcp").observe(time.perf_counter() - started)


def security_settings(service: Any) -> Any:
    """The SDK's DNS-rebinding protection for ``/mcp``, or None. Without a token an
    ``--anonymous-loopback`` service acts for anyone who reaches it, so a web page whose host
    name re-resolves to 127.0.0.1 could call the tools from a browser: there a request must
    name a loopback host (``Host``: 127.0.0.1, localhost, [::1] or the address served,
    ``LEASEHOLD_SERVE_HOST``; else 421) and any ``Origin`` must be a loopback one (else 403).
    With tokens nothing is ambient (a page cannot attach a bearer token it does not have), so
    a service behind a proxy keeps whatever host name the proxy passes on."""
    if not getattr(service, "anonymous", False):
        return None
    from mcp.server.transport_security import TransportSecuritySettings

    names = ["127.0.0.1", "localhost", "[::1]"]
    served = os.environ.get("LEASEHOLD_SERVE_HOST", "").strip()
    if served and served not in ("::1", *names):
        names.append(f"[{served}]" if ":" in served else served)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[name + port for name in names for port in ("", ":*")],
        allowed_origins=[f"{scheme}://{name}{port}" for scheme in ("http", "https")
                         for name in names for port in ("", ":*")])


def mount(service: Any) -> tuple[Any, Any]:
    """``(route, session manager)`` for ``/mcp`` in the service's application: Streamable
    HTTP, stateless (any ``serve`` process answers any request: they stay peers behind a load
    balancer) with JSON responses. The session manager's ``run()`` must be entered in the
    application's lifespan."""
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
    from starlette.routing import Route

    manager = StreamableHTTPSessionManager(app=build(ServiceBackend(service)), json_response=True,
                                           stateless=True, security_settings=security_settings(service))
    return Route("/mcp", endpoint=Authenticated(service, StreamableHTTPASGIApp(manager))), manager


def run_stdio(backend: LocalBackend) -> None:
    """Serve ``backend`` over stdin/stdout until the client closes stdin."""
    from mcp.server.stdio import stdio_server

    server = build(backend)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    try:
        anyio.run(main)
    finally:
        backend.close()
