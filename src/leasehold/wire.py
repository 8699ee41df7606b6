"""The HTTP API's operations, shared by the server (:mod:`leasehold.server`) and the remote
client (:mod:`leasehold.remote`): one table, so the routes, the OpenAPI document and the client
cannot drift apart.

Each operation: ``(http method, path, role, params)``. ``params`` maps a parameter name to its
JSON type (``string``, ``number``, ``integer``, ``boolean``, ``array``, ``object``); a trailing
``?`` marks it optional; names in the path (``{task_id}``) come from the path, the others from
the JSON body (POST) or the query string (GET). ``role`` is the least role allowed
(``reader`` < ``agent`` < ``admin``). A ``holder`` or ``by`` parameter (``actor:session``) must
name the token's actor.

Objects travel as their stored fields: times are UTC seconds since the epoch (floats).
Errors are ``{"error": {"code", "type", "exit_code", "message", ...}}``; ``code`` maps one-to-one
to the CLI exit code (:data:`CODES`).
"""

from __future__ import annotations

#: error code -> CLI exit code (one-to-one), and the HTTP status it travels with.
CODES = {
    "conflict": (1, 409),
    "invalid_input": (2, 400),
    "not_found": (3, 404),
    "internal": (70, 500),
    "unavailable": (75, 503),
    "outcome_unknown": (76, 502),
    "permission_denied": (77, 403),
    "config_error": (78, 500),
}
EXIT_TO_CODE = {exit_code: code for code, (exit_code, _status) in CODES.items()}

