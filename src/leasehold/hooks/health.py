"""Why installed hooks would not run: a command that does not resolve, hooks switched off in
the runtime's settings, an untrusted project layer. Used by ``leasehold hooks show`` and
``leasehold doctor``; each problem is one sentence that ends with its fix.

Sources of the rules: Claude Code settings (``disableAllHooks``, ``allowManagedHooksOnly`` in
managed settings); the Codex hooks page (``[features] hooks = false``, ``codex_hooks`` the
deprecated alias, ``allow_managed_hooks_only`` in ``requirements.toml``, project ``.codex/``
layers load only when the project is trusted, every non-managed hook must be trusted in
``/hooks``); Gemini CLI ``docs/hooks/index.md`` and ``docs/cli/trusted-folders.md``
(``hooksConfig.enabled``, ``hooksConfig.disabled``, folder trust).
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Claude Code's managed settings file on Linux and macOS.
CLAUDE_MANAGED = ("/etc/claude-code/managed-settings.json",
                  "/Library/Application Support/ClaudeCode/managed-settings.json")
#: Codex's trust note: it cannot be checked from outside Codex.
CODEX_TRUST_NOTE = ("Codex runs a new or changed hook only after you trust it: open /hooks in "
                    "Codex and trust leasehold's hook (leasehold cannot read Codex's trust records)")


def _json(path: str, comments: bool = False) -> dict[str, Any]:
    """The JSON object in ``path`` ({} when missing or not one); ``comments``: JSON with
    comments, as Gemini CLI reads its settings."""
    from leasehold.hooks.install import read_text

    try:
        text = read_text(path)
        try:
            data = json.loads(text)
        except ValueError:
            if not comments:
                raise
            from leasehold.hooks import jsonedit

            data = jsonedit.value(text)
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _toml(path: str) -> dict[str, Any]:
    import tomllib

    from leasehold.hooks.install import read_text

    try:
        return tomllib.loads(read_text(path))
    except (OSError, ValueError, RecursionError):  # TOMLDecodeError, UnicodeDecodeError
        return {}


def command_problem(cmd: str) -> str | None:
    """Why ``cmd``'s program cannot be started, or None."""
    import shutil

    from leasehold.hooks.install import program

    prog = program(cmd)
    if prog is None:
        return f"hook command {cmd!r} cannot be parsed; reinstall the hooks"
    if os.sep in prog:
        path = os.path.expanduser(prog)
        if not os.path.isfile(path):
            return (f"hook command program {prog} does not exist (the hooks would fail and let "
                    "every call through); reinstall: leasehold hooks install")
        if not os.access(path, os.X_OK):
            return f"hook command program {prog} is not executable; fix: chmod +x {prog}"
        return None
    if shutil.which(prog) is None:
        return (f"hook command {prog!r} is not on PATH (the hooks would fail and let every call "
                "through); reinstall with an absolute path: leasehold hooks install")
    return None


def problems(runtime: str, scope: str, path: str, commands: list[str],
             cwd: str | None = None) -> list[str]:
    """The reasons leasehold's installed hooks in ``path`` would not run."""
    out = [p for p in (command_problem(c) for c in commands if isinstance(c, str)) if p]
    if runtime == "claude":
        out += _claude(cwd)
    elif runtime == "codex":
        out += _codex(scope, cwd)
    elif runtime == "gemini":
        out += _gemini(scope, path, cwd)
    return out


def _claude(cwd: str | None) -> list[str]:
    from leasehold.hooks.install import SCOPES, settings_path

    out = []
    for scope in SCOPES:
        path = settings_path(scope, cwd)
        if _json(path).get("disableAllHooks") is True:
            out.append(f"{path} sets \"disableAllHooks\": true, so Claude Code runs no hooks; "
                       "fix: remove it")
    for path in CLAUDE_MANAGED:
        data = _json(path)
        if data.get("disableAllHooks") is True:
            out.append(f"managed settings {path} disable all hooks; ask the administrator")
        if data.get("allowManagedHooksOnly") is True:
            out.append(f"managed settings {path} set allowManagedHooksOnly: only managed hooks "
                       "run; ask the administrator to add leasehold's hooks to the managed settings")
    return out


