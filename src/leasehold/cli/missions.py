"""``leasehold missions [--dir DIR] init|new|list|start|claim|log|done|requeue|resume``: the
file-based mission queue (:mod:`leasehold.missions`) from the command line."""

from __future__ import annotations

import argparse
import os
import sys

from leasehold.cli.common import Context, add_command, add_op_id_option, add_ttl_options
from leasehold.errors import InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.missions.board import Missions, MissionView, Outcome, Problem


def _files(command: Any) -> Any:
    """``command`` with the file system's refusals (a missions folder that is a file, a
    folder without permission, a full disk) reported as exit 2 naming the file, not as a bug."""
    def run(ctx: Context) -> int:
        try:
            return int(command(ctx) or 0)
        except OSError as exc:
            where = exc.filename if exc.filename is not None else missions_dir(ctx)
            raise InvalidInput(f"{where}: {exc.strerror or exc}") from None
    return run


def missions_dir(ctx: Context) -> str:
    """``--dir`` > ``LEASEHOLD_MISSIONS_DIR`` > ``missions_dir`` in leasehold.toml > ``./missions``."""
    flag = getattr(ctx.args, "dir", None)
    if flag:
        return flag
    if os.environ.get("LEASEHOLD_MISSIONS_DIR"):
        return os.environ["LEASEHOLD_MISSIONS_DIR"]
    return ctx.settings.path("missions_dir", "missions")


def board(ctx: Context, ledger: bool = True) -> Missions:
    from leasehold.missions.board import DEFAULT_STALE_AFTER, Missions

    stale_after = ctx.settings.seconds("stale_after", DEFAULT_STALE_AFTER)
    ttl = ctx.ttl() if hasattr(ctx.args, "ttl") else None
    return Missions(missions_dir(ctx), ctx.ledger if ledger else None, stale_after=stale_after, ttl=ttl)


def report_problems(problems: list[Problem]) -> None:
    for problem in problems:
        Context.say(f"leasehold: skipped: {problem.message}")


def outcome_data(m: Missions, outcome: Outcome) -> dict[str, Any]:
    """The JSON shape of a command's result (see the README)."""
    return {
        "action": outcome.action,
        "recovered": outcome.recovered,
        "message": outcome.message,
        "mission": m.view(outcome.mission).to_dict(),
        "skipped": outcome.skipped,
        "invalid": [p.to_dict() for p in outcome.problems],
    }


def show_outcome(ctx: Context, m: Missions, outcome: Outcome) -> int:
    report_problems(outcome.problems)
    text = outcome.message + (" (finished a step a crash had left undone)" if outcome.recovered else "")
    ctx.out(outcome_data(m, outcome), text)
    return 0


def _description(ctx: Context) -> str | None:
    value = getattr(ctx.args, "as_", None)
    if value is not None:
        value = " ".join(value.split())
        if not value:
            raise InvalidInput("--as needs a session description")
    return value


# -- init / new -------------------------------------------------------------------------------
def cmd_init(ctx: Context) -> int:
    m = board(ctx, ledger=False)
    created = m.init()
    text = "\n".join(f"created {p}" for p in created) or f"{m.root} is already set up"
    ctx.out({"dir": m.root, "created": created}, text)
    return 0


def cmd_new(ctx: Context) -> int:
    from leasehold.missions.board import MissionView

    m = board(ctx, ledger=False)
    mission = m.new(" ".join(ctx.args.title), ctx.args.id, ctx.args.priority)
    now = m.now()
    ctx.out(MissionView(mission, None, now, now, m.stale_after).to_dict(),
            f"created {mission.id}: {mission.path}")
    return 0


# -- list -------------------------------------------------------------------------------------
def cmd_list(ctx: Context) -> int:
    m = board(ctx)
    folders = ("queue", "active", "done") if ctx.args.all else ("queue", "active")
    views, problems = m.overview(folders)
    if ctx.args.stale:
        views = [v for v in views if v.stale]
    report_problems(problems)
    lines = []
    for folder in folders:
        chosen = [v for v in views if v.mission.folder == folder]
        if chosen:
            lines.append(f"{folder}/ ({len(chosen)})")
            lines.extend(f"  {v.describe()}" for v in chosen)
    if not lines:
        lines.append("no stale missions" if ctx.args.stale else "no missions")
    ctx.out({"missions": [v.to_dict() for v in views], "invalid": [p.to_dict() for p in problems]},
            "\n".join(lines))
    return 0


