"""Merge leasehold's hook entries into the hook files of Claude Code, Codex CLI and Gemini CLI,
and take them out again. All three use one shape: ``{"hooks": {EVENT: [{"matcher": ...,
"hooks": [{"type": "command", "command": ...}]}]}}``.

Every command is the **absolute path** of the ``leasehold`` executable (:func:`executable`)
followed by ``hook EVENT`` (Claude Code) or ``hook codex`` / ``hook gemini``: a bare
``leasehold`` that is not on the runtime's PATH is a non-blocking hook error, i.e. an open gate.

Files: Claude Code (scopes, merged by Claude Code): ``project`` -> ``.claude/settings.json``,
``local`` -> ``.claude/settings.local.json`` (both under the project root: the nearest folder
above the working directory holding ``.git``, else ``$CLAUDE_PROJECT_DIR``, else the working
directory), ``user`` -> ``~/.claude/settings.json``. Codex: ``project`` ->
``<root>/.codex/hooks.json``, ``user`` -> ``~/.codex/hooks.json`` (``$CODEX_HOME``). Gemini CLI:
``project`` -> ``<root>/.gemini/settings.json``, ``user`` -> ``~/.gemini/settings.json``.

Rules: install is idempotent and only appends (one matcher group per event, at the end of the
event's list); it keeps every other key, never removes or reorders a hook it did not write, and
refuses a file that is not a JSON object. Uninstall removes exactly the handlers whose command
is leasehold's for that event, then the groups, event lists and ``hooks`` object that this left
empty; a file install created and uninstall emptied is deleted. Our entries are recognised by
their command: a program named ``leasehold`` (any folder) with the arguments ``hook EVENT``;
an entry of an older install (a bare ``leasehold``, or another path) is updated in place.
"""

from __future__ import annotations

import json
import os

from leasehold.errors import InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCOPES = ("project", "local", "user")
RUNTIMES = ("claude", "codex", "gemini")
#: Scopes each runtime has.
RUNTIME_SCOPES = {"claude": SCOPES, "codex": ("project", "user"), "gemini": ("project", "user")}
PRE_MATCHER = "^(Agent|Task|Edit|Write|MultiEdit|NotebookEdit)$"
POST_MATCHER = "^(Bash|PowerShell|Edit|Write|MultiEdit|NotebookEdit)$"
#: Codex: a matcher of letters, digits, ``_`` and ``|`` is an exact match on the tool name.
CODEX_PRE_MATCHER = "apply_patch|spawn_agent"
#: Gemini CLI: an unanchored JavaScript regular expression on the tool name.
GEMINI_BEFORE_MATCHER = "^(write_file|replace|invoke_agent|delegate_to_agent)$"


def executable() -> str:
    """The absolute path of the running ``leasehold`` program: the console script being run
    (``sys.argv[0]``) when it is one, else the one installed beside this interpreter (same
    installation), else ``leasehold`` on PATH. Raises :class:`~leasehold.errors.ConfigError` when none is found."""
    import shutil
    import sys

    from leasehold.errors import ConfigError

    candidates = []
    if sys.argv and os.path.basename(sys.argv[0]).startswith("leasehold"):
        candidates.append(sys.argv[0])
    candidates.append(os.path.join(os.path.dirname(sys.executable), "leasehold"))
    found = shutil.which("leasehold")
    if found:
        candidates.append(found)
    for path in candidates:
        path = os.path.abspath(path)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise ConfigError("cannot find the leasehold executable to write into the hooks; install "
                      "leasehold (pip install) so that a 'leasehold' program exists")


def _quote(path: str) -> str:
    import shlex

    return shlex.quote(path)


def command(event: str, exe: str | None = None) -> str:
    """The hook command of ``event`` (a Claude Code event name, or ``codex`` / ``gemini``)."""
    return f"{_quote(exe or executable())} hook {event}"


def is_ours(cmd: Any, event: str) -> bool:
    """True when ``cmd`` runs leasehold's ``hook EVENT`` (whatever the program's folder)."""
    import shlex

    if not isinstance(cmd, str):
        return False
    try:
        words = shlex.split(cmd)
    except ValueError:
        return False
    return (len(words) == 3 and words[1:] == ["hook", event]
            and os.path.basename(words[0]).startswith("leasehold"))


