"""Agent hook commands: ``hook EVENT`` (run by Claude Code / Codex with a JSON payload on
stdin) and ``hooks install|uninstall|show`` (the settings-file installer)."""

from __future__ import annotations

from leasehold.cli.common import Context, add_command
from leasehold.hooks import EVENTS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _pin_db(ctx: Context) -> None:
    """Make ``--db`` the ledger of code that resolves it later on its own (the hook handlers,
    the git guard): an empty ``--db "$UNSET"`` too, which must stay an error (exit 78, the gate
    denies) rather than fall through to LEASEHOLD_DB or leasehold.toml."""
    import os

    db = getattr(ctx.args, "db", None)
    if db is None:
        return
    from leasehold import config

    config.command_line_db = db
    if db.strip():
        os.environ["LEASEHOLD_DB"] = db  # for what the hook starts


def cmd_hook(ctx: Context) -> int:
    _pin_db(ctx)
    from leasehold.hooks import RUNTIMES, runtime_module

    if ctx.args.event in RUNTIMES:
        return int(runtime_module(ctx.args.event).run())
    from leasehold.hooks.claude import run

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
            "  codex          Codex CLI: one command for every event (hook_event_name): the gate\n"
            "                 on apply_patch files and spawn_agent prompts, the heartbeat on\n"
            "                 PostToolUse/Stop, context on SessionStart, release on SessionEnd.\n"
            "  gemini         Gemini CLI: BeforeTool (write_file/replace, invoke_agent) denies\n"
            "                 with {\"decision\": \"deny\"}; AfterTool heartbeat; SessionStart;\n"
            "                 SessionEnd releases.\n"
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


def _show_line(info: dict[str, Any]) -> str:
    state = "missing" if not info["exists"] else (
        "invalid: " + info["error"] if info["error"] else
        ("installed: " + ", ".join(info["installed"])) if info["installed"] else "not installed")
    others = ", ".join(f"{k} {v}" for k, v in info["other_handlers"].items())
    line = (f"{info['runtime']:<7} {info['scope']:<8}{info['path']}  {state}"
            + (f"  (other handlers: {others})" if others else ""))
    for problem in info.get("problems") or []:
        line += f"\n    CANNOT RUN: {problem}"
    from leasehold.hooks.install import missing_text

    missing = missing_text(info)
    if missing:
        line += f"\n    INCOMPLETE: {missing}"
    for note in info.get("notes") or []:
        line += f"\n    note: {note}"
    return line


def cmd_hooks(ctx: Context) -> int:
    from leasehold.hooks import install as inst

    action, scope = ctx.args.action, ctx.args.scope
    runtime = ctx.args.runtime
    if ctx.args.git:
        from leasehold.hooks import git_guard

        if action == "show":
            info = git_guard.show()
            ctx.out(info, git_guard.describe(info))
            return 0
        result = git_guard.install() if action == "install" else git_guard.uninstall()
        ctx.out(result, result["message"])
        return 0
    if action == "show":
        data = inst.show(runtimes=(runtime,) if runtime else inst.RUNTIMES)
        ctx.out(data, "\n".join(_show_line(info) for info in data))
        return 1 if any(info.get("problems") or info.get("missing") for info in data) else 0
    runtime = runtime or "claude"
    if action == "install":
        path, changed = inst.install(scope, runtime=runtime)
        text = (f"installed {', '.join(changed)} hooks in {path}" if changed
                else f"already installed in {path}")
        if runtime == "codex":
            text += ("\nCodex runs a new or changed hook only after you trust it: open /hooks in "
                     "Codex and trust leasehold's hook.")
    else:
        path, changed = inst.uninstall(scope, runtime=runtime)
        text = (f"removed {', '.join(changed)} hooks from {path}" if changed
                else f"nothing of leasehold's in {path}")
    ctx.out({"action": action, "runtime": runtime, "scope": scope, "path": path,
             "events": changed}, text)
    return 0


