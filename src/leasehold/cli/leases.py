"""Lease commands: claim, extend, release, done, status, check, sweep, show, who, add, reopen,
list, next, log, watch, migrate, whoami."""

from __future__ import annotations

from leasehold.cli.common import (
    Context,
    add_command,
    add_limit_options,
    add_op_id_option,
    add_ttl_options,
    blockers_after,
    output_lost,
)
from leasehold.errors import InvalidInput, NoneAvailable, StoreError
from leasehold.model import format_ts
from leasehold.untrusted import escape

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.model import Lease, Task


def lease_line(verb: str, lease: Lease) -> str:
    return (f"{verb} {lease.task_id} as {lease.holder} until {format_ts(lease.expires_at)} "
            f"(fence {lease.fence})")


def warn_if_replayed_expired(ctx: Context, lease: Lease) -> None:
    """A retry with an ``--op-id`` returns the first outcome (exit 0) even when that lease has
    expired since: say so on stderr, so a person or an agent does not work under it."""
    at = ctx.ledger.replayed_at
    if at is not None and lease.expires_at <= at:
        ctx.say(f"note: this answer replays operation {ctx.args.op_id}; that lease expired at "
                f"{format_ts(lease.expires_at)} and is no longer valid: claim again before working")


def task_line(task: Task, now: float) -> str:
    if task.status == "done":
        lease = f"done (fence {task.fence})"
    elif task.lease_valid(now):
        lease = f"held by {task.lease_holder} until {format_ts(task.lease_until)} (fence {task.fence})"
    elif task.lease_actor is not None:
        lease = f"lease of {task.lease_holder} expired {format_ts(task.lease_until)} (fence {task.fence})"
    else:
        lease = f"available (fence {task.fence})"
    title = f"  {escape(task.title)}" if task.title else ""
    return f"{task.id}  [{task.status}, p{task.priority}]  {lease}{title}"


# -- claim ------------------------------------------------------------------------------------
def wait_seconds(text: str | None) -> float | None:
    """``--wait [TIMEOUT]``: None (no wait), or seconds (a duration like --ttl; bare --wait:
    24h)."""
    if text is None:
        return None
    from leasehold.model import parse_duration

    seconds = parse_duration(text, "--wait")
    if seconds > 86400:
        raise InvalidInput(f"--wait is at most 24h, got {text!r}")
    return seconds


def add_wait_option(parser: Any, what: str) -> None:
    parser.add_argument("--wait", nargs="?", const="24h", metavar="TIMEOUT",
                        help=f"block until {what} (FIFO among waiters through a server); "
                             "TIMEOUT like --ttl: 30s, 2m, bare seconds (default 24h); exit 1 when it passes")


def cmd_claim(ctx: Context) -> int:
    holder = ctx.me()
    wait = wait_seconds(ctx.args.wait)
    # the grant and its shares in one transaction: never a claim left unshared
    if wait is not None:
        lease = ctx.ledger.wait_claim(ctx.args.id, holder, ctx.ttl(), timeout=wait,
                                      title=ctx.args.title, priority=ctx.args.priority,
                                      share_with=ctx.args.share_with)
    else:
        lease = ctx.ledger.claim(ctx.args.id, holder, ctx.ttl(), title=ctx.args.title,
                                 priority=ctx.args.priority, op_id=ctx.args.op_id,
                                 share_with=ctx.args.share_with)
    # Reported from what the call returned: nothing after the commit is needed (updated_at is
    # the instant of the grant, read under the row lock).
    data = lease.task.to_dict(ctx.ledger.replayed_at or lease.task.updated_at)
    text = lease_line("claimed", lease)
    if ctx.args.share_with:
        data["shared_with"] = ctx.ledger.shared_among([ctx.args.id]).get(ctx.args.id, [])
        text += "\nshared with " + ", ".join(data["shared_with"])
    ctx.out(data, text)
    warn_if_replayed_expired(ctx, lease)
    return 0


