"""Ready-queue commands: dep (add/remove), ready, blocked."""

from __future__ import annotations

from leasehold.cli.common import (
    Context,
    add_command,
    add_limit_options,
    add_op_id_option,
    blockers_after,
)
from leasehold.cli.leases import task_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.model import Task


def cmd_dep(ctx: Context) -> int:
    args = ctx.args
    ledger = ctx.ledger
    by = ctx.holder(required=False)
    if args.action == "add":
        task, changed = ledger.depend(args.id, args.blocked_by, by=by, op_id=args.op_id)
        verb = "now waits on" if changed else "already waits on"
    else:
        task, changed = ledger.undepend(args.id, args.blocked_by, by=by, op_id=args.op_id)
        verb = "no longer waits on" if changed else "did not wait on"
    data = {"id": task.id, "action": args.action, "changed": changed,
            "blocked_by": blockers_after(ctx, task.id)}
    shown = ", ".join(changed) if changed else args.blocked_by
    ctx.out(data, f"{task.id} {verb} {shown}")
    return 0


def setup_dep(sub: Any) -> None:
    p = add_command(
        sub, "dep", func=cmd_dep, help="add or remove a task's dependencies (blockers)",
        description=(
            "'dep add ID --blocked-by A,B': task ID waits until A and B are done; 'ready' and 'next'\n"
            "skip it until then. A dependency that would close a cycle (A already waits on ID,\n"
            "directly or through others) is refused with exit 1 and nothing is written. An\n"
            "unknown task or blocker: exit 3. 'dep remove' drops dependencies (removing one that\n"
            "does not exist is not an error). Each change appends a dependency_added /\n"
            "dependency_removed event."
        ),
        examples=(
            "  leasehold dep add deploy --blocked-by build,test\n"
            "  leasehold dep remove deploy --blocked-by test --json"
        ),
    )
    p.add_argument("action", choices=("add", "remove"), help="add or remove")
    p.add_argument("id", help="the task that waits")
    p.add_argument("--blocked-by", required=True, metavar="IDS",
                   help="comma-separated ids of the tasks it waits on")
    add_op_id_option(p)


def cmd_ready(ctx: Context) -> int:
    ledger = ctx.ledger
    limit = ctx.limit()
    tasks = ledger.ready(None if limit is None else limit + 1)
    now = ledger.now()
    ctx.stream(tasks, lambda t: t.to_dict(now), lambda t: task_line(t, now), "no task ready", limit,
               "tasks")
    return 0


def setup_ready(sub: Any) -> None:
    p = add_command(
        sub, "ready", func=cmd_ready, help="the ready queue: what 'next' would hand out",
        description=(
            "Tasks that are not done, not validly held, and whose blockers are all done, by\n"
            "priority (higher first) then age. 'next' claims from exactly this set. Read-only.\n"
            "The first 100 unless --limit N or --all."
        ),
        examples="  leasehold ready\n  leasehold ready --limit 5 --json",
    )
    add_limit_options(p, "tasks")


def blocked_dict(task: Task, waits: list[tuple[str, str]], now: float) -> dict[str, Any]:
    data = task.to_dict(now)
    data["blocked_by"] = [{"id": b, "status": s} for b, s in waits]
    return data


def cmd_blocked(ctx: Context) -> int:
    ledger = ctx.ledger
    rows = ledger.blocked()
    now = ledger.now()
    lines = [f"{task.id}  [{task.status}, p{task.priority}]  waits on "
             + ", ".join(f"{b} ({s})" for b, s in waits) for task, waits in rows]
    ctx.out([blocked_dict(task, waits, now) for task, waits in rows],
            "\n".join(lines) if lines else "no task is blocked")
    return 0


def setup_blocked(sub: Any) -> None:
    add_command(
        sub, "blocked", func=cmd_blocked, help="tasks waiting on others, with what they wait on",
        description=(
            "Tasks not done that wait on at least one task not done; each with the blockers it\n"
            "still waits on and their status. Read-only."
        ),
        examples="  leasehold blocked\n  leasehold blocked --json | jq '.[].blocked_by'",
    )


COMMANDS = {
    "dep": setup_dep,
    "ready": setup_ready,
    "blocked": setup_blocked,
}
