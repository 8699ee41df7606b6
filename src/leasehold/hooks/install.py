"""Merge leasehold's hook entries into Claude Code settings files, and take them out again.

Scopes (Claude Code merges the hooks of all three): ``project`` -> ``.claude/settings.json``,
``local`` -> ``.claude/settings.local.json`` (both under the project root: the nearest folder
above the working directory holding ``.git``, else ``$CLAUDE_PROJECT_DIR``, else the working
directory), ``user`` -> ``~/.claude/settings.json``.

Rules: install is idempotent and only appends (one matcher group per event, at the end of the
event's list); it keeps every other key, never removes or reorders a hook it did not write, and
refuses a file that is not a JSON object. Uninstall removes exactly the handlers whose command
is leasehold's for that event, then the groups, event lists and ``hooks`` object that this left
empty; a file install created and uninstall emptied is deleted. Our entries are recognised by
their command (``leasehold hook EVENT``).
"""

from __future__ import annotations

import json
import os

from leasehold.errors import InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCOPES = ("project", "local", "user")
PRE_MATCHER = "^(Agent|Task|Edit|Write|MultiEdit|NotebookEdit)$"
POST_MATCHER = "^(Bash|Edit|Write|MultiEdit|NotebookEdit)$"


def command(event: str) -> str:
    return f"leasehold hook {event}"


def entries() -> dict[str, dict[str, Any]]:
    """Claude Code event name -> the matcher group leasehold installs."""
    return {
        "PreToolUse": {"matcher": PRE_MATCHER, "hooks": [
            {"type": "command", "command": command("pre-tool-use"), "timeout": 10}]},
        "PostToolUse": {"matcher": POST_MATCHER, "hooks": [
            {"type": "command", "command": command("post-tool-use"), "async": True, "timeout": 10}]},
        "SessionStart": {"hooks": [
            {"type": "command", "command": command("session-start"), "timeout": 10}]},
        "SessionEnd": {"hooks": [
            {"type": "command", "command": command("session-end"), "timeout": 2}]},
    }


def _ours(event: str) -> str:
    return entries()[event]["hooks"][0]["command"]


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


def settings_path(scope: str, cwd: str | None = None) -> str:
    """The settings file of ``scope``. Raises :class:`InvalidInput` for an unknown scope."""
    if scope == "user":
        return os.path.join(os.path.expanduser("~"), ".claude", "settings.json")
    if scope == "project":
        return os.path.join(project_root(cwd), ".claude", "settings.json")
    if scope == "local":
        return os.path.join(project_root(cwd), ".claude", "settings.local.json")
    raise InvalidInput(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")


def read_settings(path: str) -> dict[str, Any] | None:
    """The file's JSON object, or None when the file does not exist. Raises
    :class:`InvalidInput` for anything but a JSON object with well-formed ``hooks``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {exc.start}); fix it first, nothing "
                           "was changed") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{path} is not valid JSON ({exc}); fix it first, nothing was changed") from None
    except RecursionError:
        raise InvalidInput(f"{path} is nested too deeply to be a settings file; nothing was changed") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} must hold a JSON object; nothing was changed")
    hooks = data.get("hooks", {})
    if not isinstance(hooks, dict):
        raise InvalidInput(f"{path}: 'hooks' must be an object; nothing was changed")
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            raise InvalidInput(f"{path}: hooks.{event} must be a list; nothing was changed")
    return data


def _write(path: str, data: dict[str, Any]) -> None:
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
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        payload = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate read from a \udXXX escape: written back escaped
        payload = (json.dumps(data, indent=2) + "\n").encode("ascii")
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


def _has(groups: list[Any], cmd: str) -> bool:
    return any(isinstance(g, dict) and isinstance(g.get("hooks"), list)
               and any(isinstance(h, dict) and h.get("command") == cmd for h in g["hooks"])
               for g in groups)


def install(scope: str, cwd: str | None = None) -> tuple[str, list[str]]:
    """Merge the entries into the scope's settings file. Returns ``(path, events added)``
    (empty when all were there already)."""
    path = settings_path(scope, cwd)
    data = read_settings(path)
    if data is None:
        data = {}
    hooks = data.setdefault("hooks", {})
    added = []
    for event, group in entries().items():
        groups = hooks.setdefault(event, [])
        if _has(groups, _ours(event)):
            continue
        groups.append(group)
        added.append(event)
    if added:
        _write(path, data)
    return path, added


def uninstall(scope: str, cwd: str | None = None) -> tuple[str, list[str]]:
    """Remove leasehold's handlers from the scope's settings file, and what that left empty.
    Returns ``(path, events removed)``."""
    path = settings_path(scope, cwd)
    data = read_settings(path)
    if data is None or not isinstance(data.get("hooks"), dict):
        return path, []
    hooks = data["hooks"]
    removed = []
    for event in entries():
        groups = hooks.get(event)
        if not isinstance(groups, list) or not _has(groups, _ours(event)):
            continue
        kept = []
        for group in groups:
            if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                handlers = [h for h in group["hooks"]
                            if not (isinstance(h, dict) and h.get("command") == _ours(event))]
                if len(handlers) != len(group["hooks"]):
                    if not handlers:
                        continue
                    group = dict(group, hooks=handlers)
            kept.append(group)
        if kept:
            hooks[event] = kept
        else:
            del hooks[event]
        removed.append(event)
    if not removed:
        return path, []
    if not hooks:
        del data["hooks"]
    if data:
        _write(path, data)
    else:
        os.remove(path)
    return path, removed


def show(cwd: str | None = None) -> list[dict[str, Any]]:
    """For each scope: its file, whether it exists, which of leasehold's events are installed
    and how many other handlers each event has."""
    out = []
    for scope in SCOPES:
        path = settings_path(scope, cwd)
        info: dict[str, Any] = {"scope": scope, "path": path, "exists": os.path.exists(path),
                                "installed": [], "other_handlers": {}, "error": None}
        try:
            data = read_settings(path) or {}
        except InvalidInput as exc:
            info["error"] = str(exc)
            out.append(info)
            continue
        hooks = data.get("hooks") or {}
        for event, groups in hooks.items():
            others = 0
            for group in groups:
                if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                    others += sum(1 for h in group["hooks"]
                                  if not (isinstance(h, dict) and event in entries()
                                          and h.get("command") == _ours(event)))
            if event in entries() and _has(groups, _ours(event)):
                info["installed"].append(event)
            if others:
                info["other_handlers"][event] = others
        out.append(info)
    return out