def setup_claim(sub: Any) -> None:
    p = add_command(
        sub, "claim", func=cmd_claim, help="take the lease on a task (creates unknown tasks)",
        description=(
            "Grant the lease on task ID if it is free, its lease expired, or you already hold it\n"
            "(then the expiry is refreshed and the fence stays). Every new grant increments the\n"
            "task's fencing token. If another holder has a valid lease: exit 1 and on stderr\n"
            "'Task ID held by ACTOR:SESSION until TIME'."
        ),
        examples=(
            "  leasehold claim 99927 --actor john --session abc123 --ttl-minutes 10\n"
            "  leasehold claim CMB-0036 --ttl 2h --json\n"
            "  leasehold claim 99927 || echo \"someone else has it\"\n"
            "  leasehold claim 99927 --share-with teammate-session-1 teammate-session-2\n"
            "  leasehold claim 99927 --wait 5m   # wait for the holder to release it"
        ),
    )
    p.add_argument("id", help="task id: 1-200 letters, digits and ._:/#-")
    p.add_argument("--share-with", nargs="+", metavar="SESSION", default=[],
                   help="also let these sessions (agent teammates) work under the lease: the "
                        "dispatch gate lets them through; it lasts as long as this grant")
    add_ttl_options(p)
    add_wait_option(p, "the lease is granted")
    p.add_argument("--title", help="title for a task the claim creates")
    p.add_argument("--priority", type=int, help="priority for a task the claim creates (higher first)")
    add_op_id_option(p)


# -- extend -----------------------------------------------------------------------------------
def cmd_extend(ctx: Context) -> int:
    lease = ctx.ledger.extend(ctx.args.id, ctx.me(), ctx.ttl(), ctx.args.fence,
                              op_id=ctx.args.op_id)
    ctx.out(lease.task.to_dict(ctx.ledger.replayed_at or lease.task.updated_at),
            lease_line("extended", lease))
    warn_if_replayed_expired(ctx, lease)
    return 0


def setup_extend(sub: Any) -> None:
    p = add_command(
        sub, "extend", aliases=("claim-extend",), func=cmd_extend,
        help="heartbeat: push your lease's expiry out (holder only)",
        description=(
            "The holder pushes its valid lease's expiry to now + TTL (default: the lease's own TTL).\n"
            "The fence stays the same. Not the holder, an expired lease, or a --fence that does\n"
            "not match: exit 1 with the reason. Long work should extend every TTL/3."
        ),
        examples="  leasehold extend 99927\n  leasehold claim-extend 99927 --ttl 30m --fence 4",
    )
    p.add_argument("id", help="task id")
    add_ttl_options(p, "the lease's own TTL")
    p.add_argument("--fence", type=int, help="require this fencing token")
    add_op_id_option(p)


# -- release ----------------------------------------------------------------------------------
def cmd_release(ctx: Context) -> int:
    args = ctx.args
    if args.force:
        if not args.reason:
            raise InvalidInput("--force needs --reason TEXT: say why the lease is cleared")
        by = ctx.holder(required=False)
        result = ctx.ledger.force_release(args.id, args.reason, by, op_id=args.op_id)
    else:
        if args.reason:
            raise InvalidInput("--reason goes with --force")
        result = ctx.ledger.release(args.id, ctx.me(), keep_status=args.keep_status,
                                    op_id=args.op_id)
    data = result.task.to_dict(result.task.updated_at) if result.task else {}
    data["released"] = result.released
    ctx.out(data, result.message)
    return 0