def codex_home() -> str:
    return os.environ.get("CODEX_HOME") or os.path.join(os.path.expanduser("~"), ".codex")


def _codex(scope: str, cwd: str | None) -> list[str]:
    from leasehold.hooks.install import project_root

    out = []
    root = project_root(cwd)
    user_config = os.path.join(codex_home(), "config.toml")
    for config in (user_config, os.path.join(root, ".codex", "config.toml")):
        features = _toml(config).get("features")
        if isinstance(features, dict):
            for key in ("hooks", "codex_hooks"):
                if features.get(key) is False:
                    out.append(f"{config} sets [features] {key} = false, so Codex runs no hooks; "
                               "fix: remove it")
    for req in ("/etc/codex/requirements.toml", os.path.join(codex_home(), "requirements.toml")):
        data = _toml(req)
        if data.get("allow_managed_hooks_only") is True:
            out.append(f"{req} sets allow_managed_hooks_only: only managed hooks run; ask the "
                       "administrator")
    if scope == "project":
        projects = _toml(user_config).get("projects")
        level = None
        if isinstance(projects, dict):
            real = os.path.realpath(root)
            for key, entry in projects.items():
                if (isinstance(key, str) and isinstance(entry, dict)
                        and os.path.realpath(os.path.expanduser(key)) == real):
                    level = entry.get("trust_level")
        if level != "trusted":
            out.append(f"the project {root} is not trusted by Codex, so its .codex/ hooks do not "
                       "load; fix: trust the project when Codex asks, or install with "
                       "--scope user")
    return out


def _gemini(scope: str, path: str, cwd: str | None) -> list[str]:
    from leasehold.hooks.install import RUNTIME_SCOPES, project_root, settings_path

    out = []
    names = {"leasehold-session-start", "leasehold-before-tool", "leasehold-after-tool",
             "leasehold-session-end"}
    user = _json(settings_path("user", cwd, "gemini"), comments=True)
    for other in RUNTIME_SCOPES["gemini"]:
        file = settings_path(other, cwd, "gemini")
        data = _json(file, comments=True)
        tools = data.get("tools")
        if isinstance(tools, dict) and tools.get("enableHooks") is False:
            out.append(f"{file} sets tools.enableHooks = false, so Gemini CLI runs no hooks; "
                       "fix: remove it (and restart Gemini CLI)")
        hooks = data.get("hooks")
        if isinstance(hooks, dict) and isinstance(hooks.get("disabled"), list):
            off = sorted(names.intersection(d for d in hooks["disabled"] if isinstance(d, str)))
            if off:
                out.append(f"{file} disables {', '.join(off)} (hooks.disabled); fix: remove them")
        config = data.get("hooksConfig")
        if not isinstance(config, dict):
            continue
        if config.get("enabled") is False:
            out.append(f"{file} sets hooksConfig.enabled = false, so Gemini CLI runs no hooks; "
                       "fix: remove it (and restart Gemini CLI)")
        disabled = config.get("disabled")
        if isinstance(disabled, list):
            off = sorted(names.intersection(d for d in disabled if isinstance(d, str)))
            if off:
                out.append(f"{file} disables {', '.join(off)} (hooksConfig.disabled); fix: "
                           "remove them, or /hooks enable NAME")
    security = user.get("security")
    trust = security.get("folderTrust") if isinstance(security, dict) else None
    if isinstance(trust, dict) and trust.get("enabled") is True:
        root = project_root(cwd)
        folders = _json(os.path.join(os.path.expanduser("~"), ".gemini", "trustedFolders.json"), comments=True)
        trusted = False
        for folder, level in folders.items():
            folder = os.path.normpath(os.path.expanduser(folder))
            if level == "TRUST_FOLDER" and (root == folder or root.startswith(folder + os.sep)):
                trusted = True
            if level == "TRUST_PARENT":
                parent = os.path.dirname(folder)
                if root == parent or root.startswith(parent + os.sep):
                    trusted = True
        if not trusted:
            out.append(f"folder trust is on and {root} is not trusted, so Gemini CLI loads no "
                       f"settings.json hooks there (user or project); fix: trust the folder "
                       "(/permissions in Gemini CLI)")
    return out
