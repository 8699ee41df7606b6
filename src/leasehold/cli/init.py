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

    report = init_project(getattr(ctx.args, "db", None))
    ctx.out(report.to_dict(), "\n".join(f"{step.name}: {step.detail}" for step in report.steps))
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
    add_command(
        sub, "init", func=cmd_init, help="create a ledger (and leasehold.toml in a git repository)",
        description=(
            "Create a ledger. leasehold never creates one by accident at a location you named\n"
            "(--db, LEASEHOLD_DB, db in leasehold.toml): every other command refuses a missing\n"
            "ledger with exit 78. Only the per-user default ledger is created on first use.\n\n"
            "Inside a git repository, init also writes leasehold.toml at the repository root\n"
            "(db = \".leasehold/ledger.db\", or the --db given), or adds db to an existing one,\n"
            "and adds the ledger's folder to .gitignore. In a linked worktree the ledger is made\n"
            "in the main worktree, which every worktree shares. Running it again changes nothing.\n"
            "A file that is not a leasehold ledger is refused and left untouched."
        ),
        examples=(
            "  leasehold init                      # in a repository: .leasehold/ledger.db\n"
            "  leasehold init --db /var/lib/fleet/ledger.db\n"
            "  leasehold init --db postgresql://leasehold@db1.internal/leasehold --json"
        ),
        exit_codes=INIT_EXIT_CODES,
    )


COMMANDS = {"init": setup_init}