def setup_release(sub: Any) -> None:
    p = add_command(
        sub, "release", aliases=("claim-release",), func=cmd_release,
        help="give up your lease (status back to open)",
        description=(
            "The holder clears its lease and the task's status goes back to 'open'\n"
            "(--keep-status: clear the lease only). A task nobody holds: exit 0 saying so.\n"
            "Held by another: exit 1. --force --reason lets anyone clear a stuck lease; it is\n"
            "recorded as a force_released event with the reason."
        ),
        examples=(
            "  leasehold release 99927\n"
            "  leasehold release 99927 --keep-status\n"
            "  leasehold claim-release 99927 --force --reason \"session crashed, see #12\""
        ),
    )
    p.add_argument("id", help="task id")
    p.add_argument("--keep-status", action="store_true", help="clear the lease, keep the status")
    p.add_argument("--force", action="store_true", help="release whoever holds it (needs --reason)")
    p.add_argument("--reason", help="why a forced release is needed (recorded)")
    add_op_id_option(p)


# -- done -------------------------------------------------------------------------------------
def cmd_done(ctx: Context) -> int:
    ids = ctx.args.id
    if len(ids) == 1:
        task = ctx.ledger.complete(ids[0], ctx.me(), ctx.args.fence, op_id=ctx.args.op_id)
        ctx.out(task.to_dict(task.updated_at), f"done {task.id} (fence {task.fence})")
        return 0
    if ctx.args.fence is not None:
        raise InvalidInput("--fence goes with a single task id")
    holder = ctx.me()
    ledger = ctx.ledger
    done = {task.id: task for task in ledger.complete_many(ids, holder, op_id=ctx.args.op_id)}
    refused = []
    for task_id in dict.fromkeys(ids):
        if task_id not in done:
            reason = _not_done_reason(ledger, task_id, holder)
            refused.append({"id": task_id, "reason": reason})
            ctx.say(reason)
    ctx.out({"done": [t.to_dict(t.updated_at) for t in done.values()], "refused": refused},
            "\n".join(f"done {t.id} (fence {t.fence})" for t in done.values()) or None)
    return 1 if refused else 0


def _not_done_reason(ledger: Any, task_id: str, holder: Any) -> str:
    """Why ``done`` left a task alone. Read after the commit, for people only (the outcome is
    already known): a store error here does not turn the outcome into a failure."""
    try:
        current = ledger.status(task_id)
        now = ledger.now()
    except StoreError as exc:
        return f"Task {task_id} is not done (its state could not be read: {exc})"
    if current is None:
        return f"Task {task_id} not found"
    if current.lease_valid(now) and current.lease_holder != str(holder):
        return f"Task {task_id} held by {current.lease_holder} until {format_ts(current.lease_until)}"
    return f"Task {task_id} is not held by {holder}"


def setup_done(sub: Any) -> None:
    p = add_command(
        sub, "done", func=cmd_done, help="mark your task(s) done and release them (holder only)",
        description=(
            "The holder sets the task's status to 'done' and releases the lease. With several ids,\n"
            "all the ones you hold are completed in one transaction; each other one is named on\n"
            "stderr and the exit code is 1 (--json: {\"done\": [...], \"refused\": [...]})."
        ),
        examples="  leasehold done 99927\n  leasehold done 99927 --fence 4\n  leasehold done job-1 job-2 job-3",
    )
    p.add_argument("id", nargs="+", help="task id(s)")
    p.add_argument("--fence", type=int, help="require this fencing token (one id only)")
    add_op_id_option(p)


# -- status -----------------------------------------------------------------------------------
# status_dict, cmd_status and cmd_check live in leasehold.cli.fast, which runs them without
# argparse when the command line has their simple shape.
from leasehold.cli.fast import cmd_check, cmd_status, status_dict  # noqa: E402,F401


def setup_status(sub: Any) -> None:
    p = add_command(
        sub, "status", aliases=("claim-status",), func=cmd_status,
        help="who holds a task (read-only)",
        description=(
            "Read-only: prints 'available', 'done', or 'held by ACTOR:SESSION until TIME (fence N)'.\n"
            "Always exit 0 (unless the store fails): branch on 'check' instead."
        ),
        examples="  leasehold status 99927\n  leasehold claim-status 99927 --json",
    )
    p.add_argument("id", help="task id")


