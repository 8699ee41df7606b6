"""Claude Code hook commands: the dispatch gate, the heartbeat, the session summary and the
release at session end. Each reads one JSON payload on stdin (shapes: the Claude Code hooks
reference; examples in the shared fixtures) and never prints a traceback.

- ``pre-tool-use``: for ``Agent`` (legacy ``Task``) the gate finds the task references in
  ``prompt`` and ``description`` (:mod:`leasehold.hooks.refs`: the id as its own token, not a
  word that merely equals a short id) and asks the ledger, in one query, which of them are
  validly held by a *different* session; for ``Edit``/``Write``/``MultiEdit``/``NotebookEdit`` it checks the
  file against other sessions' exclusive file reservations. A hit is denied with exactly one
  JSON object on stdout (``hookSpecificOutput.permissionDecision = "deny"``) whose reason names
  each task or pattern, its holder ``actor:session`` and expiry, and what to do instead.
  The bypass token (``[CEO_APPROVED]``, setting ``bypass_token``) in an Agent prompt allows the
  call and is audited (one JSON line in ``audit_dir/bypass-audit-YYYYMMDD.log`` and ``bypass``
  events in the ledger). ``LEASEHOLD_ENFORCE=0`` never denies: the agent is told through
  ``additionalContext`` what would have been denied, and that is audited the same way.
  Failure policy: a ledger that cannot be reached (or a leasehold.toml that cannot be read)
  denies, saying so and how to switch enforcement off (fail closed, mc-claim-protocol); an
  unreadable payload is a non-blocking error (exit 1, one line on stderr).
- ``post-tool-use``: the heartbeat, at most once per ``heartbeat_interval`` (default 60 s) per
  session; the throttle lives in ``state_dir/heartbeat-SESSION`` (the time the next heartbeat
  is due). The throttled path opens no database (agent-claiming-protocol-review S2, S3).
- ``session-start``: ``additionalContext`` listing this session's leases and reservations and,
  compactly, what other sessions hold.
- ``session-end``: releases every lease and reservation of this session, with a short busy
  timeout to stay inside Claude Code's 1.5 s SessionEnd budget (expiry is the backstop).

The session is the payload's ``session_id`` (else ``LEASEHOLD_SESSION``, then
``CLAUDE_CODE_SESSION_ID``); a lease belongs to "this session" when its holder's session part
is that id, whatever the actor part.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.config import Settings
    from leasehold.ledger import Ledger
    from leasehold.model import PathReservation, Task

AGENT_TOOLS = ("Agent", "Task")
EDIT_TOOLS = ("Edit", "Write", "MultiEdit", "NotebookEdit")
DEFAULT_BYPASS_TOKEN = "[CEO_APPROVED]"
DEFAULT_HEARTBEAT_INTERVAL = 60.0
#: Seconds to wait for a locked SQLite ledger, per event (LEASEHOLD_BUSY_TIMEOUT / busy_timeout
#: override): well inside the hook timeouts the installer writes, and SessionEnd's 1.5 s.
BUSY_TIMEOUTS = {"pre-tool-use": 3.0, "post-tool-use": 5.0, "session-start": 3.0, "session-end": 1.0}
#: Wall-clock limit of each event, in seconds (the busy timeout plus 2 s to connect, capped here):
#: below the timeouts the installer writes (10 s) and SessionEnd's shared 1.5 s budget, so a ledger
#: that hangs (a PostgreSQL server that accepts and never answers waits out libpq's 10 s
#: connect_timeout) ends in our answer, not in Claude Code's timeout, which lets the call through.
#: ``LEASEHOLD_HOOK_DEADLINE`` (seconds, > 0) replaces the limit of every event: for a ledger that
#: is slow but alive (a loaded host, a distant server) together with larger hook timeouts.
DEADLINES = {"pre-tool-use": 8.0, "post-tool-use": 8.0, "session-start": 8.0, "session-end": 1.1}
_OFF = ("0", "false", "no", "off")
#: The longest sub-agent prompt (prompt plus description, in characters) the gate reads: past it
#: the reference scan would outlast the hook's deadline (about 5 MB a second), so the call is
#: denied with that said, never let through unread nor reported as a ledger timeout.
MAX_PROMPT_CHARS = 1_000_000
#: tool_input fields the gate reads: each must be a string when present (a wrong type is a
#: non-blocking payload error, never silently read as empty).
_TEXT_INPUTS = ("prompt", "description", "file_path", "notebook_path")
#: The end of the first SessionStart line, per runtime (``leasehold_runtime`` in the payload,
#: set by the Codex and Gemini CLI adapters).
SESSION_NOTES = {
    "claude": "Heartbeat and release at session end are automatic.",
    "codex": ("Your claims are extended while you work and released when the session ends; "
              "a Codex without the SessionEnd hook ends them by expiry (their TTL after your last "
              "tool call or turn): release what you finish (`leasehold release ID`)."),
    "gemini": ("Your shell commands do not see this session's id: pass `--session {session}` "
               "to leasehold claim/release/reserve-path so the hooks know the claims are yours. "
               "Heartbeat and release at session end are automatic."),
}
_ID_PUNCT = "._:/#-"
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


class PayloadError(Exception):
    """The hook payload on stdin is not what Claude Code sends."""


def _deadline_error(seconds: float) -> Exception:
    from leasehold.errors import StoreUnavailable

    return StoreUnavailable(f"the ledger did not answer within {seconds:g}s; retry later")


def _arm_deadline(event: str) -> None:
    """Raise a store error (:class:`StoreUnavailable`) in this process once the event's time
    budget (:data:`DEADLINES`, or ``LEASEHOLD_HOOK_DEADLINE`` seconds) is spent, wherever it is
    waiting. An override that is not a positive number is ignored."""
    import signal

    if not hasattr(signal, "setitimer"):
        return
    try:
        busy = float(os.environ.get("LEASEHOLD_BUSY_TIMEOUT") or BUSY_TIMEOUTS[event])
    except ValueError:
        busy = BUSY_TIMEOUTS[event]
    seconds = min(DEADLINES[event], max(busy, 0.0) + 2.0)
    try:
        override = float(os.environ.get("LEASEHOLD_HOOK_DEADLINE") or 0.0)
    except ValueError:
        override = 0.0
    if 0.0 < override < float("inf"):
        seconds = override

    def expire(signum: int, frame: Any) -> None:
        if getattr(sys.exc_info()[1], "hook_deadline", False):
            return  # the expiry is being handled already
        error = _deadline_error(seconds)
        error.hook_deadline = True  # type: ignore[attr-defined]
        raise error

    signal.signal(signal.SIGALRM, expire)
    # The timer repeats (every 0.2 s) until disarmed: an expiry that lands in code catching every
    # Exception (psycopg probing its optional implementations while it is imported, on a slow
    # machine) is swallowed there, and would otherwise leave the hook waiting for libpq's 10 s.
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.2)


def _disarm_deadline() -> None:
    """Called before an answer is printed: from then on the process only finishes."""
    if "signal" in sys.modules:
        import signal

        if hasattr(signal, "setitimer"):
            signal.setitimer(signal.ITIMER_REAL, 0)


# -- paths of the small files -----------------------------------------------------------------
def cache_home() -> str:
    """``$XDG_CACHE_HOME/leasehold`` (default ``~/.cache/leasehold``)."""
    from leasehold.config import cache_dir

    return cache_dir()


def default_state_dir() -> str:
    return os.path.join(cache_home(), "state")


def state_file(state_dir: str, session: str) -> str:
    """The heartbeat throttle file of ``session`` (the session id percent-encoded)."""
    name = "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in session.encode("utf-8"))
    return os.path.join(state_dir, "heartbeat-" + name)


# -- the throttled heartbeat: the fast path ----------------------------------------------------
def _fast_state_dir() -> str | None:
    """The state folder when it is certainly the default: no leasehold.toml from the working
    directory up, or one that does not mention ``state_dir``. None: ask the slow path."""
    try:
        folder = os.getcwd()
    except OSError:  # the working directory was removed
        return None
    while True:
        candidate = os.path.join(folder, "leasehold.toml")
        try:
            with open(candidate, "rb") as fh:
                if b"state_dir" in fh.read():
                    return None
                break
        except FileNotFoundError:
            pass
        except OSError:
            return None
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return default_state_dir()


def throttled_fast(raw: bytes) -> bool:
    """True when this session's next heartbeat is not due yet, decided without the json module,
    reading settings or opening the ledger: the session comes from ``CLAUDE_CODE_SESSION_ID``
    when it appears as the payload's ``session_id`` value, else from the payload parsed by
    :func:`leasehold.hooks.fast.payload_session_fast`. Any doubt answers False (the slow path
    then decides properly)."""
    session = os.environ.get("CLAUDE_CODE_SESSION_ID")
    quoted = ('"' + (session or "") + '"').encode("utf-8")
    if (not session or '"' in session or "\\" in session
            or (b'"session_id":' + quoted not in raw and b'"session_id": ' + quoted not in raw)):
        # No session in the environment, or the payload names another one: find it as the
        # normal path does, from the payload parsed without the json module.
        from leasehold.hooks.fast import payload_session_fast

        session = payload_session_fast(raw)
        if session is None:
            return False
    folder = _fast_state_dir()
    if folder is None:
        return False
    return _not_due(state_file(folder, session))


def _not_due(path: str) -> bool:
    """True when ``path`` says the next heartbeat is not due yet. A file in a folder other users
    can write is not believed (False: the caller's write then refuses the folder)."""
    from leasehold.safefiles import PrivateFolder

    try:
        with PrivateFolder(os.path.dirname(path)) as folder:
            due = float(folder.read(os.path.basename(path), 64).split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return time.time() < due


def _mark_due(path: str, due: float) -> None:
    """Record when ``path``'s session is next due, in a private state folder (a folder other
    users can write is refused: :mod:`leasehold.safefiles`). Raises :class:`OSError`."""
    from leasehold.safefiles import PrivateFolder

    with PrivateFolder(os.path.dirname(path)) as folder:
        folder.replace(os.path.basename(path), f"{due!r}\n".encode("ascii"))


# -- payload, settings, ledger -----------------------------------------------------------------
def parse_payload(raw: bytes) -> dict[str, Any]:
    """The payload object. Raises :class:`PayloadError`."""
    import json

    if not raw.strip():
        raise PayloadError("no hook payload on stdin (expected one JSON object)")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"hook payload on stdin is not JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("hook payload on stdin is nested too deeply") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"hook payload must be a JSON object, got {type(payload).__name__}")
    tool_input = payload.get("tool_input")
    if tool_input is not None and not isinstance(tool_input, dict):
        raise PayloadError("hook payload field tool_input must be an object")
    for key in ("session_id", "tool_name", "cwd"):
        if payload.get(key) is not None and not isinstance(payload[key], str):
            raise PayloadError(f"hook payload field {key} must be a string")
    gated = payload.get("tool_name") in AGENT_TOOLS or payload.get("tool_name") in EDIT_TOOLS
    for key in _TEXT_INPUTS if gated else ():
        if tool_input is not None and tool_input.get(key) is not None \
                and not isinstance(tool_input[key], str):
            raise PayloadError(f"hook payload field tool_input.{key} must be a string")
    return payload


def payload_session(payload: dict[str, Any]) -> str | None:
    """The session: payload ``session_id`` > LEASEHOLD_SESSION > CLAUDE_CODE_SESSION_ID.
    Raises :class:`PayloadError` for a malformed id."""
    from leasehold.config import resolve_session
    from leasehold.errors import InvalidInput

    try:
        session, _ = resolve_session(None, payload_session=payload.get("session_id") or None,
                                     required=False)
    except InvalidInput as exc:
        raise PayloadError(f"hook payload: {exc}") from None
    return session


def enforcing() -> bool:
    """False when ``LEASEHOLD_ENFORCE`` is 0/false/no/off (the rollback switch)."""
    return os.environ.get("LEASEHOLD_ENFORCE", "1").strip().lower() not in _OFF


def open_ledger(settings: Settings, event: str) -> Ledger:
    from leasehold.ledger import Ledger

    return Ledger.from_settings(settings, busy_timeout=settings.busy_timeout or BUSY_TIMEOUTS[event])


def _emit(obj: dict[str, Any]) -> None:
    import json

    _disarm_deadline()
    # ASCII with \u escapes: a lone UTF-16 surrogate from the payload (a string cut inside a
    # surrogate pair) cannot be encoded as UTF-8, and the answer must always get out.
    sys.stdout.write(json.dumps(obj) + "\n")


def _deny(reason: str) -> int:
    _emit({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                  "permissionDecisionReason": reason}})
    return 0


def _context(event: str, text: str) -> int:
    _emit({"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}})
    return 0


# -- the dispatch gate -------------------------------------------------------------------------
def candidate_ids(text: str, settings: Settings | None = None) -> list[str]:
    """The ids ``text`` refers to (:func:`leasehold.hooks.refs.references`: ``#99927``,
    ``task 42``, ``MC #99927``, ``CMB-0036``, ``iv-sz3sf``, mission ids; not ``line 42`` or
    ``owner/repo#42``), with ``reference_keywords`` / ``reference_patterns`` from leasehold.toml.
    Raises :class:`~leasehold.errors.ConfigError` for a malformed setting."""
    from leasehold.hooks.refs import references

    if settings is None:
        return references(text)
    return references(text, *reference_settings(settings))


def reference_settings(settings: Settings) -> tuple[list[str], list[str]]:
    """``(reference_keywords, reference_patterns)`` from leasehold.toml, validated. Raises
    :class:`~leasehold.errors.ConfigError`."""
    from leasehold.errors import ConfigError

    out = []
    for key in ("reference_keywords", "reference_patterns"):
        value = settings.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{key} in {settings.file} must be a list of non-empty strings")
        out.append(value)
    if out[1]:
        import re

        for pattern in out[1]:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"reference_patterns in {settings.file}: {pattern!r}: {exc}") from None
    return out[0], out[1]


def _task_line(task: Task) -> str:
    """One held task for an agent; its title is the holder's free text, quoted as data."""
    from leasehold.model import format_ts
    from leasehold.untrusted import escape, quoted

    title = f" (title: {quoted(task.title, task.lease_holder)})" if task.title else ""
    return (f"task {task.id} is held by {escape(task.lease_holder, 80)} until "
            f"{format_ts(task.lease_until)} (fence {task.fence}){title}")


def _path_line(res: PathReservation, rel: str) -> str:
    """One blocking file reservation for an agent; pattern and reason are the holder's free
    text, quoted as data."""
    from leasehold.model import format_ts
    from leasehold.untrusted import escape, quoted

    reason = f", reason: {quoted(res.reason, res.holder)}" if res.reason else ""
    return (f"{escape(rel, 300)} is reserved by {escape(res.holder, 80)} until "
            f"{format_ts(res.expires_at)} (pattern {quoted(res.pattern, res.holder, 200)}, "
            f"exclusive, fence {res.fence}{reason})")


def _task_advice(tasks: list[Task]) -> str:
    ids = " ".join(t.id for t in tasks)
    return ("Another session is working on this. Do not dispatch a sub-agent onto it: pick other "
            "work (`leasehold list --available`, `leasehold next`), check later "
            f"(`leasehold status {tasks[0].id}`), or ask the user to have the holder release "
            f"it (`leasehold release {ids}` in that session).")


def _path_advice(blocked: list[PathReservation]) -> str:
    from leasehold.untrusted import escape

    pats = " ".join(repr(escape(r.pattern, 200)) for r in blocked)
    return ("Another session has reserved this file. Do not edit it: work on other files, see "
            "`leasehold paths`, or ask the user to have the holder release it "
            f"(`leasehold release-path {pats}` in that session).")


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _audit(settings: Settings | None, record: dict[str, Any]) -> None:
    """Append one JSON line to ``audit_dir/bypass-audit-YYYYMMDD.log`` (UTC date). Raises
    OSError when it cannot."""
    import json

    from leasehold.model import format_ts_precise
    from leasehold.safefiles import PrivateFolder

    now = time.time()
    where = settings.path("audit_dir", cache_home()) if settings is not None else cache_home()
    line = json.dumps({"ts": format_ts_precise(now), **record}, ensure_ascii=False,
                      sort_keys=True) + "\n"
    name = time.strftime("bypass-audit-%Y%m%d.log", time.gmtime(now))
    # whole or not at all (a torn line is cut off under the file's lock and raised), never
    # through a symlink, in the folder that was checked (opened once, files reached through it)
    with PrivateFolder(where) as folder:
        folder.append(name, line.encode("utf-8", "backslashreplace"))  # lone surrogate -> \udXXX


def _actor(settings: Settings | None) -> str | None:
    from leasehold.config import resolve_actor
    from leasehold.errors import InvalidInput

    try:
        return resolve_actor(None, settings)[0]
    except InvalidInput:
        return None


def pre_tool_use(payload: dict[str, Any]) -> int:
    """The gate. Returns the exit code; a denial is printed on stdout."""
    from leasehold.errors import LeaseholdError

    tool = payload.get("tool_name") or ""
    tool_input = payload.get("tool_input") or {}
    if tool not in AGENT_TOOLS and tool not in EDIT_TOOLS:
        return 0
    session = payload_session(payload)
    enforce = enforcing()
    settings = None
    try:
        from leasehold.config import load_settings

        settings = load_settings()
        if tool in AGENT_TOOLS:
            return _gate_agent(payload, tool, tool_input, session, settings, enforce)
        return _gate_edit(payload, tool, tool_input, session, settings, enforce)
    except LeaseholdError as exc:
        _disarm_deadline()
        return _store_failure(payload, tool, tool_input, session, settings, enforce, str(exc),
                              permanent=exc.exit_code in (2, 78))  # a bad leasehold.toml: 2


def _text_field(tool_input: dict[str, Any], key: str) -> str:
    value = tool_input.get(key)
    return value if isinstance(value, str) else ""


def _gate_agent(payload: dict[str, Any], tool: str, tool_input: dict[str, Any],
                session: str | None, settings: Settings, enforce: bool) -> int:
    prompt = _text_field(tool_input, "prompt")
    text = prompt + "\n" + _text_field(tool_input, "description")
    if len(text) > MAX_PROMPT_CHARS:
        why = (f"the sub-agent prompt is {len(text):,} characters long, more than the "
               f"{MAX_PROMPT_CHARS:,} the gate reads, so leasehold cannot tell which tasks it "
               "refers to")
        if enforce:
            return _deny(f"leasehold: {why}. Shorten it: put the bulk in a file and give the "
                         "sub-agent its path.")
        return _context("PreToolUse", f"leasehold (enforcement off, LEASEHOLD_ENFORCE=0): {why}; "
                                      "allowed unchecked.")
    token = str(settings.get("bypass_token") or DEFAULT_BYPASS_TOKEN)
    bypass = token in text
    ids = candidate_ids(text, settings)
    with open_ledger(settings, "pre-tool-use") as ledger:
        held = ledger.held_among(ids) if ids else []
        blocked = [t for t in held if t.lease_session != session]
        if blocked and session:  # teammates the holder shared the lease with pass
            shared = ledger.shared_among([t.id for t in blocked])
            blocked = [t for t in blocked if session not in shared.get(t.id, ())]
        if not blocked and not bypass:
            return 0
        record = {"session": session, "actor": _actor(settings), "tool": tool,
                  "tasks": [{"id": t.id, "holder": t.lease_holder, "fence": t.fence,
                             "lease_until": t.lease_until} for t in blocked],
                  "prompt_sha256": _sha256(prompt), "cwd": payload.get("cwd")}
        lines = "; ".join(_task_line(t) for t in blocked)
        if bypass:
            record["kind"] = "bypass"
            record["via"] = "token"
            return _audited_allow(ledger, settings, record, blocked, enforce, None)
        if not enforce:
            record["kind"] = "enforce_off"
            record["via"] = "LEASEHOLD_ENFORCE=0"
            note = (f"leasehold (enforcement off, LEASEHOLD_ENFORCE=0): this call would have been "
                    f"denied: {lines}. Prefer other work; the override is audited.")
            return _audited_allow(ledger, settings, record, blocked, enforce, note)
        return _deny(f"leasehold: {lines}. {_task_advice(blocked)}")


def _audited_allow(ledger: Ledger, settings: Settings, record: dict[str, Any], blocked: list[Task],
                   enforce: bool, note: str | None) -> int:
    from leasehold.errors import LeaseholdError
    from leasehold.model import Holder

    try:
        _audit(settings, record)
    except OSError as exc:
        if enforce:
            return _deny(f"leasehold: the bypass could not be audited ({exc}); it is refused. "
                         "Fix the audit folder (setting audit_dir) and retry.")
        note = (note or "") + f" (audit log not written: {exc})"
    holder = None
    if record.get("actor") and record.get("session"):
        holder = Holder(record["actor"], record["session"])
    details = {"tool": record["tool"], "via": record["via"], "prompt_sha256": record.get("prompt_sha256")}
    if record.get("paths"):
        details["paths"] = record["paths"]
    try:
        ledger.record_bypass(blocked, holder, details)
    except LeaseholdError as exc:
        _disarm_deadline()
        # Audited once in the file already: the ledger's copy is missing, the call still goes
        # ahead (the store-failure path must not audit it a second time).
        note = (note or "leasehold: allowed by the bypass token (audited).") + (
            f" (the ledger did not record the bypass event: {' '.join(str(exc).split())})")
    if note:
        return _context("PreToolUse", note)
    return 0


def _gate_edit(payload: dict[str, Any], tool: str, tool_input: dict[str, Any],
               session: str | None, settings: Settings, enforce: bool) -> int:
    from leasehold import paths

    file_path = _text_field(tool_input, "file_path") or _text_field(tool_input, "notebook_path")
    if not file_path:
        return 0
    candidates = paths.gate_paths(file_path, payload.get("cwd") or None)
    if not candidates:
        return 0
    rel = candidates[0]
    with open_ledger(settings, "pre-tool-use") as ledger:
        others = ledger.store.exclusive_paths_not_of_session(session or "")
        blocked: list[PathReservation] = []
        for candidate in candidates if others else ():  # as written, then symlinks resolved
            found = [r for r in paths.blocking(others, candidate) if r not in blocked]
            if found and not blocked:
                rel = candidate if candidate == candidates[0] else f"{candidates[0]} (= {candidate})"
            blocked += found
        if not blocked:
            return 0
        lines = "; ".join(_path_line(r, rel) for r in blocked)
        if enforce:
            return _deny(f"leasehold: {lines}. {_path_advice(blocked)}")
        record = {"kind": "enforce_off", "via": "LEASEHOLD_ENFORCE=0", "session": session,
                  "actor": _actor(settings), "tool": tool, "tasks": [], "file": rel,
                  "paths": [{"pattern": r.pattern, "holder": r.holder, "fence": r.fence,
                             "expires_at": r.expires_at} for r in blocked],
                  "cwd": payload.get("cwd")}
        note = (f"leasehold (enforcement off, LEASEHOLD_ENFORCE=0): this edit would have been "
                f"denied: {lines}. Prefer other files; the override is audited.")
        return _audited_allow(ledger, settings, record, [], enforce, note)


def _store_failure(payload: dict[str, Any], tool: str, tool_input: dict[str, Any],
                   session: str | None, settings: Settings | None, enforce: bool,
                   error: str, permanent: bool = False) -> int:
    """The ledger cannot answer: fail closed unless enforcement is off or the bypass token is
    given (both audited to the file; the ledger cannot record them). ``permanent``: a
    configuration error (a missing ledger, a file that is not one): the advice is to fix it,
    not to retry."""
    prompt = _text_field(tool_input, "prompt") if tool in AGENT_TOOLS else ""
    token = DEFAULT_BYPASS_TOKEN
    if settings is not None and settings.get("bypass_token"):
        token = str(settings.get("bypass_token"))
    bypass = tool in AGENT_TOOLS and token in prompt + "\n" + _text_field(tool_input, "description")
    if enforce and not bypass and permanent:
        return _deny(
            f"leasehold cannot check this call: {error}. The gate fails closed, so the call is "
            "denied, and retrying will not help: this is a configuration error. Tell the user "
            "to fix it as the message says (`leasehold whoami` shows which ledger is configured "
            "and from where; `leasehold init` creates a missing one), or to switch enforcement "
            "off with LEASEHOLD_ENFORCE=0."
        )
    if enforce and not bypass:
        return _deny(
            f"leasehold cannot check this call: {error}. The gate fails closed, so the call is "
            "denied. Retry shortly; if the ledger stays unreachable, tell the user: fix the ledger "
            "(`leasehold whoami` shows which one is used) or switch enforcement off with "
            "LEASEHOLD_ENFORCE=0."
        )
    record: dict[str, Any] = {"kind": "bypass" if bypass else "enforce_off",
              "via": "token" if bypass else "LEASEHOLD_ENFORCE=0", "session": session,
              "tool": tool, "tasks": [], "store_error": error, "cwd": payload.get("cwd")}
    if prompt:
        record["prompt_sha256"] = _sha256(prompt)
    note = f"leasehold could not check this call ({error}); allowed because " + (
        "of the bypass token (audited)." if bypass else "enforcement is off (LEASEHOLD_ENFORCE=0).")
    try:
        _audit(settings, record)
    except OSError as exc:
        if enforce:
            return _deny(f"leasehold cannot check this call ({error}) and cannot audit the bypass "
                         f"({exc}); the call is denied.")
        note += f" (audit log not written: {exc})"
    return _context("PreToolUse", note)


# -- heartbeat ---------------------------------------------------------------------------------
def post_tool_use(payload: dict[str, Any]) -> int:
    """Extend this session's leases and reservations when the heartbeat is due."""
    from leasehold.config import load_settings

    session = payload_session(payload)
    if session is None:
        return 0
    settings = load_settings()
    interval = settings.seconds("heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL)
    path = state_file(settings.path("state_dir", default_state_dir()), session)
    if _not_due(path):
        return 0
    with open_ledger(settings, "post-tool-use") as ledger:
        ledger.heartbeat_session(session)
    try:
        _mark_due(path, time.time() + interval)
    except OSError as exc:
        sys.stderr.write(f"leasehold hook post-tool-use: heartbeat sent, but the throttle file "
                         f"cannot be written: {exc}\n")
        return 1
    return 0


# -- session start / end -----------------------------------------------------------------------
def session_start(payload: dict[str, Any]) -> int:
    """Tell the agent what it holds and what others hold (compact)."""
    from leasehold import paths
    from leasehold.config import load_settings
    from leasehold.errors import LeaseholdError
    from leasehold.model import format_ts
    from leasehold.untrusted import escape, quoted

    session = payload_session(payload)
    try:
        settings = load_settings()
        with open_ledger(settings, "session-start") as ledger:
            groups = ledger.who()
            reservations = paths.active(ledger)
    except LeaseholdError as exc:
        _disarm_deadline()
        problem = ("is misconfigured" if exc.exit_code == 78 else "cannot be reached")
        return _context("SessionStart", f"leasehold: the ledger {problem} ({exc}); the "
                        "dispatch gate will deny sub-agent dispatch and edits until it can.")
    actor = _actor(settings)
    me = f"{actor}:{session}" if actor and session else (session or "(no session)")
    lines = [f"leasehold: you are {me}. Claim a task before working on it "
             "(`leasehold claim ID`); reserve files with `leasehold reserve-path GLOB`. "
             + SESSION_NOTES.get(str(payload.get("leasehold_runtime")), SESSION_NOTES["claude"])
             .format(session=session)]
    from leasehold.hooks import resume

    released = resume.note(settings, session, payload)
    if released:
        lines.append(released)
    mine = [t for _, tasks in groups for t in tasks if t.lease_session == session]
    my_paths = [r for r in reservations if r.session == session]
    if mine or my_paths:
        items = [f"{t.id} until {format_ts(t.lease_until)}" for t in mine]
        items += [f"path {escape(r.pattern, 200)!r} until {format_ts(r.expires_at)}" for r in my_paths]
        lines.append("You hold: " + ", ".join(items) + ".")
    others = [(h, tasks) for h, tasks in groups if tasks and tasks[0].lease_session != session]
    other_paths = [r for r in reservations if r.session != session]
    if others or other_paths:
        lines.append("Held by other sessions (do not dispatch onto or edit these):")
        shown = 0
        for holder, tasks in others:
            if shown >= 20:
                break
            ids = ", ".join(t.id for t in tasks[:10]) + (f" +{len(tasks) - 10} more" if len(tasks) > 10 else "")
            lines.append(f"- {escape(holder, 80)}: {ids}")
            shown += 1
        for r in other_paths[:20]:
            kind = "exclusive" if r.exclusive else "shared"
            lines.append(f"- {escape(r.holder, 80)}: path {quoted(r.pattern, r.holder, 200)} ({kind}) "
                         f"until {format_ts(r.expires_at)}")
        hidden = max(0, len(others) - 20) + max(0, len(other_paths) - 20)
        if hidden:
            lines.append(f"- ... {hidden} more: `leasehold who`, `leasehold paths`")
    else:
        lines.append("No other session holds anything.")
    return _context("SessionStart", "\n".join(lines))


def session_end(payload: dict[str, Any]) -> int:
    """Release everything this session holds (best effort: expiry is the backstop)."""
    from leasehold.config import load_settings

    session = payload_session(payload)
    if session is None:
        sys.stderr.write("leasehold hook session-end: no session id; nothing released\n")
        return 1
    settings = load_settings()
    with open_ledger(settings, "session-end") as ledger:
        tasks, reservations = ledger.release_session(session)
    from leasehold.hooks import resume

    resume.record(settings, session, payload.get("cwd") if isinstance(payload.get("cwd"), str)
                  else None, tasks, reservations, payload.get("reason"))
    sys.stderr.write(f"leasehold: released {len(tasks)} lease(s) and {len(reservations)} "
                     f"file reservation(s) of session {session}\n")
    return 0


HANDLERS = {
    "pre-tool-use": pre_tool_use,
    "post-tool-use": post_tool_use,
    "session-start": session_start,
    "session-end": session_end,
}


def run(event: str, raw: bytes | None = None) -> int:
    """Run hook ``event`` on the payload ``raw`` (default: stdin). Returns the exit code:
    0 (allowed, or denied through stdout), 1 (a non-blocking error, one line on stderr)."""
    if raw is None:
        if sys.stdin is None:  # started with no standard input at all (fd 0 closed)
            sys.stderr.write(f"leasehold hook {event}: cannot read stdin: it is closed\n")
            return 1
        try:
            raw = sys.stdin.buffer.read()
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"leasehold hook {event}: cannot read stdin: {exc}\n")
            return 1
    if event == "post-tool-use" and throttled_fast(raw):
        return 0
    if event == "pre-tool-use":
        from leasehold.hooks.fast import pre_tool_use_fast

        code = pre_tool_use_fast(raw)
        if code is not None:
            return code
    from leasehold.errors import LeaseholdError

    try:
        payload = parse_payload(raw)
        _arm_deadline(event)
        return HANDLERS[event](payload)
    except PayloadError as exc:
        _disarm_deadline()
        sys.stderr.write(f"leasehold hook {event}: {exc}\n")
        return 1
    except LeaseholdError as exc:
        _disarm_deadline()
        sys.stderr.write(f"leasehold hook {event}: {' '.join(str(exc).splitlines())}\n")
        return 1
    except KeyboardInterrupt:
        _disarm_deadline()
        return 130
    except Exception as exc:  # the last line of defence: never a traceback
        _disarm_deadline()
        message = f"internal error: {type(exc).__name__}: {exc}"
        if event == "pre-tool-use" and enforcing():
            try:
                return _deny(f"leasehold could not check this call ({message}). The gate fails "
                             "closed; tell the user (LEASEHOLD_ENFORCE=0 switches it off).")
            except Exception:
                pass
        sys.stderr.write(f"leasehold hook {event}: {message}\n")
        return 1
    finally:
        _disarm_deadline()
