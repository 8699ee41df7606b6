"""Shared plumbing of the Codex CLI and Gemini CLI hook adapters: run one of the Claude Code
hook events (:mod:`leasehold.hooks.claude`, which holds the gate, heartbeat and session logic)
on a translated payload and capture the one JSON object it answers with, so that the adapter
can give it the shape its runtime expects."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Answer:
    """What a Claude Code hook event answered: ``code`` (its exit code), ``output`` (the JSON
    object it printed, or None), ``text`` (anything else it printed on stdout)."""

    __slots__ = ("code", "output", "text")

    def __init__(self, code: int, output: dict[str, Any] | None, text: str) -> None:
        self.code = code
        self.output = output
        self.text = text

    @property
    def specific(self) -> dict[str, Any]:
        out = (self.output or {}).get("hookSpecificOutput")
        return out if isinstance(out, dict) else {}

    @property
    def denied(self) -> str | None:
        """The deny reason, or None when the call was allowed."""
        if self.specific.get("permissionDecision") == "deny":
            return str(self.specific.get("permissionDecisionReason") or "")
        return None

    @property
    def context(self) -> str | None:
        value = self.specific.get("additionalContext")
        return str(value) if value else None


def read_stdin(name: str) -> bytes | None:
    if sys.stdin is None:  # started with no standard input at all (fd 0 closed)
        sys.stderr.write(f"leasehold hook {name}: cannot read stdin: it is closed\n")
        return None
    try:
        return sys.stdin.buffer.read()
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"leasehold hook {name}: cannot read stdin: {exc}\n")
        return None


class ToolFields:
    """What a gated tool's ``tool_input`` must hold: ``strings``, keys that must be strings
    when present; ``required``, keys of which at least one must be a non-empty string (the
    gate cannot tell what the call does without it)."""

    __slots__ = ("strings", "required")

    def __init__(self, strings: tuple[str, ...] = (), required: tuple[str, ...] = ()) -> None:
        self.strings = strings + tuple(k for k in required if k not in strings)
        self.required = required


def load_payload(raw: bytes | None, name: str, tools: dict[str, ToolFields]) -> dict[str, Any] | None:
    """The payload of ``leasehold hook NAME`` (``raw``, default stdin), checked: a JSON object
    (:func:`leasehold.hooks.claude.parse_payload`: ``session_id``, ``tool_name``, ``cwd``
    strings, ``tool_input`` an object), ``hook_event_name`` a string, and for a tool in ``tools``
    its :class:`ToolFields`. A wrong payload is one line on stderr and None: the hook exits 1,
    the README's non-blocking error for a payload it cannot read (never a silent allow)."""
    from leasehold.hooks.claude import PayloadError, parse_payload

    if raw is None:
        raw = read_stdin(name)
        if raw is None:
            return None
    try:
        payload = parse_payload(raw)
        event = payload.get("hook_event_name")
        if not isinstance(event, str) or not event:
            raise PayloadError("hook payload field hook_event_name must be a non-empty string, "
                               f"got {_shown(event)}")
        fields = tools.get(payload.get("tool_name") or "")
        if fields is not None:
            tool_input = payload.get("tool_input") or {}
            for key in fields.strings:
                value = tool_input.get(key)
                if value is not None and not isinstance(value, str):
                    raise PayloadError(f"hook payload field tool_input.{key} of "
                                       f"{payload['tool_name']} must be a string, got {_shown(value)}")
            if fields.required and not any(tool_input.get(k) for k in fields.required):
                raise PayloadError(f"hook payload of {payload['tool_name']} has no "
                                   f"tool_input.{' / '.join(fields.required)}: cannot tell what it touches")
    except PayloadError as exc:
        from leasehold.untrusted import escape

        sys.stderr.write(f"leasehold hook {name}: {escape(str(exc), 400)}\n")
        return None
    return payload


def _shown(value: Any) -> str:
    kind = {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}.get(type(value))
    return kind or f"{type(value).__name__} {str(value)[:40]!r}"


def call(event: str, payload: dict[str, Any]) -> Answer:
    """Run the Claude Code hook ``event`` on ``payload`` in this process; its stdout is
    captured, its stderr passes through."""
    import io
    import json

    from leasehold.hooks import claude

    saved = sys.stdout
    buffer = io.StringIO()
    sys.stdout = buffer
    try:
        code = claude.run(event, json.dumps(payload).encode("utf-8", "surrogatepass"))
    finally:
        sys.stdout = saved
    text = buffer.getvalue().strip()
    output = None
    if text.startswith("{"):
        try:
            output = json.loads(text.splitlines()[0])
        except ValueError:
            output = None
        else:
            text = ""
    return Answer(code, output, text)


def emit(obj: dict[str, Any]) -> None:
    import json

    sys.stdout.write(json.dumps(obj) + "\n")


def text_of(value: Any, depth: int = 0) -> str:
    """Every string inside a JSON value, joined by new lines (a sub-agent tool's arguments:
    ``message``, ``prompt``, ``items[].text``...)."""
    if isinstance(value, str):
        return value
    if depth > 6:
        return ""
    if isinstance(value, dict):
        return "\n".join(text_of(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return "\n".join(text_of(v, depth + 1) for v in value)
    return ""


def agent_payload(payload: dict[str, Any], text: str) -> dict[str, Any]:
    """A Claude Code ``Agent`` PreToolUse payload carrying ``text`` as its prompt."""
    return {"session_id": payload.get("session_id"), "cwd": payload.get("cwd"),
            "hook_event_name": "PreToolUse", "tool_name": "Agent",
            "tool_input": {"prompt": text, "description": ""}}


def edit_payload(payload: dict[str, Any], file_path: str) -> dict[str, Any]:
    """A Claude Code ``Write`` PreToolUse payload for ``file_path`` (relative to ``cwd``)."""
    return {"session_id": payload.get("session_id"), "cwd": payload.get("cwd"),
            "hook_event_name": "PreToolUse", "tool_name": "Write",
            "tool_input": {"file_path": file_path}}


def gate_files(payload: dict[str, Any], files: list[str]) -> tuple[list[str], list[str], int]:
    """Run the file-reservation gate on each file: ``(deny reasons, notes, exit code)``."""
    reasons: list[str] = []
    notes: list[str] = []
    code = 0
    for path in dict.fromkeys(files):
        answer = call("pre-tool-use", edit_payload(payload, path))
        code = max(code, answer.code)
        if answer.denied is not None:
            reasons.append(answer.denied)
        elif answer.context:
            notes.append(answer.context)
    return reasons, notes, code