# -- check ------------------------------------------------------------------------------------
def setup_check(sub: Any) -> None:
    p = add_command(
        sub, "check", func=cmd_check,
        help="dispatch gate: is the task clear of other holders?",
        description=(
            "The gate verdict for dispatchers (circuit breaker 'task not claimed by a different\n"
            "actor/session'). Prints 'VERDICT: CLEAR' (exit 0) or 'VERDICT: BLOCKED — held by\n"
            "ACTOR:SESSION until TIME' (exit 1). Your own lease is CLEAR. With LEASEHOLD_ENFORCE=0\n"
            "(the rollback switch) it prints the truth with '(enforcement off)' and exits 0."
        ),
        examples="  leasehold check 99927 && dispatch 99927\n  LEASEHOLD_ENFORCE=0 leasehold check 99927",
    )
    p.add_argument("id", help="task id")


# -- sweep ------------------------------------------------------------------------------------
def cmd_sweep(ctx: Context) -> int:
    from leasehold import paths

    expired = ctx.ledger.sweep(auto_release=ctx.args.auto_release, op_id=ctx.args.op_id)
    gone = paths.sweep(ctx.ledger, auto_release=ctx.args.auto_release)
    lines = [f"{t.id}  {escape(t.lease_holder)}  expired {format_ts(t.lease_until)}  (fence {t.fence})"
             for t in expired]
    path_lines = [f"path {escape(r.pattern)}  {escape(r.holder)}  expired {format_ts(r.expires_at)}  "
                  f"(fence {r.fence})" for r in gone]
    if ctx.json:  # the JSON stays the list of tasks; the file reservations are named on stderr
        for line in path_lines:
            ctx.say(line)
    lines += path_lines
    if ctx.args.auto_release:
        lines.append(f"released {len(expired)} expired lease(s) and {len(gone)} expired file "
                     "reservation(s)")
    elif not expired and not gone:
        lines.append("no expired leases")
    # Each lease was past its expiry when the sweep read it: reported as of that expiry (no
    # round trip after the commit).
    ctx.out([t.to_dict(t.lease_until) for t in expired], "\n".join(lines))
    return 0


def setup_sweep(sub: Any) -> None:
    p = add_command(
        sub, "sweep", aliases=("claim-sweep",), func=cmd_sweep,
        help="list leases past expiry; --auto-release clears them",
        description=(
            "Lists leases and file reservations past their expiry. --auto-release clears each\n"
            "(status in_progress goes back to open), one 'expired' / 'path_expired' event each.\n"
            "Safe to run from cron. With --json: the list of tasks; file reservations on stderr."
        ),
        examples="  leasehold sweep\n  leasehold claim-sweep --auto-release --json",
    )
    p.add_argument("--auto-release", action="store_true", help="clear the expired leases")
    add_op_id_option(p)


# -- show -------------------------------------------------------------------------------------
def cmd_show(ctx: Context) -> int:
    ledger = ctx.ledger
    task = ledger.show(ctx.args.id)
    now = ledger.now()
    rows = [
        ("id", task.id), ("title", escape(task.title or "", None)), ("status", task.status),
        ("priority", str(task.priority)), ("lease_holder", task.lease_holder or "-"),
        ("lease_until", format_ts(task.lease_until)),
        ("lease_valid", "yes" if task.lease_valid(now) else "no"), ("fence", str(task.fence)),
        ("created_at", format_ts(task.created_at)), ("updated_at", format_ts(task.updated_at)),
    ]
    ctx.out(task.to_dict(now), "\n".join(f"{k:<13}{v}" for k, v in rows))
    return 0


def setup_show(sub: Any) -> None:
    p = add_command(
        sub, "show", func=cmd_show, help="a task with its lease; unknown id: exit 3",
        description="The task with lease_holder (ACTOR:SESSION or null), lease_until, fence, status, title, priority, timestamps.",
        examples="  leasehold show 99927\n  leasehold show 99927 --json | jq .lease_holder",
    )
    p.add_argument("id", help="task id")


