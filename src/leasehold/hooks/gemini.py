"""Gemini CLI hooks: ``leasehold hook gemini`` reads one Gemini CLI hook payload on stdin and
acts on its ``hook_event_name`` (shapes: google-gemini/gemini-cli ``docs/hooks/reference.md``
and the shared fixtures).

- ``BeforeTool`` ``write_file`` / ``replace``: the file-reservation gate on ``file_path``
  (relative paths are relative to ``cwd``, the project root, as the tools resolve them).
- ``BeforeTool`` ``invoke_agent`` (older releases: ``delegate_to_agent``): the dispatch gate
  on ``prompt`` (and every other string of
  its arguments), as for Claude Code's ``Agent``.
- ``AfterTool``: the heartbeat.
- ``SessionStart``: what this session and others hold (``hookSpecificOutput.additionalContext``);
  on ``resume``/``clear`` also what was released.
- ``SessionEnd``: releases everything this session holds (``exit`` and ``clear``).

A denial is ``{"decision": "deny", "reason": ...}`` on stdout with exit 0; a note when
enforcement is off goes to ``systemMessage``. The session is the payload's ``session_id`` (also
``GEMINI_SESSION_ID`` in the hook's environment). Exit codes: 0, or 1 for a non-blocking error
(Gemini CLI shows a warning and goes ahead); never 2, which Gemini CLI treats as a block.
"""

from __future__ import annotations

from leasehold.hooks.runtime import ToolFields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EDIT_TOOLS = ("write_file", "replace")
#: ``invoke_agent`` (current source); ``delegate_to_agent`` (the name older releases document).
AGENT_TOOLS = ("invoke_agent", "delegate_to_agent")


def _deny(reason: str) -> int:
    from leasehold.hooks import runtime

    runtime.emit({"decision": "deny", "reason": reason})
    return 0


def before_tool(payload: dict[str, Any]) -> int:
    from leasehold.hooks import runtime

    tool = payload.get("tool_name") or ""
    tool_input = payload.get("tool_input") or {}
    if tool in AGENT_TOOLS:
        answer = runtime.call("pre-tool-use", runtime.agent_payload(payload, runtime.text_of(tool_input)))
        if answer.denied is not None:
            return _deny(answer.denied)
        if answer.context:
            runtime.emit({"systemMessage": answer.context})
        return min(answer.code, 1)
    if tool in EDIT_TOOLS:
        reasons, notes, code = runtime.gate_files(payload, [tool_input["file_path"]])
        if reasons:
            return _deny(" | ".join(reasons))
        if notes:
            runtime.emit({"systemMessage": " | ".join(notes)})
        return min(code, 1)
    return 0


#: Fields the gate reads, per tool (checked before anything runs: a wrong type is exit 1).
TOOL_FIELDS = {
    **{tool: ToolFields(required=("file_path",)) for tool in EDIT_TOOLS},
    **{tool: ToolFields(strings=("prompt", "agent_name")) for tool in AGENT_TOOLS},
}


def run(raw: bytes | None = None) -> int:
    """Run the Gemini CLI hook whose payload is ``raw`` (default: stdin); see the module
    docstring for exit codes (a payload that is not JSON, or whose fields have the wrong types,
    is 1 with one line on stderr)."""
    from leasehold.hooks import runtime

    payload = runtime.load_payload(raw, "gemini", TOOL_FIELDS)
    if payload is None:
        return 1
    event = payload["hook_event_name"]
    if event == "BeforeTool":
        return before_tool(payload)
    if event == "AfterTool":
        return min(runtime.call("post-tool-use", payload).code, 1)
    if event == "SessionStart":
        answer = runtime.call("session-start", dict(payload, leasehold_runtime="gemini"))
        if answer.context:
            runtime.emit({"hookSpecificOutput": {"hookEventName": "SessionStart",
                                                 "additionalContext": answer.context}})
        return min(answer.code, 1)
    if event == "SessionEnd":
        return min(runtime.call("session-end", payload).code, 1)
    return 0
