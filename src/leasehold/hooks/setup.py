"""One call for ``leasehold init`` (and any other set-up step): install the agent hooks of a
repository with the absolute path of the ``leasehold`` program — Claude Code by default,
optionally Codex CLI, Gemini CLI and the git pre-commit guard."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_RUNTIMES = ("claude",)


def install_hooks(cwd: str | None = None, runtimes: tuple[str, ...] | list[str] = DEFAULT_RUNTIMES,
                  git: bool = False, scope: str = "project") -> list[dict[str, Any]]:
    """Install the hooks of ``runtimes`` (each of ``claude``, ``codex``, ``gemini``) in
    ``scope`` and, with ``git``, the pre-commit guard, for the repository at ``cwd`` (default:
    the working directory). Idempotent. Returns one record per item: ``{"runtime", "path",
    "events"}`` (events added or updated; empty when already installed) or, for git,
    ``{"runtime": "git", "path", "how"}``, each with a ``message`` for people (Codex's says
    that the hook must be trusted in ``/hooks``).

    Raises :class:`~leasehold.errors.InvalidInput` (an unknown runtime, a settings file that is
    not a JSON object, not a git repository for ``git``) or
    :class:`~leasehold.errors.ConfigError` (no leasehold executable); what was installed before
    the error stays installed."""
    from leasehold.errors import InvalidInput
    from leasehold.hooks import install as inst

    unknown = [r for r in runtimes if r not in inst.RUNTIMES]
    if unknown:
        raise InvalidInput(f"unknown runtime(s) {', '.join(unknown)}; use {', '.join(inst.RUNTIMES)}")
    exe = inst.executable()
    out: list[dict[str, Any]] = []
    for runtime in dict.fromkeys(runtimes):
        path, events = inst.install(scope, cwd, runtime=runtime, exe=exe)
        message = (f"installed {runtime} hooks ({', '.join(events)}) in {path}" if events
                   else f"{runtime} hooks already installed in {path}")
        if runtime == "codex":
            message += "; trust the new hook in Codex's /hooks before it runs"
        out.append({"runtime": runtime, "path": path, "events": events, "message": message})
    if git:
        from leasehold.hooks import git_guard

        result = git_guard.install(cwd, exe=exe)
        out.append({"runtime": "git", "path": result["path"], "how": result["how"],
                    "message": result["message"]})
    return out