def program(cmd: str) -> str | None:
    """The program a hook command runs (its first word), or None."""
    import shlex

    try:
        words = shlex.split(cmd)
    except ValueError:
        return None
    return words[0] if words else None


def entries(runtime: str = "claude", exe: str | None = None) -> dict[str, dict[str, Any]]:
    """Event name -> the matcher group leasehold installs for ``runtime``."""
    exe = exe or executable()
    if runtime == "codex":
        cmd = command("codex", exe)
        return {
            "SessionStart": {"hooks": [{"type": "command", "command": cmd, "timeout": 10}]},
            "PreToolUse": {"matcher": CODEX_PRE_MATCHER, "hooks": [
                {"type": "command", "command": cmd, "timeout": 10,
                 "statusMessage": "Checking leases"}]},
            "PostToolUse": {"hooks": [{"type": "command", "command": cmd, "timeout": 10}]},
            "Stop": {"hooks": [{"type": "command", "command": cmd, "timeout": 10}]},
            # Codex caps a SessionEnd hook's timeout at 3 s (the release has its own 1.1 s deadline)
            "SessionEnd": {"hooks": [{"type": "command", "command": cmd, "timeout": 3}]},
        }
    if runtime == "gemini":
        cmd = command("gemini", exe)

        def hook(name: str, timeout_ms: int, text: str) -> dict[str, Any]:
            return {"name": name, "type": "command", "command": cmd, "timeout": timeout_ms,
                    "description": text}

        return {
            "SessionStart": {"matcher": "*", "hooks": [hook(
                "leasehold-session-start", 10000, "Report leases held by this session")]},
            "BeforeTool": {"matcher": GEMINI_BEFORE_MATCHER, "hooks": [hook(
                "leasehold-before-tool", 10000,
                "Deny edits of reserved files and sub-agents sent onto held tasks")]},
            "AfterTool": {"matcher": "*", "hooks": [hook(
                "leasehold-after-tool", 10000, "Heartbeat leases held by this session")]},
            "SessionEnd": {"matcher": "*", "hooks": [hook(
                "leasehold-session-end", 5000, "Release leases held by this session")]},
        }
    return {
        "PreToolUse": {"matcher": PRE_MATCHER, "hooks": [
            {"type": "command", "command": command("pre-tool-use", exe), "timeout": 10}]},
        "PostToolUse": {"matcher": POST_MATCHER, "hooks": [
            {"type": "command", "command": command("post-tool-use", exe), "async": True, "timeout": 10}]},
        "SessionStart": {"hooks": [
            {"type": "command", "command": command("session-start", exe), "timeout": 10}]},
        "SessionEnd": {"hooks": [
            {"type": "command", "command": command("session-end", exe), "timeout": 2}]},
    }


#: The ``hook`` argument of leasehold's command for each event of each runtime.
HOOK_ARGS = {
    "claude": {"PreToolUse": "pre-tool-use", "PostToolUse": "post-tool-use",
               "SessionStart": "session-start", "SessionEnd": "session-end"},
    "codex": dict.fromkeys(("SessionStart", "PreToolUse", "PostToolUse", "Stop", "SessionEnd"), "codex"),
    "gemini": dict.fromkeys(("SessionStart", "BeforeTool", "AfterTool", "SessionEnd"), "gemini"),
}


def _mine(runtime: str, event: str, handler: Any) -> bool:
    arg = HOOK_ARGS[runtime].get(event)
    return arg is not None and isinstance(handler, dict) and is_ours(handler.get("command"), arg)


def project_root(cwd: str | None = None) -> str:
    folder = os.path.abspath(cwd or os.getcwd())
    probe = folder
    while True:
        if os.path.exists(os.path.join(probe, ".git")):
            return probe
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return os.environ.get("CLAUDE_PROJECT_DIR") or folder