# -- who --------------------------------------------------------------------------------------
def cmd_who(ctx: Context) -> int:
    limit = ctx.limit()
    ledger = ctx.ledger
    now = ledger.now()
    groups = ledger.who(None if limit is None else limit + 1)

    def as_dict(group: tuple[str, list[Task]]) -> dict[str, Any]:
        holder, tasks = group
        actor, _, session = holder.rpartition(":")
        return {"holder": holder, "actor": actor, "session": session,
                "tasks": [t.to_dict(now) for t in tasks]}

    def as_text(group: tuple[str, list[Task]]) -> str:
        holder, tasks = group
        lines = [f"{holder}  ({len(tasks)} lease{'s' if len(tasks) != 1 else ''})"]
        lines.extend(f"  {t.id}  until {format_ts(t.lease_until)}  (fence {t.fence})" for t in tasks)
        return "\n".join(lines)

    ctx.stream(groups, as_dict, as_text, "no active leases", limit, "holders")
    return 0


def setup_who(sub: Any) -> None:
    p = add_command(
        sub, "who", func=cmd_who, help="active leases grouped by holder",
        description=(
            "Active leases grouped by holder, the most recently active holder first.\n"
            "At most 100 holders unless --limit N or --all."
        ),
        examples="  leasehold who\n  leasehold who --json\n  leasehold who --all",
    )
    add_limit_options(p, "holders")


# -- add / reopen / list ----------------------------------------------------------------------
def cmd_add(ctx: Context) -> int:
    args = ctx.args
    if args.blocked_by is not None:
        task, created, _ = ctx.ledger.add_blocked(args.id, args.blocked_by, title=args.title,
                                                  priority=args.priority, by=ctx.holder(required=False),
                                                  op_id=args.op_id)
        data = task.to_dict(task.updated_at)
        data["created"] = created
        data["blocked_by"] = blockers_after(ctx, task.id)
        waits = ", ".join(b["id"] for b in data["blocked_by"] or [])
        ctx.out(data, f"{'added' if created else 'updated'} {task.id} (waits on {waits or '?'})")
        return 0
    task, created = ctx.ledger.add(args.id, title=args.title, priority=args.priority,
                                   by=ctx.holder(required=False), op_id=args.op_id)
    data = task.to_dict(task.updated_at)
    data["created"] = created
    ctx.out(data, f"{'added' if created else 'updated'} {task.id}")
    return 0


def setup_add(sub: Any) -> None:
    p = add_command(
        sub, "add", func=cmd_add, help="create a task (or update its title/priority)",
        description="Create task ID with status open. An existing task gets the given title/priority.",
        examples=(
            "  leasehold add 99927 --title \"Fix the retry loop\" --priority 5\n"
            "  leasehold add deploy --blocked-by build,test   # waits until both are done"
        ),
    )
    p.add_argument("id", help="task id")
    p.add_argument("--title", help="title")
    p.add_argument("--priority", type=int, help="priority (higher first; default 0)")
    p.add_argument("--blocked-by", metavar="IDS",
                   help="comma-separated ids of existing tasks this one waits on (see 'dep')")
    add_op_id_option(p)


def cmd_reopen(ctx: Context) -> int:
    task = ctx.ledger.reopen(ctx.args.id, by=ctx.holder(required=False), op_id=ctx.args.op_id)
    ctx.out(task.to_dict(task.updated_at), f"reopened {task.id}")
    return 0


def setup_reopen(sub: Any) -> None:
    p = add_command(
        sub, "reopen", func=cmd_reopen, help="set a task's status back to open",
        description="Set task ID's status back to 'open' (a done task that needs more work).",
        examples="  leasehold reopen 99927",
    )
    p.add_argument("id", help="task id")
    add_op_id_option(p)