# -- claim / log / done / requeue / resume ----------------------------------------------------
def cmd_claim(ctx: Context) -> int:
    args = ctx.args
    if bool(args.id) == bool(args.next):
        raise InvalidInput("claim needs a mission ID or --next (not both)")
    m = board(ctx)
    holder = ctx.me()
    description = _description(ctx)
    if args.next:
        from leasehold.missions.board import NoMission

        try:
            outcome = m.claim_next(holder, description=description, op_id=args.op_id)
        except NoMission as exc:
            report_problems(exc.problems)
            raise
    else:
        outcome = m.claim(args.id, holder, description=description, op_id=args.op_id)
    return show_outcome(ctx, m, outcome)


def cmd_log(ctx: Context) -> int:
    m = board(ctx)
    outcome = m.log(ctx.args.id, ctx.me(), " ".join(ctx.args.text), op_id=ctx.args.op_id)
    return show_outcome(ctx, m, outcome)


def cmd_done(ctx: Context) -> int:
    m = board(ctx)
    outcome = m.done(ctx.args.id, ctx.me(), description=_description(ctx), note=ctx.args.note,
                     op_id=ctx.args.op_id)
    return show_outcome(ctx, m, outcome)


def cmd_requeue(ctx: Context) -> int:
    m = board(ctx)
    outcome = m.requeue(ctx.args.id, ctx.me(), force=ctx.args.force, reason=ctx.args.reason,
                        description=_description(ctx), op_id=ctx.args.op_id)
    return show_outcome(ctx, m, outcome)


def cmd_resume(ctx: Context) -> int:
    m = board(ctx)
    outcome = m.resume(ctx.args.id, ctx.me(), description=_description(ctx), op_id=ctx.args.op_id)
    return show_outcome(ctx, m, outcome)


# -- start ------------------------------------------------------------------------------------
def _ask(prompt: str, valid: set[str]) -> str:
    """Ask on the terminal until the answer is one of ``valid`` ("q" on end of input)."""
    while True:
        try:
            answer = input(prompt).strip().lower()
        except EOFError:
            sys.stdout.write("\n")
            return "q"
        if answer in valid:
            return answer
        sys.stdout.write(f"Please answer one of: {', '.join(sorted(valid - {''})) or 'Enter'}"
                         f"{' or Enter' if '' in valid else ''}\n")


def _numbered(title: str, views: list[MissionView], empty: str) -> list[str]:
    if not views:
        return [empty]
    return [title] + [f"  {i}. {v.describe()}" for i, v in enumerate(views, 1)]


def cmd_start(ctx: Context) -> int:
    args = ctx.args
    chosen = [flag for flag in ("resume", "claim", "next") if getattr(args, flag)]
    if len(chosen) > 1:
        raise InvalidInput("start takes one of --resume ID, --claim ID, --next")
    m = board(ctx)
    views, problems = m.overview(("queue", "active"))
    active = [v for v in views if v.mission.folder == "active"]
    queue = [v for v in views if v.mission.folder == "queue"]
    report_problems(problems)
    listing = _numbered(f"Active missions ({len(active)}):", active, "No active missions.")
    listing += _numbered(f"Queue ({len(queue)}):", queue, "The queue is empty.")
    data: dict[str, Any] = {"active": [v.to_dict() for v in active], "queue": [v.to_dict() for v in queue],
                            "invalid": [p.to_dict() for p in problems], "action": None}
    description = _description(ctx)
    outcome = None
    if chosen:
        holder = ctx.me()
        if args.resume:
            outcome = m.resume(args.resume, holder, description=description)
        elif args.claim:
            outcome = m.claim(args.claim, holder, description=description)
        else:
            outcome = m.claim_next(holder, description=description)
    elif not ctx.json and sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty():
        sys.stdout.write("\n".join(listing) + "\n")
        sys.stdout.flush()
        outcome = _interactive(ctx, m, active, queue, description)
        if outcome is not None:
            report_problems(outcome.problems)
            sys.stdout.write(outcome.message + "\n")
        return 0
    if outcome is not None:
        report_problems(outcome.problems)
        data["action"] = outcome_data(m, outcome)
        ctx.out(data, "\n".join(listing) + "\n" + outcome.message)
        return 0
    hints = []
    if active:
        hints.append("resume one:   leasehold missions start --resume ID")
    if queue:
        hints.append("claim one:    leasehold missions start --claim ID   (or --next)")
    ctx.out(data, "\n".join(listing + ([""] + hints if hints else [])))
    return 0


