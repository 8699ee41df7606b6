"""Agent hook commands: ``hook EVENT`` (run by Claude Code / Codex with a JSON payload on
stdin) and ``hooks install|uninstall|show`` (the settings-file installer)."""

from __future__ import annotations

from leasehold.cli.common import Context, add_command
from leasehold.hooks import EVENTS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def cmd_hook(ctx: Context) -> int:
    import os

    from leasehold.hooks.claude import run

    db = getattr(ctx.args, "db", None)
    if db:
        os.environ["LEASEHOLD_DB"] = db
    return run(ctx.args.event)


def setup_hook(sub: Any) -> None:
    p = add_command(
        sub, "hook", func=cmd_hook, help="run an agent hook (reads the JSON payload on stdin)",
        description=(
            "Claude Code / Codex hook commands (install them with 'leasehold hooks install'):\n"
            "  pre-tool-use   the gate: deny an Agent/Task call whose prompt names a task held by\n"
            "                 another session, or an Edit/Write/MultiEdit/NotebookEdit of a file\n"
            "                 under another session's exclusive reservation (one JSON object on\n"
            "                 stdout). [CEO_APPROVED] in the prompt bypasses (audited);\n"
            "                 LEASEHOLD_ENFORCE=0 never denies. A ledger that cannot be reached\n"
            "                 denies (fail closed).\n"
            "  post-tool-use  the heartbeat: extend this session's leases and reservations at most\n"
            "                 once per heartbeat_interval (default 60s).\n"
            "  session-start  context for the agent: what it and other sessions hold.\n"
            "  session-end    release everything this session holds.\n"
            "A malformed payload: exit 1 with one line on stderr (a non-blocking hook error)."
        ),
        examples=(
            "  echo '{\"session_id\":\"abc\",\"tool_name\":\"Agent\",\"tool_input\":{\"prompt\":\"fix 99927\"}}' \\\n"
            "    | leasehold hook pre-tool-use\n"
            "  leasehold hook session-end < payload.json"
        ),
        exit_codes=(
            "exit codes:\n"
            "  0   ok, also when the call is denied (the deny object is on stdout); the gate\n"
            "      denies when the ledger is unreachable or misconfigured (fail closed)\n"
            "  1   a non-blocking hook error, one line on stderr: a malformed payload, or a\n"
            "      ledger the heartbeat or session-end cannot reach or is misconfigured (lease\n"
            "      expiry is the backstop)\n"
            "  2   usage: an unknown hook event\n"
        ),
    )
    p.add_argument("event", choices=EVENTS, help="the hook event")


def cmd_hooks(ctx: Context) -> int:
    from leasehold.hooks import install as inst

    action, scope = ctx.args.action, ctx.args.scope
    if action == "show":
        data = inst.show()
        lines = []
        for info in data:
            state = "missing" if not info["exists"] else (
                "invalid: " + info["error"] if info["error"] else
                ("installed: " + ", ".join(info["installed"])) if info["installed"] else "not installed")
            others = ", ".join(f"{k} {v}" for k, v in info["other_handlers"].items())
            lines.append(f"{info['scope']:<8}{info['path']}  {state}"
                         + (f"  (other handlers: {others})" if others else ""))
        ctx.out(data, "\n".join(lines))
        return 0
    if action == "install":
        path, changed = inst.install(scope)
        text = (f"installed {', '.join(changed)} hooks in {path}" if changed
                else f"already installed in {path}")
    else:
        path, changed = inst.uninstall(scope)
        text = (f"removed {', '.join(changed)} hooks from {path}" if changed
                else f"nothing of leasehold's in {path}")
    ctx.out({"action": action, "scope": scope, "path": path, "events": changed}, text)
    return 0


def setup_hooks(sub: Any) -> None:
    p = add_command(
        sub, "hooks", func=cmd_hooks, help="install, uninstall or show the Claude Code hooks",
        description=(
            "install: merge leasehold's PreToolUse, PostToolUse (async), SessionStart and\n"
            "SessionEnd entries into a Claude Code settings file: --scope project\n"
            "(.claude/settings.json, the default), local (.claude/settings.local.json) or user\n"
            "(~/.claude/settings.json). Idempotent; keeps every other key and hook in place;\n"
            "refuses a file that is not valid JSON (exit 2).\n"
            "uninstall: remove exactly leasehold's entries (and what that left empty).\n"
            "show: what is installed where."
        ),
        examples=(
            "  leasehold hooks install\n"
            "  leasehold hooks install --scope user\n"
            "  leasehold hooks show --json\n"
            "  leasehold hooks uninstall --scope local"
        ),
    )
    p.add_argument("action", choices=("install", "uninstall", "show"))
    p.add_argument("--scope", choices=("project", "local", "user"), default="project",
                   help="which settings file (default: project)")


COMMANDS = {
    "hook": setup_hook,
    "hooks": setup_hooks,
}