def cmd_list(ctx: Context) -> int:
    args = ctx.args
    if args.held and args.available:
        raise InvalidInput("--held and --available exclude each other")
    held = True if args.held else False if args.available else None
    limit = ctx.limit()
    ledger = ctx.ledger
    now = ledger.now()
    tasks = ledger.iter_tasks(status=args.status, held=held,
                              limit=None if limit is None else limit + 1)
    ctx.stream(tasks, lambda t: t.to_dict(now), lambda t: task_line(t, now), "no tasks", limit,
               "tasks")
    return 0


def setup_list(sub: Any) -> None:
    p = add_command(
        sub, "list", func=cmd_list, help="list tasks",
        description="Tasks by priority, then age. The first 100 unless --limit N or --all (streamed).",
        examples="  leasehold list --available\n  leasehold list --status done --json\n"
                 "  leasehold list --all > tasks.txt",
    )
    p.add_argument("--status", choices=("open", "in_progress", "done"), help="only this status")
    p.add_argument("--held", action="store_true", help="only tasks with a valid lease")
    p.add_argument("--available", action="store_true", help="only tasks free to claim")
    add_limit_options(p, "tasks")


# -- next -------------------------------------------------------------------------------------
def cmd_next(ctx: Context) -> int:
    wait = wait_seconds(ctx.args.wait)
    if wait is not None:
        leases = ctx.ledger.wait_next(ctx.me(), ctx.ttl(), ctx.args.count, timeout=wait)
    else:
        leases = ctx.ledger.next(ctx.me(), ctx.ttl(), ctx.args.count, op_id=ctx.args.op_id)
    if not leases:
        raise NoneAvailable("no task available")
    if ctx.json:
        data = [lease.task.to_dict(ctx.ledger.replayed_at or lease.task.updated_at)
                for lease in leases]
        ctx.out(data if ctx.args.count > 1 else data[0], None)
    else:
        ctx.out(None, "\n".join(lease_line("claimed", lease) for lease in leases))
    return 0


def setup_next(sub: Any) -> None:
    p = add_command(
        sub, "next", func=cmd_next, help="atomically claim the highest-priority available task",
        description=(
            "Claim the highest-priority task that is not done and not validly held (then the\n"
            "oldest). Two workers never get the same task. None available: exit 1.\n"
            "--json prints the task object (a list with --count > 1)."
        ),
        examples="  leasehold next --ttl 5m\n  leasehold next --count 10 --json\n  leasehold next --wait 10m",
    )
    add_ttl_options(p)
    add_wait_option(p, "a task is ready")
    p.add_argument("--count", type=int, default=1, help="claim up to N tasks at once (default 1)")
    add_op_id_option(p)


# -- log --------------------------------------------------------------------------------------
def event_line(e: Any) -> str:
    details = " ".join(f"{k}={escape(v)}" for k, v in sorted(e.details.items()) if k != "op")
    return (f"{format_ts(e.ts)}  #{e.id}  {e.kind:<14} {e.task_id or '-'}  "
            f"{e.holder or '-'}  fence {e.fence if e.fence is not None else '-'}  {details}".rstrip())


def follow(ctx: Context, ids: list[str], kinds: list[str], after: int | None,
           timeout: float | None) -> int:
    """Print events as they commit (one line each; --json: one JSON object per line)."""
    import json
    import sys

    if output_lost():
        return 0
    for event in ctx.ledger.watch(ids, kinds, after=after, timeout=timeout):
        if ctx.json:
            sys.stdout.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(event_line(event) + "\n")
        sys.stdout.flush()
        if output_lost():  # the reader went away (| head), or stdout is full or closed
            return 0
    return 0