def setup_hooks(sub: Any) -> None:
    p = add_command(
        sub, "hooks", func=cmd_hooks,
        help="install, uninstall or show the agent hooks (Claude Code, Codex, Gemini CLI, git)",
        description=(
            "install: merge leasehold's hook entries, with the absolute path of this leasehold\n"
            "program, into a runtime's hook file (--runtime, default claude):\n"
            "  claude  PreToolUse, PostToolUse (async), SessionStart, SessionEnd in\n"
            "          .claude/settings.json (--scope project, the default), .claude/\n"
            "          settings.local.json (local) or ~/.claude/settings.json (user)\n"
            "  codex   SessionStart, PreToolUse (apply_patch|spawn_agent), PostToolUse, Stop in\n"
            "          .codex/hooks.json (project) or ~/.codex/hooks.json (user); trust the new\n"
            "          hook in Codex's /hooks before it runs\n"
            "  gemini  SessionStart, BeforeTool, AfterTool, SessionEnd in .gemini/settings.json\n"
            "          (project) or ~/.gemini/settings.json (user); timeouts in milliseconds\n"
            "--git installs the pre-commit guard instead (see 'leasehold guard --help').\n"
            "Idempotent; keeps every other key and hook in place; an older leasehold entry gets\n"
            "the current command; refuses a file that is not valid JSON (exit 2).\n"
            "uninstall: remove exactly leasehold's entries (and what that left empty).\n"
            "show: what is installed where, and why an installed hook cannot run (a command\n"
            "that does not resolve, hooks disabled, an untrusted project): exit 1 then."
        ),
        examples=(
            "  leasehold hooks install\n"
            "  leasehold hooks install --runtime codex\n"
            "  leasehold hooks install --runtime gemini --scope user\n"
            "  leasehold hooks install --git\n"
            "  leasehold hooks show --json\n"
            "  leasehold hooks uninstall --scope local"
        ),
    )
    p.add_argument("action", choices=("install", "uninstall", "show"))
    p.add_argument("--runtime", choices=("claude", "codex", "gemini"), default=None,
                   help="which agent runtime (default: claude; show: all)")
    p.add_argument("--scope", choices=("project", "local", "user"), default="project",
                   help="which settings file (default: project; local is Claude Code only)")
    p.add_argument("--git", action="store_true",
                   help="the git pre-commit guard of this repository instead of agent hooks")


def cmd_guard(ctx: Context) -> int:
    from leasehold.hooks import git_guard

    _pin_db(ctx)

    return git_guard.check()


def setup_guard(sub: Any) -> None:
    p = add_command(
        sub, "guard", func=cmd_guard,
        help="the git pre-commit guard (run by the hook 'leasehold hooks install --git' writes)",
        description=(
            "pre-commit: refuse a commit whose staged files (added, changed, deleted, both sides\n"
            "of a rename) lie under another session's exclusive file reservation, naming the\n"
            "holder and the expiry. The session is LEASEHOLD_SESSION, CLAUDE_CODE_SESSION_ID,\n"
            "CODEX_THREAD_ID or GEMINI_SESSION_ID; with none, every reservation is another's.\n"
            "LEASEHOLD_ENFORCE=0 lets the commit through (recorded as a bypass event);\n"
            "'git commit --no-verify' skips the hook (git's switch; nothing is recorded).\n"
            "A ledger that cannot be reached refuses the commit (fail closed)."
        ),
        examples=(
            "  leasehold hooks install --git     # once per repository\n"
            "  leasehold guard pre-commit        # what the hook runs"
        ),
        exit_codes=(
            "exit codes:\n"
            "  0   the commit may go ahead\n"
            "  1   refused (reasons on stderr), or the ledger cannot be checked\n"
            "  2   usage\n"
        ),
    )
    p.add_argument("stage", choices=("pre-commit",), help="the git hook being run")


COMMANDS = {
    "hook": setup_hook,
    "hooks": setup_hooks,
    "guard": setup_guard,
}