T = "/v1/tasks/{task_id}"
OPS = {
    # name: (method, path, role, params)
    "whoami": ("GET", "/v1/whoami", "reader", {}),
    "now": ("GET", "/v1/now", "reader", {}),
    "claim": ("POST", T + "/claim", "agent",
              {"holder": "string", "ttl": "number?", "title": "string?", "priority": "integer?",
               "wait": "number?", "share_with": "array?"}),
    "extend": ("POST", T + "/extend", "agent", {"holder": "string", "ttl": "number?", "fence": "integer?"}),
    "release": ("POST", T + "/release", "agent", {"holder": "string", "keep_status": "boolean?"}),
    "force_release": ("POST", T + "/force-release", "admin", {"reason": "string", "by": "string?"}),
    "complete": ("POST", T + "/done", "agent", {"holder": "string", "fence": "integer?"}),
    "complete_many": ("POST", "/v1/done", "agent", {"task_ids": "array", "holder": "string"}),
    "next": ("POST", "/v1/next", "agent",
             {"holder": "string", "ttl": "number?", "count": "integer?", "wait": "number?"}),
    "sweep": ("POST", "/v1/sweep", "agent", {"auto_release": "boolean?"}),
    "status": ("GET", T + "/status", "reader", {}),
    "show": ("GET", T, "reader", {}),
    "check": ("GET", T + "/check", "reader", {"holder": "string?"}),
    "who": ("GET", "/v1/who", "reader", {"limit": "integer?"}),
    "leases_of": ("GET", "/v1/leases", "reader", {"holder": "string"}),
    "lease_board": ("GET", "/v1/leases/board", "reader", {"limit": "integer?", "offset": "integer?"}),
    "held_among": ("POST", "/v1/held", "reader", {"ids": "array"}),
    "add": ("POST", T, "agent", {"title": "string?", "priority": "integer?", "by": "string?"}),
    "add_blocked": ("POST", T + "/add-blocked", "agent",
                    {"blocked_by": "array", "title": "string?", "priority": "integer?", "by": "string?"}),
    "depend": ("POST", T + "/depend", "agent", {"blocked_by": "array", "by": "string?"}),
    "undepend": ("POST", T + "/undepend", "agent", {"blocked_by": "array", "by": "string?"}),
    "blockers": ("GET", T + "/blockers", "reader", {}),
    "ready": ("GET", "/v1/ready", "reader", {"limit": "integer?"}),
    "blocked": ("GET", "/v1/blocked", "reader", {}),
    "reopen": ("POST", T + "/reopen", "agent", {"by": "string?"}),
    "tasks": ("GET", "/v1/tasks", "reader", {"status": "string?", "held": "boolean?", "limit": "integer?"}),
    "tasks_page": ("GET", "/v1/pages/tasks", "reader",
                   {"status": "string?", "held": "boolean?", "after_priority": "integer?",
                    "after_created": "number?", "after_id": "string?", "page": "integer?"}),
    "events": ("GET", "/v1/log", "reader", {"task_id": "string?", "limit": "integer?", "after": "integer?"}),
    "events_page": ("GET", "/v1/log/page", "reader", {"task_id": "string?", "after": "integer?", "page": "integer?"}),
    "heartbeat_session": ("POST", "/v1/sessions/{session}/heartbeat", "agent", {}),
    "release_session": ("POST", "/v1/sessions/{session}/release", "agent", {}),
    "release_session_count": ("POST", "/v1/sessions/{session}/release-count", "agent", {}),
    "share": ("POST", T + "/share", "agent", {"holder": "string", "sessions": "array"}),
    "shared_among": ("POST", "/v1/shared", "reader", {"ids": "array"}),
    "record_bypass": ("POST", "/v1/bypass", "agent",
                      {"task_ids": "array", "by": "string?", "details": "object"}),
    "reserve_paths": ("POST", "/v1/paths/reserve", "agent",
                      {"patterns": "array", "holder": "string", "ttl": "number?",
                       "shared": "boolean?", "reason": "string?"}),
    "release_paths": ("POST", "/v1/paths/release", "agent", {"patterns": "array", "holder": "string"}),
    "active_paths": ("GET", "/v1/paths", "reader", {}),
    "sweep_paths": ("POST", "/v1/paths/sweep", "agent", {"auto_release": "boolean?"}),
    "force_release_paths": ("POST", "/v1/paths/force-release", "agent",
                            {"patterns": "array", "reason": "string", "by": "string?"}),
    "exclusive_paths_not_of_session": ("GET", "/v1/paths/exclusive", "reader", {"session": "string"}),
    "token_create": ("POST", "/v1/tokens", "admin",
                     {"actor": "string", "role": "string?", "expires": "number?"}),
    "token_list": ("GET", "/v1/tokens", "admin", {}),
    "token_revoke": ("POST", "/v1/tokens/{token_id}/revoke", "admin", {}),
    "op": ("GET", "/v1/ops/{operation_id}", "reader", {}),
    # ticket namespaces and reservations
    "ns_add": ("POST", "/v1/namespaces/{prefix}", "agent", {"format": "string?", "lane": "string?", "by": "string?"}),
    "ns_list": ("GET", "/v1/namespaces", "reader", {}),
    "ns_get": ("GET", "/v1/namespaces/{prefix}", "reader", {}),
    "reserve": ("POST", "/v1/namespaces/{prefix}/reserve", "agent", {"holder": "string", "count": "integer?"}),
    "reservation": ("GET", "/v1/reservations/{ticket_id}", "reader", {}),
    "abandon": ("POST", "/v1/reservations/{ticket_id}/abandon", "agent",
                {"by": "string", "reason": "string?", "force": "boolean?"}),
    # the feed
    "feed_post": ("POST", "/v1/feed", "agent",
                  {"kind": "string", "subject": "string", "holder": "string", "body": "string?",
                   "item": "string?", "reserve": "string?", "provisional": "string?",
                   "release_proof": "string?", "repair": "string?"}),
    "feed_amend": ("POST", "/v1/feed/{post_id}/amend", "agent",
                   {"holder": "string", "subject": "string?", "body": "string?", "renumber": "string?",
                    "prefix": "string?"}),
    "feed_confirm": ("POST", "/v1/feed/{post_id}/confirm", "agent", {"holder": "string", "prefix": "string?"}),
    "feed_import": ("POST", "/v1/feed/import", "agent", {"lines": "array", "source": "string?", "by": "string"}),
    "feed_get": ("GET", "/v1/feed/{post_id}", "reader", {}),
    "feed_posts": ("GET", "/v1/feed", "reader",
                   {"since": "number?", "item": "string?", "kind": "string?", "limit": "integer?"}),
    "feed_page": ("GET", "/v1/pages/feed", "reader",
                  {"since": "number?", "kind": "string?", "after_ts": "number?", "after_id": "integer?",
                   "page": "integer?"}),
    "feed_last": ("GET", "/v1/feed/last", "reader", {"count": "integer"}),
    "feed_after": ("GET", "/v1/feed/after", "reader", {"post_id": "integer", "limit": "integer?"}),
    "feed_queue": ("GET", "/v1/queue", "reader", {"limit": "integer?", "state": "string?", "item": "string?"}),
    "feed_drift": ("GET", "/v1/drift", "reader", {}),
}