def _interactive(ctx: Context, m: Missions, active: list[MissionView], queue: list[MissionView],
                 description: str | None) -> Outcome | None:
    if active:
        numbers = {str(i) for i in range(1, len(active) + 1)}
        answer = _ask(f"Resume an active mission (1-{len(active)}), start a new one from the queue (n), "
                      "or quit (q)? ", numbers | {"n", "q"})
        if answer == "q":
            return None
        if answer in numbers:
            mission = active[int(answer) - 1].mission
            return m.resume(mission.id, ctx.me(), description=description)
    if not queue:
        sys.stdout.write("The queue is empty: nothing to claim.\n")
        return None
    numbers = {str(i) for i in range(1, len(queue) + 1)}
    answer = _ask(f"Claim a mission (1-{len(queue)}, Enter for the next in order, q to quit)? ",
                  numbers | {"", "q"})
    if answer == "q":
        return None
    holder = ctx.me()
    if answer == "":
        return m.claim_next(holder, description=description)
    return m.claim(queue[int(answer) - 1].mission.id, holder, description=description)


# -- parser -----------------------------------------------------------------------------------
def _dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", metavar="DIR", default=argparse.SUPPRESS,
                        help="the missions folder (default: LEASEHOLD_MISSIONS_DIR, missions_dir in "
                             "leasehold.toml, ./missions)")


def _as_option(parser: argparse.ArgumentParser, what: str = "claimed_by and the log line") -> None:
    parser.add_argument("--as", dest="as_", metavar="TEXT",
                        help=f"the session description for {what} (default: your ACTOR:SESSION)")