def settings_path(scope: str, cwd: str | None = None, runtime: str = "claude") -> str:
    """The hook file of ``runtime`` in ``scope``. Raises :class:`InvalidInput` for an unknown
    scope or runtime."""
    if runtime not in RUNTIMES:
        raise InvalidInput(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if scope not in RUNTIME_SCOPES[runtime]:
        raise InvalidInput(f"{runtime} has no {scope!r} scope; use one of "
                           f"{', '.join(RUNTIME_SCOPES[runtime])}")
    if runtime == "codex":
        if scope == "user":
            home = os.environ.get("CODEX_HOME") or os.path.join(os.path.expanduser("~"), ".codex")
            return os.path.join(home, "hooks.json")
        return os.path.join(project_root(cwd), ".codex", "hooks.json")
    if runtime == "gemini":
        if scope == "user":
            return os.path.join(os.path.expanduser("~"), ".gemini", "settings.json")
        return os.path.join(project_root(cwd), ".gemini", "settings.json")
    if scope == "user":
        return os.path.join(os.path.expanduser("~"), ".claude", "settings.json")
    if scope == "project":
        return os.path.join(project_root(cwd), ".claude", "settings.json")
    if scope == "local":
        return os.path.join(project_root(cwd), ".claude", "settings.local.json")
    raise InvalidInput(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")


#: Runtimes whose settings files may hold comments (Gemini CLI reads its settings through
#: ``strip-json-comments``); the others' files must be plain JSON, as their runtimes require.
COMMENTS_OK = ("gemini",)


#: The largest hook/settings file leasehold reads (bytes): such files are a few kilobytes.
MAX_SETTINGS_BYTES = 16 * 1024 * 1024


def read_text(path: str, limit: int = MAX_SETTINGS_BYTES) -> str:
    """The UTF-8 text of the regular file ``path`` (:func:`leasehold.safefiles.read_regular`:
    no FIFO blocks it, a symlink to ``/dev/zero`` is not read forever). Raises
    :class:`FileNotFoundError`, :class:`OSError` or :class:`UnicodeDecodeError`."""
    from leasehold.safefiles import read_regular

    return read_regular(path, limit).decode("utf-8")


def _load(path: str, runtime: str = "claude") -> tuple[str | None, dict[str, Any] | None]:
    """``(text, value)`` of the hook file, ``(None, None)`` when it does not exist. Raises
    :class:`InvalidInput` for anything but a JSON object with well-formed ``hooks`` (comments
    allowed in Gemini CLI's file)."""
    try:
        text = read_text(path)
    except FileNotFoundError:
        return None, None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {exc.start}); fix it first, nothing "
                           "was changed") from None
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise InvalidInput(f"cannot read {path}: {why}; nothing was changed" if exc.strerror else
                           f"{why}; nothing was changed") from None
    if not text.strip():
        return text, {}
    try:
        data = json.loads(text)
    except RecursionError:
        raise InvalidInput(f"{path} is nested too deeply to be a settings file; nothing was changed") from None
    except ValueError as exc:
        if runtime not in COMMENTS_OK:
            raise InvalidInput(f"{path} is not valid JSON ({exc}); fix it first, nothing was changed") from None
        from leasehold.hooks import jsonedit

        try:  # JSON with comments, as Gemini CLI reads it
            data = jsonedit.value(text)
        except ValueError as exc2:
            raise InvalidInput(f"{path} is not valid JSON, even allowing comments ({exc2}); fix "
                               "it first, nothing was changed") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} must hold a JSON object; nothing was changed")
    hooks = data.get("hooks", {})
    if not isinstance(hooks, dict):
        raise InvalidInput(f"{path}: 'hooks' must be an object; nothing was changed")
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            raise InvalidInput(f"{path}: hooks.{event} must be a list; nothing was changed")
    return text, data


def read_settings(path: str, runtime: str = "claude") -> dict[str, Any] | None:
    """The file's JSON object, or None when the file does not exist. Raises
    :class:`InvalidInput` for anything but a JSON object with well-formed ``hooks`` (comments
    are allowed in a Gemini CLI file: ``runtime="gemini"``)."""
    return _load(path, runtime)[1]


def _write(path: str, text: str) -> None:
    """Replace the file atomically with ``text`` (UTF-8) through :func:`write_bytes`. Raises
    :class:`InvalidInput` for text that cannot be encoded or a file that cannot be written; the
    file is then unchanged."""
    try:
        payload = text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"cannot write {path}: text that is not UTF-8; nothing was changed") from None
    write_bytes(path, payload)