def cmd_log(ctx: Context) -> int:
    limit = ctx.limit()
    ledger = ctx.ledger
    if ctx.args.follow:
        import json
        import sys

        events = ledger.events(ctx.args.id, limit)
        for e in events:
            sys.stdout.write((json.dumps(e.to_dict(), ensure_ascii=False) if ctx.json else event_line(e)) + "\n")
        sys.stdout.flush()
        after = events[-1].id if events else None
        if after is None and ctx.args.id is None:
            after = 0
        return follow(ctx, [ctx.args.id] if ctx.args.id else [], [], after, None)
    if limit is None:
        ctx.stream(ledger.iter_events(ctx.args.id), lambda e: e.to_dict(), event_line, "no events",
                   None)
        return 0
    events = ledger.events(ctx.args.id, limit + 1)
    more = len(events) > limit
    ctx.stream(events[1:] if more else events, lambda e: e.to_dict(), event_line, "no events", None)
    if more:
        ctx.say(f"(only the newest {limit} events shown: --limit N for another number, --all for every one)")
    return 0


def setup_log(sub: Any) -> None:
    p = add_command(
        sub, "log", func=cmd_log, help="the append-only event log, newest last",
        description=(
            "Events (created, claimed, extended, released, completed, expired, force_released, ...),\n"
            "newest last: the newest 100 unless --limit N, or --all (every event, streamed)."
        ),
        examples="  leasehold log 99927\n  leasehold log --limit 20 --json\n  leasehold log --all > events.txt",
    )
    p.add_argument("id", nargs="?", help="only this task's events")
    add_limit_options(p, "events", newest=True)
    p.add_argument("-f", "--follow", action="store_true",
                   help="then keep printing events as they commit (--json: one object per line)")


# -- watch ------------------------------------------------------------------------------------
def cmd_watch(ctx: Context) -> int:
    from leasehold.model import parse_duration, validate_task_id

    ids = [validate_task_id(i) for i in ctx.args.ids]
    kinds = [k for k in (ctx.args.kinds or "").split(",") if k.strip()]
    timeout = None if ctx.args.timeout is None else parse_duration(ctx.args.timeout, "--timeout")
    return follow(ctx, ids, kinds, ctx.args.after, timeout)


def setup_watch(sub: Any) -> None:
    p = add_command(
        sub, "watch", func=cmd_watch, help="stream events as they commit",
        description=(
            "Print events as they commit, from now on (or after event --after N): only those of\n"
            "the task ids given and of --kinds when given. Through a server this follows its\n"
            "event stream (/v1/events), resuming from the last event seen after a dropped\n"
            "connection; on a local ledger it polls. --json prints one object per line."
        ),
        examples=(
            "  leasehold watch\n"
            "  leasehold watch 99927 deploy --kinds claimed,released,expired\n"
            "  leasehold watch --after 1200 --json --timeout 1m"
        ),
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="only these tasks' events")
    p.add_argument("--kinds", metavar="K1,K2", help="only these event kinds")
    p.add_argument("--after", type=int, metavar="EVENT_ID", help="start after this event id (default: now)")
    p.add_argument("--timeout", metavar="DURATION", help="stop after this long (default: never)")


# -- migrate / whoami -------------------------------------------------------------------------
def cmd_migrate(ctx: Context) -> int:
    store = ctx.ledger.store
    applied = store.applied_on_open + store.migrate()  # opening the ledger applies pending ones
    repaired = store.restore_guards()  # append-only triggers dropped or disabled since
    lines = [f"applied {m}" for m in applied] + repaired
    ctx.out({"applied": applied, "repaired": repaired}, "\n".join(lines) or "schema up to date")
    return 0


def setup_migrate(sub: Any) -> None:
    add_command(
        sub, "migrate", func=cmd_migrate, help="apply pending schema migrations",
        description="Apply pending schema migrations (normal commands also apply them on first use).",
        examples="  leasehold migrate --db postgresql://leasehold@db1/leasehold",
    )


