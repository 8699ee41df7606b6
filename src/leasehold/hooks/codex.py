"""Codex CLI hooks: ``leasehold hook codex`` reads one Codex hook payload on stdin and acts on
its ``hook_event_name`` (shapes: the Codex hooks page, developers.openai.com/codex/hooks, and
the shared fixtures).

- ``PreToolUse`` ``apply_patch``: the file-reservation gate on every file the patch adds,
  updates, deletes or moves to (``*** Add File:``, ``*** Update File:``, ``*** Delete File:``,
  ``*** Move to:`` lines of ``tool_input.command``, relative to ``cwd``). One denied file
  denies the whole patch, with one reason per file.
- ``PreToolUse`` ``spawn_agent`` (matcher alias ``Agent``): the dispatch gate on every string
  of ``tool_input``, as for Claude Code's ``Agent``.
- ``PreToolUse`` ``Bash`` and anything else: allowed (shell commands are not gated; the git
  guard covers commits).
- ``PostToolUse``, ``Stop`` and ``SubagentStop``: the heartbeat: a session's leases are
  extended while it works (tool calls and turn ends).
- ``SessionEnd`` (Codex documents it for the main thread, with a 3 s cap on its timeout):
  releases everything this session holds. A Codex build without it ends the leases by expiry
  (their TTL after the last heartbeat), or by ``leasehold release``.
- ``SessionStart``: what this session and others hold, as developer context.

Denials use Codex's PreToolUse shape (``hookSpecificOutput.permissionDecision = "deny"``, exit
0); the session is the payload's ``session_id`` (the thread id, which the agent's own shell
commands see as ``CODEX_THREAD_ID``).
"""

from __future__ import annotations

from leasehold.hooks.runtime import ToolFields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

AGENT_TOOLS = ("spawn_agent", "Agent")
PATCH_TOOLS = ("apply_patch",)
_PATCH_MARKERS = ("*** Add File: ", "*** Update File: ", "*** Delete File: ", "*** Move to: ")


def patch_files(patch: str) -> list[str]:
    """The files an ``apply_patch`` patch touches, in order, without duplicates (paths as
    written: relative to the session's ``cwd`` or absolute). Like Codex's own parser, a header
    line may be padded with whitespace (``  *** Update File: x``)."""
    files: dict[str, None] = {}
    for line in patch.splitlines():
        line = line.lstrip()
        for marker in _PATCH_MARKERS:
            if line.startswith(marker):
                path = line[len(marker):].strip()
                if path:
                    files[path] = None
                break
    return list(files)


def _patch_text(tool_input: dict[str, Any]) -> str:
    for key in ("command", "input", "patch"):
        value = tool_input.get(key)
        if isinstance(value, str):
            return value
    return ""


def pre_tool_use(payload: dict[str, Any]) -> int:
    from leasehold.hooks import runtime

    tool = payload.get("tool_name") or ""
    tool_input = payload.get("tool_input") or {}
    if tool in AGENT_TOOLS:
        answer = runtime.call("pre-tool-use", runtime.agent_payload(payload, runtime.text_of(tool_input)))
        if answer.output is not None:
            runtime.emit(answer.output)
        return answer.code
    if tool in PATCH_TOOLS:
        files = patch_files(_patch_text(tool_input))
        if not files:
            return 0
        reasons, notes, code = runtime.gate_files(payload, files)
        if reasons:
            runtime.emit({"hookSpecificOutput": {
                "hookEventName": "PreToolUse", "permissionDecision": "deny",
                "permissionDecisionReason": " | ".join(reasons)}})
            return 0
        if notes:
            runtime.emit({"hookSpecificOutput": {"hookEventName": "PreToolUse",
                                                 "additionalContext": " | ".join(notes)}})
        return code
    return 0


def _passthrough(event: str, payload: dict[str, Any]) -> int:
    from leasehold.hooks import runtime

    answer = runtime.call(event, payload)
    if answer.output is not None:
        runtime.emit(answer.output)
    return answer.code


#: Fields the gate reads, per tool (checked before anything runs: a wrong type is exit 1).
TOOL_FIELDS = {tool: ToolFields(required=("command", "input", "patch")) for tool in PATCH_TOOLS}


def run(raw: bytes | None = None) -> int:
    """Run the Codex hook whose payload is ``raw`` (default: stdin). Exit codes as for Claude
    Code: 0 (also for a denial, printed on stdout), 1 a non-blocking error (one line on stderr:
    a payload that is not JSON, or whose fields have the wrong types); Codex lets the tool call
    go ahead on 1."""
    from leasehold.hooks import runtime

    payload = runtime.load_payload(raw, "codex", TOOL_FIELDS)
    if payload is None:
        return 1
    event = payload["hook_event_name"]
    if event == "PreToolUse":
        return pre_tool_use(payload)
    if event in ("PostToolUse", "Stop", "SubagentStop"):
        return runtime.call("post-tool-use", payload).code
    if event == "SessionStart":
        return _passthrough("session-start", dict(payload, leasehold_runtime="codex"))
    if event == "SessionEnd":
        return min(runtime.call("session-end", payload).code, 1)
    return 0