def write_bytes(path: str, payload: bytes) -> None:
    """Replace the file atomically: through a symbolic link (a dotfiles repository's file stays
    linked), keeping the file's permission bits. Raises :class:`InvalidInput` for a read-only
    file or when it cannot be written; the file is then unchanged."""
    real = os.path.realpath(path)
    try:
        mode: int | None = os.stat(real).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}; nothing was changed") from None
    if mode is not None and not mode & 0o222:
        raise InvalidInput(f"{path} is read-only; nothing was changed")
    import tempfile

    if mode is None:  # a new file gets the usual permissions (mkstemp's are 0600)
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    tmp = None
    try:
        os.makedirs(os.path.dirname(real), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", suffix=".leasehold.tmp",
                                   dir=os.path.dirname(real))
        with open(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
            fh.write(payload)
        os.replace(tmp, real)
    except OSError as exc:
        try:
            if tmp is not None:
                os.remove(tmp)
        except OSError:
            pass
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}; nothing was changed") from None


def _dump(data: dict[str, Any]) -> str:
    """The whole file from ``data`` (a new file, or the fallback of :func:`_spliced`)."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate read from a \udXXX escape: written back escaped
        text = json.dumps(data, indent=2) + "\n"
    return text


def _plain(text: str) -> bool:
    """True when ``text`` is plain JSON (no comments, trailing commas or other JSON5)."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _value(text: str, runtime: str) -> Any:
    """The value of ``text`` read as :func:`_load` reads it: plain JSON first (surrogate pairs
    joined, as JSON reads them), then JSON with comments for a runtime that allows them.
    Raises :class:`ValueError`."""
    from leasehold.hooks import jsonedit

    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError:
        if runtime not in COMMENTS_OK:
            raise
    return jsonedit.value(text)


def _spliced(path: str, text: str, edit: Any, expected: dict[str, Any], runtime: str) -> str:
    """``text`` with the edits ``edit(model root, editor)`` made; checked to hold exactly
    ``expected``. When the splice cannot be made, a plain JSON file is written whole from
    ``expected`` (never a wrong file); a file with comments is refused
    (:class:`InvalidInput`: nothing is written) rather than lose them."""
    from leasehold.hooks import jsonedit

    try:
        model = jsonedit.parse(text)
        editor = jsonedit.Editor(text)
        edit(model.value, editor)
        out = editor.result()
        got = _value(out, runtime)
    except (ValueError, AttributeError, IndexError, AssertionError):
        got, out = None, ""
    if got == expected:
        return out
    if not _plain(text):
        raise InvalidInput(f"cannot change {path} without losing its comments; edit leasehold's "
                           "entries by hand (see 'leasehold hooks install --help'), nothing was changed")
    return _dump(expected)


def _node(root: Any, *path: str | int) -> Any:
    """The model value at ``path`` (object keys and array indexes) under ``root``."""
    from leasehold.hooks import jsonedit

    node = root
    for step in path:
        if isinstance(step, int):
            node = jsonedit.children(node)[step]
        else:
            node = jsonedit.member(node, step).value
    return node


def _refuse_duplicates(path: str, text: str | None) -> None:
    """Raise :class:`InvalidInput` when the file holds a key leasehold edits (the top-level
    ``hooks``, an event name in it) twice: JSON readers disagree on which one counts, and
    editing one could silently drop or revive the other."""
    if not text or not text.strip():
        return
    from leasehold.hooks import jsonedit

    def dups(keys: list[Any]) -> list[str]:
        seen: set[Any] = set()
        return [k for k in keys if k in seen or seen.add(k)]  # type: ignore[func-returns-value]

    if _plain(text):
        class Obj(dict):  # type: ignore[type-arg]
            twice: list[str] = []

        def pairs(items: list[tuple[str, Any]]) -> Obj:
            obj = Obj(items)
            obj.twice = dups([k for k, _ in items])
            return obj

        root = json.loads(text, object_pairs_hook=pairs)
        top = root.twice if isinstance(root, Obj) else []
        hooks = root.get("hooks") if isinstance(root, dict) else None
        inner = hooks.twice if isinstance(hooks, Obj) else []
    else:
        model = jsonedit.parse(text).value
        kids = jsonedit.children(model) if hasattr(model, "key_value_pairs") else []
        top = dups([jsonedit.key_of(p) for p in kids])
        member = jsonedit.member(model, "hooks") if kids else None
        value = member.value if member is not None else None
        inner = dups([jsonedit.key_of(p) for p in jsonedit.children(value)]) \
            if hasattr(value, "key_value_pairs") else []
    key = "hooks" if "hooks" in top else f"hooks.{inner[0]}" if inner else None
    if key is not None:
        raise InvalidInput(f"{path} holds the key {key} twice (JSON readers disagree on which one "
                           "counts); remove one, nothing was changed")


