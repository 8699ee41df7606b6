"""``leasehold mcp``: the MCP server over stdio (needs the ``server`` extra), and
``mcp install|uninstall|show``: the MCP server entry in Claude Code's, Codex's and Gemini CLI's
configuration."""

from __future__ import annotations

from leasehold.cli.common import Context, LeaseholdParser, add_command
from leasehold.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CLIENTS = ("claude-code", "codex", "gemini")


def cmd_mcp(ctx: Context) -> int:
    try:
        from leasehold.server import mcp_tools
    except ImportError as exc:
        raise ConfigError(f"leasehold mcp needs the server extra: pip install 'leasehold[server]' ({exc})") from None
    if ctx.args.tools_size:
        size = mcp_tools.tools_list_bytes()
        ctx.out({"tools": len(mcp_tools.TOOLS), "bytes": size},
                f"tools/list: {len(mcp_tools.TOOLS)} tools, {size} bytes of compact JSON")
        return 0
    backend = mcp_tools.LocalBackend(ctx.settings, getattr(ctx.args, "actor", None),
                                     getattr(ctx.args, "session", None))
    ctx.say(f"leasehold mcp: serving {backend._caller.actor}:{backend._caller.session} "
            f"(session from {backend.session_source}) over stdio")
    try:
        mcp_tools.run_stdio(backend)
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_install(ctx: Context) -> int:
    from leasehold.hooks import mcp_install

    result = mcp_install.install(ctx.args.client, ctx.args.scope)
    ctx.out(result, result["message"])
    return 0


def cmd_uninstall(ctx: Context) -> int:
    from leasehold.hooks import mcp_install

    result = mcp_install.uninstall(ctx.args.client, ctx.args.scope)
    ctx.out(result, result["message"])
    return 0


def cmd_show(ctx: Context) -> int:
    from leasehold.hooks import mcp_install

    rows = mcp_install.show([ctx.args.client] if ctx.args.client else list(CLIENTS))
    lines = []
    for row in rows:
        state = ("error: " + row["error"] if row["error"] else
                 "installed: " + _runs(row["entry"]) if row["installed"] else
                 "not installed" + ("" if row["exists"] else " (no file)"))
        lines.append(f"{row['client']:<12} {row['scope']:<8} {row['path']}  {state}")
        lines.extend(f"    problem: {problem}" for problem in row.get("problems", []))
    ctx.out(rows, "\n".join(lines))
    return 0


def _runs(entry: Any) -> str:
    """What an installed entry runs (its command line) or reaches (its URL)."""
    if not isinstance(entry, dict):
        return repr(entry)
    if "command" not in entry and (entry.get("url") or entry.get("httpUrl")):
        return f"{entry.get('url') or entry.get('httpUrl')} (remote)"
    return " ".join([str(entry.get("command"))] + [str(a) for a in entry.get("args") or []])


def _scope(p: Any) -> None:
    p.add_argument("--client", required=True, choices=CLIENTS, help="the agent runtime")
    p.add_argument("--scope", choices=("project", "user"), default="project",
                   help="project (in the repository, shared) or user (every project; default project)")


def setup_mcp(sub: Any) -> None:
    p = add_command(
        sub, "mcp", func=cmd_mcp,
        help="the MCP server over stdio; install it into Claude Code, Codex, Gemini CLI",
        description=(
            "Without an action: serve leasehold's tools (claim, extend, release, done, check,\n"
            "next, who, reserve_ticket, post_feed, reserve_paths, release_paths, check_paths)\n"
            "and resources (leasehold://who, leasehold://task/{id}) over the Model Context\n"
            "Protocol on stdin/stdout, for a runtime that spawns it. The ledger is the usual\n"
            "one (--db, LEASEHOLD_DB, leasehold.toml; an https:// URL with LEASEHOLD_TOKEN goes\n"
            "through 'leasehold serve'). The actor comes from the configuration (or the token);\n"
            "the session is each tool's session argument, else --session / LEASEHOLD_SESSION /\n"
            "CLAUDE_CODE_SESSION_ID / CODEX_THREAD_ID / GEMINI_SESSION_ID, else one generated for\n"
            "this process (printed on stderr). 'leasehold serve' serves the same tools over\n"
            "Streamable HTTP at /mcp. Needs the server extra: pip install 'leasehold[server]'."
        ),
        examples=(
            "  leasehold mcp                          # what the runtime runs\n"
            "  leasehold mcp --tools-size             # bytes of tools/list\n"
            "  leasehold mcp install --client claude-code\n"
            "  leasehold mcp install --client codex --scope user\n"
            "  leasehold mcp show --json\n"
            "  leasehold mcp uninstall --client gemini"
        ),
    )
    p.add_argument("--tools-size", action="store_true",
                   help="print the size of tools/list (compact JSON bytes) and exit")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=LeaseholdParser)
    i = add_command(
        actions, "install", func=cmd_install, help="add leasehold's MCP server to a runtime's configuration",
        description=(
            "Write the 'leasehold' MCP server entry (the absolute path of this leasehold, args\n"
            "['mcp']) into the runtime's own configuration, keeping every other byte of the\n"
            "file: Claude Code .mcp.json (project) or ~/.claude.json (user) 'mcpServers';\n"
            "Codex .codex/config.toml (project) or ~/.codex/config.toml (user)\n"
            "[mcp_servers.leasehold]; Gemini CLI .gemini/settings.json (project) or\n"
            "~/.gemini/settings.json (user) 'mcpServers'. Idempotent. A file that cannot be\n"
            "parsed: exit 2, nothing changed."
        ),
        examples=("  leasehold mcp install --client claude-code\n"
                  "  leasehold mcp install --client codex --scope user --json"),
    )
    _scope(i)
    u = add_command(
        actions, "uninstall", func=cmd_uninstall, help="remove leasehold's MCP server entry",
        description="Remove the 'leasehold' entry written by install; every other byte stays.",
        examples="  leasehold mcp uninstall --client claude-code\n  leasehold mcp uninstall --client codex --scope user",
    )
    _scope(u)
    s = add_command(
        actions, "show", func=cmd_show, help="where each runtime's entry is, and what it runs",
        description="For each runtime and scope: the file, whether leasehold's entry is there, and its command.",
        examples="  leasehold mcp show\n  leasehold mcp show --client codex --json",
    )
    s.add_argument("--client", choices=CLIENTS, help="only this runtime")


COMMANDS = {"mcp": setup_mcp}
