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
    try:
        return sys.stdin.buffer.read()
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"leasehold hook {name}: cannot read stdin: {exc}\n")
        return None


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