def setup_missions(sub: Any) -> None:
    p = add_command(
        sub, "missions", func=lambda ctx: 2,
        help="file-based missions: queue/ -> active/ -> done/, claims backed by leases",
        description=(
            "Missions are Markdown files with YAML frontmatter in DIR/queue, DIR/active and\n"
            "DIR/done (the mission coordination protocol). Every claim first takes the ledger\n"
            "lease on the mission id, then moves the file: two sessions never take one mission.\n"
            "Files are rewritten atomically; frontmatter keys and the body keep their bytes\n"
            "apart from the lines changed."
        ),
        examples=(
            "  leasehold missions init\n"
            "  leasehold missions new \"Thaifa migration\" --priority high\n"
            "  leasehold missions start\n"
            "  leasehold missions claim --next --as \"Thaifa P0 migration\"\n"
            "  leasehold missions log 2025-12-22-thaifa-migration \"Starting objective 1\"\n"
            "  leasehold missions done 2025-12-22-thaifa-migration"
        ),
    )
    _dir_option(p)

    def show_help(ctx: Context) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(func=show_help)
    msub = p.add_subparsers(dest="missions_command", metavar="COMMAND", parser_class=type(p))

    q = add_command(
        msub, "init", func=_files(cmd_init), help="create queue/, active/, done/ and TEMPLATE.md",
        description=("Create DIR/queue, DIR/active, DIR/done and DIR/TEMPLATE.md (frontmatter fields\n"
                     "mission_id, status, assigned_to, created, claimed_at, claimed_by). Existing files\n"
                     "are left alone."),
        examples="  leasehold missions init\n  leasehold missions --dir docs/missions init",
    )
    _dir_option(q)

    q = add_command(
        msub, "new", func=_files(cmd_new), help="create a QUEUED mission from the template",
        description=("Create DIR/queue/ID.md from DIR/TEMPLATE.md (or the built-in template): status\n"
                     "QUEUED, created today, the title as its '# ' heading. ID defaults to\n"
                     "YYYY-MM-DD-slug-of-the-title. An existing id: exit 1."),
        examples=("  leasehold missions new \"Refresh the missions standard\"\n"
                  "  leasehold missions new \"Thaifa migration\" --id 2025-12-22-thaifa --priority critical"),
    )
    _dir_option(q)
    q.add_argument("title", nargs="+", help="the mission's title")
    q.add_argument("--id", help="the mission id (letters, digits, '._:/#-')")
    q.add_argument("--priority", help="priority: critical, high, medium, low, P0-P4 or an integer")

    q = add_command(
        msub, "list", func=_files(cmd_list), help="queued and active missions with their leases",
        description=("Queued missions in claim order (priority, created, file name), then active ones,\n"
                     "each with title, status, claimed_at, claimed_by, the lease holder and expiry and\n"
                     "whether it is stale (active, no valid lease, claimed more than stale_after = 24h\n"
                     "ago). Invalid files are reported on stderr (file and YAML line) and skipped."),
        examples="  leasehold missions list\n  leasehold missions list --stale --json",
    )
    _dir_option(q)
    q.add_argument("--stale", action="store_true", help="only stale missions")
    q.add_argument("--all", action="store_true", help="include done/")

    q = add_command(
        msub, "start", func=_files(cmd_start), help="the start-of-session flow: resume an active mission or claim one",
        description=("Shows the active missions (title, claimed_at, claimed_by, held or stale) and the\n"
                     "queue. On a terminal it asks whether to resume an active mission or claim one\n"
                     "from the queue. Without a terminal (or with --json) it prints them and exits 0,\n"
                     "unless --resume ID, --claim ID or --next says what to do."),
        examples=("  leasehold missions start\n"
                  "  leasehold missions start --next --as \"Billing export, part 2\" --json\n"
                  "  leasehold missions start --resume 2025-12-21-billing-export"),
    )
    _dir_option(q)
    q.add_argument("--resume", metavar="ID", help="resume this active mission")
    q.add_argument("--claim", metavar="ID", help="claim this queued mission")
    q.add_argument("--next", action="store_true", help="claim the next queued mission")
    _as_option(q)
    add_ttl_options(q)

    q = add_command(
        msub, "claim", func=_files(cmd_claim), help="claim a queued mission (the lease first, then the move)",
        description=("Take the ledger lease on the mission id (another session holds it: exit 1 naming\n"
                     "the holder), then move queue/ID.md to active/ in one rename and set status ACTIVE,\n"
                     "claimed_at (the lease's grant time, ISO 8601 with offset), claimed_by (--as, default\n"
                     "ACTOR:SESSION), and log '- HH:MM - **CLAIMED** by session \"...\"'. --next takes the\n"
                     "first queued mission (priority, created, file name) whose lease is free, skipping\n"
                     "missions leased by others; none left: exit 1. Rerunning after a crash finishes\n"
                     "the claim."),
        examples=("  leasehold missions claim 2025-12-22-thaifa-migration-critical --as \"Thaifa P0\"\n"
                  "  leasehold missions claim --next --ttl 2h --json"),
    )
    _dir_option(q)
    q.add_argument("id", nargs="?", help="the mission id")
    q.add_argument("--next", action="store_true", help="claim the next available queued mission")
    _as_option(q)
    add_ttl_options(q)
    add_op_id_option(q)

    q = add_command(
        msub, "log", func=_files(cmd_log), help="append a line to an active mission's execution log",
        description=("Append '- HH:MM - TEXT' under '## Execution Log' (a '### YYYY-MM-DD' heading is\n"
                     "added for a new day) and extend your lease (the heartbeat). You must hold the\n"
                     "lease: otherwise exit 1."),
        examples=("  leasehold missions log 2025-12-22-thaifa \"Starting objective 1: migrate admin/\"\n"
                  "  leasehold missions log 2025-12-22-thaifa \"Objective 1 done\" --ttl 1h"),
    )
    _dir_option(q)
    q.add_argument("id", help="the mission id")
    q.add_argument("text", nargs="+", help="the log text")
    add_ttl_options(q, "the lease's own TTL")
    add_op_id_option(q)

    q = add_command(
        msub, "done", func=_files(cmd_done), help="finish an active mission: move to done/, complete the lease",
        description=("With your lease: move active/ID.md to done/, set status DONE, log '**DONE**', then\n"
                     "complete the lease in the ledger."),
        examples="  leasehold missions done 2025-12-22-thaifa --note \"all three objectives\"",
    )
    _dir_option(q)
    q.add_argument("id", help="the mission id")
    q.add_argument("--note", help="a note for the DONE log line")
    _as_option(q, "the log line")
    add_op_id_option(q)

    q = add_command(
        msub, "requeue", func=_files(cmd_requeue), help="put an active mission back in the queue",
        description=("Move active/ID.md back to queue/ with status QUEUED, claimed_at and claimed_by\n"
                     "emptied, log '**REQUEUED**', and release the lease. Allowed for the lease holder;\n"
                     "for others only when the mission is stale, or with --force --reason TEXT (which\n"
                     "also clears another session's valid lease, recorded in the ledger)."),
        examples=("  leasehold missions requeue 2025-12-21-billing-export\n"
                  "  leasehold missions requeue 2025-12-21-billing-export --force --reason \"session crashed\""),
    )
    _dir_option(q)
    q.add_argument("id", help="the mission id")
    q.add_argument("--force", action="store_true", help="requeue even if not stale or held by another session")
    q.add_argument("--reason", help="why (required with --force; logged)")
    _as_option(q, "the log line")
    add_op_id_option(q)

    q = add_command(
        msub, "resume", func=_files(cmd_resume), help="take over an active mission whose lease expired",
        description=("Take a new lease (a new fence) on an active mission nobody validly holds, set\n"
                     "claimed_at and claimed_by anew and log '**RESUMED** by session \"...\"'. Another\n"
                     "session's lease is still valid: exit 1 naming the holder."),
        examples="  leasehold missions resume 2025-12-21-billing-export --as \"Billing export, take 2\"",
    )
    _dir_option(q)
    q.add_argument("id", help="the mission id")
    _as_option(q)
    add_ttl_options(q)
    add_op_id_option(q)


COMMANDS = {"missions": setup_missions}
