"""``leasehold init``: create a ledger explicitly (and, in a git repository, leasehold.toml and
the .gitignore entry). The logic is :mod:`leasehold.init`; further set-up steps (agent-runtime
hooks) are added to :data:`leasehold.init.STEPS`, and their options here."""

from __future__ import annotations

from leasehold.cli.common import Context, add_command

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def cmd_init(ctx: Context) -> int:
    from leasehold.init import init_project

    runtimes: tuple[str, ...] = ()
    if not ctx.args.no_hooks:
        runtimes = tuple(dict.fromkeys(["claude", *ctx.args.runtime]))
    report = init_project(getattr(ctx.args, "db", None), runtimes=runtimes,
                          git_guard=ctx.args.git, separate=ctx.args.separate)
    ctx.out(report.to_dict(), "\n".join([f"{step.name}: {step.detail}" for step in report.steps]
                                        + report.advice()))
    return 0


INIT_EXIT_CODES = """\
exit codes:
  0   ok: everything is in place (running init again changes nothing)
  2   usage, or leasehold.toml already names another ledger, or --db carries a
      password that would be written into leasehold.toml
  75  the ledger is busy or unreachable: retry later
  78  configuration error: the path is a directory or a file that is not a
      leasehold ledger (left untouched), a bad URL, a missing PostgreSQL
      database or schema, permission denied
"""


def setup_init(sub: Any) -> None:
    p = add_command(
        sub, "init", func=cmd_init, help="create a ledger (and leasehold.toml in a git repository)",
        description=(
            "Create a ledger. leasehold never creates one by accident at a location you named\n"
            "(--db, LEASEHOLD_DB, db in leasehold.toml): every other command refuses a missing\n"
            "ledger with exit 78. Only the per-user default ledger is created on first use.\n\n"
            "Inside a git repository, init also writes leasehold.toml at the repository root\n"
            "(db = \".leasehold/ledger.db\", or the --db given), or adds db to an existing one,\n"
            "and adds the ledger's folder to .gitignore; commit leasehold.toml so that new\n"
            "worktrees and clones see it. In a linked worktree the ledger, leasehold.toml and the\n"
            ".gitignore entry go to the main worktree, which every worktree shares. In a\n"
            "repository nested in another (a submodule) under a leasehold.toml that names a\n"
            "ledger, init uses that ledger and says so; --separate gives the nested repository\n"
            "its own. Running it again changes nothing.\n"
            "A file that is not a leasehold ledger is refused and left untouched.\n\n"
            "In a repository it then installs the Claude Code hooks (.claude/settings.json) with\n"
            "the absolute path of this leasehold program; --runtime codex|gemini adds those\n"
            "runtimes' hooks, --git the pre-commit guard, --no-hooks installs none.\n"
            "Then `leasehold doctor` checks the set-up."
        ),
        examples=(
            "  leasehold init                      # in a repository: .leasehold/ledger.db\n"
            "  leasehold init --db /var/lib/fleet/ledger.db\n"
            "  leasehold init --db postgresql://leasehold@db1.internal/leasehold --json"
        ),
        exit_codes=INIT_EXIT_CODES,
    )
    p.add_argument("--runtime", action="append", choices=("codex", "gemini"), default=[],
                   help="also install this runtime's hooks (repeatable); Claude Code's always")
    p.add_argument("--git", action="store_true", help="also install the git pre-commit guard")
    p.add_argument("--no-hooks", action="store_true", help="install no agent hooks")
    p.add_argument("--separate", action="store_true",
                   help="in a repository nested under another's leasehold.toml: a ledger and "
                        "leasehold.toml of its own instead of the governing one")


COMMANDS = {"init": setup_init}