#: Changes the ledger records under the request's operation id (``Leasehold-Op-Id``): sent
#: again with the same id after a lost answer, they are replayed, never applied twice.
OP_ID_OPS = frozenset({"claim", "extend", "release", "force_release", "complete", "complete_many",
                       "next", "sweep", "add", "add_blocked", "depend", "undepend", "reopen",
                       "reserve", "reserve_paths", "release_paths", "force_release_paths",
                       "feed_post", "feed_amend", "feed_confirm"})

#: Operations that change nothing: safe to retry after a lost connection.
READS = frozenset(name for name, (method, *_rest) in OPS.items() if method == "GET") | {"held_among", "shared_among"}


def path_params(path: str) -> list[str]:
    """The ``{name}`` parameters of a path template, in order."""
    out = []
    rest = path
    while "{" in rest:
        rest = rest[rest.index("{") + 1:]
        out.append(rest[: rest.index("}")])
    return out


# -- objects on the wire -----------------------------------------------------------------------
def task_out(task):  # type: ignore[no-untyped-def]
    if task is None:
        return None
    return {name: getattr(task, name) for name in task.__slots__}


def task_in(data):  # type: ignore[no-untyped-def]
    if data is None:
        return None
    from leasehold.model import Task

    return Task(**data)


def event_out(event):  # type: ignore[no-untyped-def]
    return {name: getattr(event, name) for name in event.__slots__}


def event_in(data):  # type: ignore[no-untyped-def]
    from leasehold.model import Event

    return Event(**data)


def path_out(res):  # type: ignore[no-untyped-def]
    if res is None:
        return None
    return {name: getattr(res, name) for name in res.__slots__}


def path_in(data):  # type: ignore[no-untyped-def]
    if data is None:
        return None
    from leasehold.model import PathReservation

    return PathReservation(**data)


def slots_out(obj):  # type: ignore[no-untyped-def]
    """A model object (Namespace, Reservation, Post) as its stored fields."""
    if obj is None:
        return None
    return {name: getattr(obj, name) for name in obj.__slots__}


def slots_in(cls, data):  # type: ignore[no-untyped-def]
    return None if data is None else cls(**data)


def error_out(exc: BaseException) -> tuple[int, dict]:  # type: ignore[type-arg]
    """``(http status, body)`` for an exception."""
    exit_code = getattr(exc, "exit_code", 70)
    code = EXIT_TO_CODE.get(exit_code, "internal")
    status = CODES[code][1]
    error = {"code": code, "type": type(exc).__name__ if exit_code != 70 else "InternalError",
             "exit_code": exit_code, "message": str(exc) if exit_code != 70 else "internal error"}
    for attr in ("task_id", "holder", "expires_at", "fence", "post_id", "op_id"):
        if hasattr(exc, attr):
            error[attr] = getattr(exc, attr)
    if type(exc).__name__ == "PathReserved":
        error.pop("holder", None)
        error.pop("expires_at", None)
        error["clashes"] = [[pattern, path_out(other)] for pattern, other in exc.conflicts]  # type: ignore[attr-defined]
    return status, {"error": error}


def error_in(status: int, body: object) -> Exception:
    """The exception a server error body describes (the same class and message as a local
    ledger raises), or :class:`~leasehold.errors.LeaseholdError` subclasses by code."""
    from leasehold import errors

    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        if status in (401, 403):
            return errors.PermissionDenied(f"the server refused the request (HTTP {status})")
        if status in (502, 503, 504, 429):
            return errors.StoreUnavailable(f"the server is unavailable (HTTP {status}); retry later")
        return errors.LeaseholdError(f"unexpected answer from the server (HTTP {status})")
    kind = str(error.get("type", ""))
    message = str(error.get("message", ""))
    if kind == "LeaseHeld":
        return errors.LeaseHeld(error["task_id"], error["holder"], error["expires_at"], error["fence"])
    if kind == "DuplicatePost":
        return errors.DuplicatePost(message, error["task_id"], error["post_id"])
    if kind == "OutcomeUnknown":
        return errors.OutcomeUnknown(message, error.get("op_id"))
    if kind == "PathReserved":
        from leasehold.paths import PathReserved

        return PathReserved([(pattern, path_in(other)) for pattern, other in error.get("clashes", [])])
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.LeaseholdError) and cls.__init__ is errors.LeaseholdError.__init__:
        return cls(message)
    by_exit = {1: errors.Conflict, 2: errors.InvalidInput, 3: errors.NotFound, 75: errors.StoreUnavailable,
               76: errors.OutcomeUnknown, 77: errors.PermissionDenied, 78: errors.ConfigError}
    return by_exit.get(int(error.get("exit_code", 70)), errors.LeaseholdError)(message)
