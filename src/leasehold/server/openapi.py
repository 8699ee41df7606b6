"""``/openapi.json``, generated from :data:`leasehold.wire.OPS`: the same table the routes and
the remote client are built from, so the document cannot drift from the API."""

from __future__ import annotations

from leasehold import __version__, wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "type", "exit_code", "message"],
        "properties": {
            "code": {"type": "string", "enum": list(wire.CODES)},
            "type": {"type": "string"},
            "exit_code": {"type": "integer", "enum": sorted({c for c, _ in wire.CODES.values()})},
            "message": {"type": "string"},
        },
    }},
}
_OK = {"type": "object", "required": ["result", "now"],
       "properties": {"result": {}, "now": {"type": "number"},
                      "replayed_at": {"type": "number", "description":
                                      "present when the change replayed the outcome its "
                                      "Leasehold-Op-Id recorded: the ledger's clock then"}}}


def _schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind}
    if kind == "array":
        schema["items"] = {"type": "string"}
    return schema


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for op, (method, path, role, params) in wire.OPS.items():
        in_path = wire.path_params(path)
        parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                      for name in in_path]
        operation: dict[str, Any] = {
            "operationId": op,
            "summary": f"{op.replace('_', ' ')} (role: {role})",
            "security": [{"bearer": []}],
            "responses": {
                "200": {"description": "done", "content": {"application/json": {"schema": _OK}}},
                **{str(status): {"description": code, "content": {"application/json": {"schema": _ERROR}}}
                   for code, (_exit, status) in wire.CODES.items()},
                "401": {"description": "no token or a bad one",
                        "content": {"application/json": {"schema": _ERROR}}},
            },
        }
        fields = {name: spec for name, spec in params.items() if name not in in_path}
        if method == "GET":
            parameters += [{"name": name, "in": "query", "required": not spec.endswith("?"),
                            "schema": _schema(spec.rstrip("?"))} for name, spec in fields.items()]
        else:
            operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False,
                "required": [n for n, s in fields.items() if not s.endswith("?")],
                "properties": {n: _schema(s.rstrip("?")) for n, s in fields.items()},
            }}}}
        if parameters:
            operation["parameters"] = parameters
        paths.setdefault(path, {})[method.lower()] = operation
    paths["/v1/events"] = {"get": {
        "operationId": "events_stream", "summary": "Server-Sent Events of the event log, resumable (Last-Event-ID)",
        "security": [{"bearer": []}],
        "parameters": [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                       for n in ("after", "ids", "kinds")],
        "responses": {"200": {"description": "text/event-stream",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    }}
    for open_path in ("/healthz", "/readyz", "/metrics"):
        paths[open_path] = {"get": {"operationId": open_path.strip("/"), "security": [],
                                    "responses": {"200": {"description": "ok"},
                                                  "503": {"description": "not ready"}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "leasehold", "version": __version__,
                 "description": "The leasehold coordination ledger over HTTP. Times are UTC seconds "
                                "since the epoch; errors carry a code that maps one-to-one to the CLI's exit codes."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
