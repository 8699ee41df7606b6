"""Fast paths of the hook commands that run inside every agent tool call.

``import json`` imports ``re`` (json.decoder compiles its patterns at import), which with
``enum`` and ``sre`` is a large part of a hook's start-up. The payload is parsed here with the
scanner of CPython's ``_json`` C module, the one ``json.loads`` itself uses, without importing the
``json`` package: the same values, and any payload it does not take cleanly (not UTF-8, a syntax
error, not an object, a field of the wrong type) goes to the normal path, which reports it.

- :func:`pre_tool_use_fast`: the gate when it allows: a tool it does not gate, or an ``Agent``
  call whose prompt names no task another session holds and carries no bypass token, with
  enforcement on. Every other outcome (a denial, a bypass, enforcement off, an Edit) is left to
  :func:`leasehold.hooks.claude.pre_tool_use`.
- :func:`payload_session_fast`: the session of a ``post-tool-use`` payload, for the throttle.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}
_WHITESPACE = " \t\n\r"


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads (those of a default ``json.JSONDecoder``)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[str, str] = {}


def loads_object(raw: bytes) -> dict[str, Any] | None:
    """The payload object, or None when anything is unusual (the normal path then decides)."""
    try:
        import _json

        text = raw.decode("utf-8")
    except (ImportError, UnicodeDecodeError):
        return None
    start = len(text) - len(text.lstrip(_WHITESPACE))
    if not text.startswith("{", start):
        return None
    try:
        value, end = _json.make_scanner(_ScanContext)(text, start)  # type: ignore[arg-type]
    except Exception:  # a syntax error (StopIteration, ValueError, ...): the normal path says so
        return None
    if text[end:].strip(_WHITESPACE) or not isinstance(value, dict):
        return None
    tool_input = value.get("tool_input")
    if tool_input is not None and not isinstance(tool_input, dict):
        return None
    for key in ("session_id", "tool_name", "cwd"):
        if value.get(key) is not None and not isinstance(value[key], str):
            return None
    return value


def _session(payload: dict[str, Any]) -> tuple[bool, str | None]:
    """``(usable, session)``: the session as :func:`leasehold.hooks.claude.payload_session`
    resolves it (None: none set); not usable when it is malformed (the normal path reports it)."""
    from leasehold.errors import InvalidInput
    from leasehold.model import validate_name

    for value in (payload.get("session_id"), os.environ.get("LEASEHOLD_SESSION"),
                  os.environ.get("CLAUDE_CODE_SESSION_ID")):
        if value:
            try:
                return True, validate_name(value, "session")
            except InvalidInput:
                return False, None
    return True, None


def payload_session_fast(raw: bytes) -> str | None:
    """The session a ``post-tool-use`` payload belongs to, or None (ask the normal path)."""
    payload = loads_object(raw)
    if payload is None:
        return None
    return _session(payload)[1]


def pre_tool_use_fast(raw: bytes) -> int | None:
    """The gate's answer when it allows (0, nothing printed), or its answer when the ledger
    cannot be reached (as the normal path gives it); None: let the normal path decide."""
    from leasehold.hooks import claude

    payload = loads_object(raw)
    if payload is None:
        return None
    tool = payload.get("tool_name") or ""
    if tool not in claude.AGENT_TOOLS:
        return 0 if tool not in claude.EDIT_TOOLS else None
    if not claude.enforcing():
        return None
    usable, session = _session(payload)
    if not usable:
        return None
    tool_input = payload.get("tool_input") or {}
    if not isinstance(tool_input, dict):
        return None
    prompt = tool_input.get("prompt")
    description = tool_input.get("description")
    if not isinstance(prompt, (str, type(None))) or not isinstance(description, (str, type(None))):
        return None  # a wrong field type: the normal path reports it
    text = (prompt or "") + "\n" + (description or "")
    if len(text) > claude.MAX_PROMPT_CHARS:
        return None  # too long to read within the deadline: the normal path says so
    from leasehold.errors import LeaseholdError

    settings = None
    timer = _arm_deadline()
    try:
        from leasehold.config import load_settings

        settings = load_settings()
        token = str(settings.get("bypass_token") or claude.DEFAULT_BYPASS_TOKEN)
        if token in text:
            return None
        try:
            ids = claude.candidate_ids(text, settings)  # with reference_keywords / _patterns
        except LeaseholdError:
            return None  # a malformed reference setting: the normal path denies, naming it
        with claude.open_ledger(settings, "pre-tool-use") as ledger:
            held = ledger.held_among(ids) if ids else []
        if any(t.lease_session != session for t in held):
            return None
        return 0
    except LeaseholdError as exc:
        return claude._store_failure(payload, tool, tool_input, session, settings, True, str(exc),
                                     permanent=exc.exit_code in (2, 78))  # as the normal path
    finally:
        if timer is not None:
            timer.setitimer(timer.ITIMER_REAL, 0)


def _arm_deadline() -> Any:
    """:func:`leasehold.hooks.claude._arm_deadline` for pre-tool-use, through the ``_signal`` C
    module (``signal`` imports ``enum``). Returns the module (to disarm), or None."""
    from leasehold.hooks import claude

    try:
        import _signal
    except ImportError:  # pragma: no cover
        return None
    if not hasattr(_signal, "setitimer"):
        return None
    try:
        busy = float(os.environ.get("LEASEHOLD_BUSY_TIMEOUT") or claude.BUSY_TIMEOUTS["pre-tool-use"])
    except ValueError:
        busy = claude.BUSY_TIMEOUTS["pre-tool-use"]
    seconds = min(claude.DEADLINES["pre-tool-use"], max(busy, 0.0) + 2.0)

    def expire(signum: int, frame: Any) -> None:
        raise claude._deadline_error(seconds)

    _signal.signal(_signal.SIGALRM, expire)
    _signal.setitimer(_signal.ITIMER_REAL, seconds)
    return _signal