def _handlers(groups: list[Any], runtime: str, event: str) -> list[dict[str, Any]]:
    """leasehold's handlers among ``groups`` (the objects themselves, to update in place)."""
    return [h for g in groups if isinstance(g, dict) and isinstance(g.get("hooks"), list)
            for h in g["hooks"] if _mine(runtime, event, h)]


def install(scope: str, cwd: str | None = None, runtime: str = "claude",
            exe: str | None = None) -> tuple[str, list[str]]:
    """Merge the entries into the scope's hook file of ``runtime``; an entry of leasehold's
    with another command (an older install: a bare ``leasehold``) gets the current one.
    Returns ``(path, events added or updated)`` (empty when all were there already: the file
    is then not written). Only the changed entries are written: every other byte of the file
    (indentation, spacing, escapes, comments in Gemini CLI's file) stays as it was. Raises
    :class:`InvalidInput` (a file that is not a JSON object, read-only...) or
    :class:`~leasehold.errors.ConfigError` (no leasehold executable)."""
    import copy

    path = settings_path(scope, cwd, runtime)
    text, original = _load(path, runtime)
    _refuse_duplicates(path, text)
    data = copy.deepcopy(original) if original is not None else {}
    hooks = data.setdefault("hooks", {})
    added = []
    updates: list[tuple[tuple[str | int, ...], str]] = []  # (path of a command, new command)
    appends: dict[str, list[dict[str, Any]]] = {}  # event -> groups added to its list
    new_events: dict[str, list[dict[str, Any]]] = {}  # event -> its new list
    for event, group in entries(runtime, exe).items():
        existed = event in hooks
        groups = hooks.setdefault(event, [])
        wanted = group["hooks"][0]["command"]
        mine = [(gi, hi) for gi, g in enumerate(groups)
                if isinstance(g, dict) and isinstance(g.get("hooks"), list)
                for hi, h in enumerate(g["hooks"]) if _mine(runtime, event, h)]
        if mine:
            stale = [(gi, hi) for gi, hi in mine if groups[gi]["hooks"][hi].get("command") != wanted]
            for gi, hi in stale:
                groups[gi]["hooks"][hi]["command"] = wanted
                updates.append((("hooks", event, gi, "hooks", hi, "command"), wanted))
            if stale:
                added.append(event)
            continue
        groups.append(group)
        (appends.setdefault(event, []) if existed else new_events.setdefault(event, [])).append(group)
        added.append(event)
    if not added:
        return path, []
    if not text or not text.strip():
        _write(path, _dump(data))
        return path, added

    def edit(root: Any, editor: Any) -> None:
        from leasehold.hooks import jsonedit

        for where, command_text in updates:
            editor.replace(_node(root, *where), command_text)
        for event, groups in appends.items():
            editor.append(_node(root, "hooks", event), groups)
        if new_events:
            if jsonedit.member(root, "hooks") is not None:
                editor.append(_node(root, "hooks"), list(new_events.values()), list(new_events))
            else:
                editor.append(root, [new_events], ["hooks"])

    _write(path, _spliced(path, text, edit, data, runtime))
    return path, added


