"""``leasehold doctor``: is this a working set-up? Each problem with its fix."""

from __future__ import annotations

from leasehold.cli.common import Context, add_command

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def cmd_doctor(ctx: Context) -> int:
    from leasehold.doctor import run_checks

    checks = run_checks(db=getattr(ctx.args, "db", None))
    healthy = all(c["ok"] is not False for c in checks)
    lines = []
    for c in checks:
        mark = {True: "ok  ", False: "FAIL", None: "info"}[c["ok"]]
        lines.append(f"{mark}  {c['name']}: {c['detail']}")
        if c["fix"] and c["ok"] is not True:
            lines.append(f"      fix: {c['fix']}")
    problems = sum(1 for c in checks if c["ok"] is False)
    lines.append("healthy" if healthy else f"{problems} problem(s)")
    ctx.out({"healthy": healthy, "checks": checks}, "\n".join(lines))
    return 0 if healthy else 1


def setup_doctor(sub: Any) -> None:
    add_command(
        sub, "doctor", func=cmd_doctor, help="check the set-up and say how to fix what is wrong",
        description=(
            "Checks, each with its fix: leasehold.toml parses; the ledger resolves, and every git\n"
            "worktree resolves the same one; it opens (never created here) with its schema\n"
            "current; PostgreSQL clock skew under 2s; an actor resolves; Claude Code hooks are\n"
            "installed and every installed hook (Claude Code, Codex, Gemini CLI, the git guard)\n"
            "can run: its command resolves, hooks are not disabled (disableAllHooks,\n"
            "allowManagedHooksOnly, Codex [features] hooks = false, Gemini hooksConfig), the\n"
            "project is trusted. Codex hook trust (/hooks) cannot be read and is only reminded."
        ),
        examples="  leasehold doctor\n  leasehold doctor --json | jq '.checks[] | select(.ok == false)'",
        exit_codes=(
            "exit codes:\n"
            "  0   healthy (information lines need no fix)\n"
            "  1   at least one problem, listed with its fix\n"
            "  2   usage\n"
        ),
    )


COMMANDS = {"doctor": setup_doctor}