def cmd_whoami(ctx: Context) -> int:
    from leasehold.config import resolve_actor, resolve_session

    actor, actor_source = resolve_actor(getattr(ctx.args, "actor", None), ctx.settings)
    session, session_source = resolve_session(getattr(ctx.args, "session", None), required=False)
    from leasehold.urls import redact

    settings = ctx.settings
    holder = f"{actor}:{session}" if session else None
    db = redact(settings.db)
    worktree = None
    if settings.worktree is not None:
        worktree = {"worktree": settings.worktree[0], "main_worktree": settings.worktree[1]}
    data = {"holder": holder, "actor": actor, "actor_source": actor_source,
            "session": session, "session_source": session_source,
            "db": db, "db_source": settings.db_source, "db_shared_worktrees": worktree}
    text = (f"{holder or actor + ':(no session)'}\n  actor   {actor}  (from {actor_source})\n"
            f"  session {session or '-'}  (from {session_source or 'nowhere: pass --session'})\n"
            f"  db      {db}  (from {settings.describe_source()})")
    ctx.out(data, text)
    return 0


def setup_whoami(sub: Any) -> None:
    add_command(
        sub, "whoami", func=cmd_whoami, help="the resolved actor:session and where each part came from",
        description="Print the holder identity every command uses, and where each part came from.",
        examples="  leasehold whoami\n  LEASEHOLD_SESSION=abc leasehold whoami --json",
    )


# -- op -----------------------------------------------------------------------------------------
def cmd_op(ctx: Context) -> int:
    op = ctx.ledger.lookup_op(ctx.args.op_id_arg)
    if op is None:
        ctx.out({"op_id": ctx.args.op_id_arg, "applied": False},
                f"operation {ctx.args.op_id_arg}: not applied (nothing recorded under this id; "
                "retrying with --op-id is safe)")
        return 3
    data = op.to_dict()
    tasks = ", ".join(f"{t.id} (status {t.status}, fence {t.fence})" for t in op.tasks) or "-"
    result = op.result
    if "reservations" in result:
        tasks = ", ".join(str(r["ticket_id"]) for r in result["reservations"])
    elif "paths" in result or "released" in result or "cleared" in result:
        pairs = result.get("paths") or result.get("released") or result.get("cleared") or []
        # released/cleared: [pattern, what it released]; a pattern that released nothing is
        # not named (the call reported it as not reserved)
        tasks = ", ".join(str(p["pattern"] if isinstance(p, dict) else p[0]) for p in pairs
                          if isinstance(p, dict) or p[1]) or "-"
    elif "post" in result:
        tasks = f"post #{result['post']}" + (f" ({op.task_id})" if op.task_id else "")
    by = f" by {op.holder}" if op.holder else ""
    ctx.out(data, f"operation {op.op_id}: applied: {op.kind}{by} at {format_ts(op.ts)}; {tasks}")
    return 0


def setup_op(sub: Any) -> None:
    p = add_command(
        sub, "op", func=cmd_op, help="look an operation id up: did that call apply?",
        description=(
            "Every mutating command carries an operation id (--op-id, or a random one) recorded\n"
            "with its effect. 'op' answers whether a call with that id applied: yes (exit 0,\n"
            "with the recorded outcome) or no (exit 3: nothing applied, retrying with the same\n"
            "--op-id is safe). Use it after exit 76 (outcome unknown), which names the id."
        ),
        examples=(
            "  leasehold claim 99927 --op-id deploy-42-claim || leasehold op deploy-42-claim\n"
            "  leasehold op deploy-42-claim --json | jq .applied"
        ),
    )
    p.add_argument("op_id_arg", metavar="OP_ID", help="the operation id")


COMMANDS = {
    "claim": setup_claim,
    "extend": setup_extend,
    "release": setup_release,
    "done": setup_done,
    "status": setup_status,
    "check": setup_check,
    "sweep": setup_sweep,
    "show": setup_show,
    "who": setup_who,
    "add": setup_add,
    "reopen": setup_reopen,
    "list": setup_list,
    "next": setup_next,
    "log": setup_log,
    "watch": setup_watch,
    "migrate": setup_migrate,
    "whoami": setup_whoami,
    "op": setup_op,
}