def uninstall(scope: str, cwd: str | None = None, runtime: str = "claude") -> tuple[str, list[str]]:
    """Remove leasehold's handlers from the scope's hook file of ``runtime``, and what that
    left empty (every other byte of the file stays as it was). Returns ``(path, events
    removed)``."""
    import copy

    path = settings_path(scope, cwd, runtime)
    text, original = _load(path, runtime)
    if original is None or not isinstance(original.get("hooks"), dict):
        return path, []
    _refuse_duplicates(path, text)
    from leasehold.hooks import jsonedit

    assert text is not None
    data = copy.deepcopy(original)
    hooks = data["hooks"]
    # a file with comments (Gemini CLI's): the model, to keep what holds comments
    commented = None if _plain(text) else jsonedit.parse(text).value
    removed = []
    cuts: list[tuple[tuple[str | int, ...], list[int]]] = []  # (container path, child indexes)
    gone_events: list[int] = []
    event_names = list(hooks)
    for event in HOOK_ARGS[runtime]:
        groups = hooks.get(event)
        if not isinstance(groups, list) or not _handlers(groups, runtime, event):
            continue
        kept = []
        gone_groups = []
        for gi, group in enumerate(groups):
            if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                doomed = [hi for hi, h in enumerate(group["hooks"]) if _mine(runtime, event, h)]
                if doomed:
                    if len(doomed) == len(group["hooks"]):
                        gone_groups.append(gi)
                        continue
                    cuts.append((("hooks", event, gi, "hooks"), doomed))
                    group = dict(group, hooks=[h for hi, h in enumerate(group["hooks"])
                                               if hi not in doomed])
            kept.append(group)
        if kept:
            hooks[event] = kept
            if gone_groups:
                cuts.append((("hooks", event), gone_groups))
        elif commented is not None and jsonedit.has_comments(_node(commented, "hooks", event), text):
            hooks[event] = []  # emptied, but it holds comments: kept, with them
            cuts.append((("hooks", event), list(range(len(groups)))))
        else:
            del hooks[event]
            gone_events.append(event_names.index(event))
        removed.append(event)
    if not removed:
        return path, []
    if not hooks:
        if commented is not None and jsonedit.has_comments(_node(commented, "hooks"), text):
            pass  # an empty hooks object with comments of its own stays
        else:
            del data["hooks"]
    if not data and commented is None:  # nothing else in a plain JSON file: it goes
        os.remove(path)
        return path, removed

    def edit(root: Any, editor: Any) -> None:
        from leasehold.hooks import jsonedit

        for where, indexes in cuts:
            container = _node(root, *where)
            kids = jsonedit.children(container)
            editor.remove(container, [kids[i] for i in indexes])
        if "hooks" not in data:
            editor.remove(root, [jsonedit.member(root, "hooks")])
        elif gone_events:
            container = _node(root, "hooks")
            pairs = jsonedit.children(container)
            editor.remove(container, [p for p in pairs if jsonedit.key_of(p) in
                                      {event_names[i] for i in gone_events}])

    assert text is not None
    _write(path, _spliced(path, text, edit, data, runtime))
    return path, removed


def missing_text(info: dict[str, Any]) -> str | None:
    """One line for the events a :func:`show` entry lacks (``info["missing"]``), with the
    command that adds them; None when nothing is missing."""
    if not info.get("missing"):
        return None
    flag = "" if info["runtime"] == "claude" else f" --runtime {info['runtime']}"
    return (f"{', '.join(info['missing'])} not installed (an older install); fix: leasehold hooks "
            f"install{flag} --scope {info['scope']}")


def show(cwd: str | None = None, runtimes: tuple[str, ...] = RUNTIMES) -> list[dict[str, Any]]:
    """For each runtime and scope: its file, whether it exists, which of leasehold's events are
    installed, how many other handlers each event has, and ``problems``: why installed hooks
    cannot run (:func:`leasehold.hooks.health.problems`)."""
    from leasehold.hooks import health

    out = []
    for runtime in runtimes:
        for scope in RUNTIME_SCOPES[runtime]:
            path = settings_path(scope, cwd, runtime)
            info: dict[str, Any] = {"runtime": runtime, "scope": scope, "path": path,
                                    "exists": os.path.exists(path), "installed": [],
                                    "other_handlers": {}, "commands": [], "error": None,
                                    "problems": [], "missing": [], "notes": []}
            try:
                data = read_settings(path, runtime) or {}
            except InvalidInput as exc:
                info["error"] = str(exc)
                out.append(info)
                continue
            hooks = data.get("hooks") or {}
            for event, groups in hooks.items():
                others = 0
                for group in groups:
                    if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                        others += sum(1 for h in group["hooks"] if not _mine(runtime, event, h))
                mine = _handlers(groups, runtime, event)
                if mine:
                    info["installed"].append(event)
                    for handler in mine:
                        if handler.get("command") not in info["commands"]:
                            info["commands"].append(handler.get("command"))
                if others:
                    info["other_handlers"][event] = others
            if info["installed"]:
                info["problems"] = health.problems(runtime, scope, path, info["commands"], cwd)
                # an install from an older leasehold (Codex's SessionEnd came later): the hooks
                # it has run, so this is not a problem (cannot run) but reported on its own
                info["missing"] = [e for e in HOOK_ARGS[runtime] if e not in info["installed"]]
                if runtime == "codex":
                    info["notes"] = [health.CODEX_TRUST_NOTE]
            out.append(info)
    return out
