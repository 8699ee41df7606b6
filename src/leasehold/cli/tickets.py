"""Ticket and feed commands: namespace add|list, reserve, reservation show|abandon,
feed post|amend|list|tail|import|confirm, queue, drift-check."""

from __future__ import annotations

import sys

from leasehold.cli.common import (
    Context,
    LeaseholdParser,
    add_command,
    add_limit_options,
    add_op_id_option,
    output_lost,
)
from leasehold.errors import InvalidInput
from leasehold.model import format_ts
from leasehold.untrusted import escape

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.model import Post, Reservation


def _actions(parser: Any) -> Any:
    return parser.add_subparsers(dest="action", metavar="ACTION", parser_class=LeaseholdParser)


def _no_action(name: str, actions: str) -> Any:
    def run(ctx: Context) -> int:
        raise InvalidInput(f"{name} needs an action: {actions} (see 'leasehold {name} --help')")
    return run


def post_line(post: Post) -> str:
    flags = f"  [{' '.join(post.flags)}]" if post.flags else ""
    refs = f"  (re #{post.refs})" if post.refs is not None else ""
    proof = f"  ({post.proof_kind}: {escape(post.proof)})" if post.proof_kind else ""
    return (f"{format_ts(post.ts)}  #{post.id}  {post.kind.upper():<10}  {post.item or '-'}  "
            f"{escape(post.seat)}  {escape(post.subject)}{flags}{refs}{proof}")


def reservation_line(res: Reservation) -> str:
    state = "" if res.status == "reserved" else f"  [abandoned {format_ts(res.abandoned_at)} by {res.abandoned_by}]"
    return f"{res.ticket_id}  reserved by {escape(res.holder)} at {format_ts(res.reserved_at)}{state}"


# -- namespace --------------------------------------------------------------------------------
def cmd_namespace_add(ctx: Context) -> int:
    args = ctx.args
    namespace, created = ctx.ledger.tickets.add_namespace(args.prefix, args.format, args.lane,
                                                          by=ctx.holder(required=False))
    data = namespace.to_dict()
    data["created"] = created
    lane = f", lane-private to {namespace.lane_actor}" if namespace.lane_actor else ""
    verb = "added" if created else "exists:"
    ctx.out(data, f"{verb} namespace {namespace.prefix} ({namespace.format}{lane})")
    return 0


def cmd_namespace_list(ctx: Context) -> int:
    rows = ctx.ledger.tickets.namespaces()
    data, lines = [], []
    for ns, stats in rows:
        data.append(dict(ns.to_dict(), **stats))
        lane = f"  lane {ns.lane_actor}" if ns.lane_actor else ""
        lines.append(f"{ns.prefix:<8} {ns.format:<28} reserved {stats['reserved']}"
                     f" (abandoned {stats['abandoned']})  last {stats['last_ticket'] or '-'}"
                     f"  next {stats.get('next_ticket') or '-'}{lane}")
    ctx.out(data, "\n".join(lines) if lines else "no namespaces")
    return 0


def setup_namespace(sub: Any) -> None:
    p = add_command(
        sub, "namespace", func=_no_action("namespace", "add or list"),
        help="define ticket namespaces (add, list)",
        description=(
            "Ticket-number namespaces such as CMB-NNNN. A format is a Python format string over\n"
            "prefix, seq and date (UTC); a format with {date} restarts seq at 1 each UTC day.\n"
            "Reserving into an unknown prefix creates it with the default {prefix}-{seq:04d}."
        ),
        examples=(
            "  leasehold namespace add CMB\n"
            "  leasehold namespace add FLT --format 'FLT-{date:%Y%m%d}{seq:02d}'\n"
            "  leasehold namespace add ORA --lane ORA-01\n"
            "  leasehold namespace list --json"
        ),
    )
    actions = _actions(p)
    a = add_command(
        actions, "add", func=cmd_namespace_add, help="define a namespace",
        description=(
            "Define namespace PREFIX. --format: a format over {prefix}, {seq} and {date}\n"
            "(default {prefix}-{seq:04d} -> CMB-0036; FLT-{date:%Y%m%d}{seq:02d} -> FLT-2026112101,\n"
            "seq restarting each UTC day). --lane ACTOR: lane-private, any other actor's reserve\n"
            "is refused (exit 1). Adding the same definition again: exit 0; a different one for an\n"
            "existing prefix: exit 1 (a definition never changes)."
        ),
        examples=(
            "  leasehold namespace add CMB\n"
            "  leasehold namespace add FLT --format 'FLT-{date:%Y%m%d}{seq:02d}'\n"
            "  leasehold namespace add ORA --lane ORA-01 --json"
        ),
    )
    a.add_argument("prefix", help="1-32 letters, digits or _, starting with a letter")
    a.add_argument("--format", metavar="FMT", help="Python format over prefix, seq, date (default {prefix}-{seq:04d})")
    a.add_argument("--lane", metavar="ACTOR", help="lane-private: only ACTOR may reserve")
    add_command(
        actions, "list", func=cmd_namespace_list, help="list namespaces",
        description="Namespaces with their format, lane, reservation count and last ticket.",
        examples="  leasehold namespace list\n  leasehold namespace list --json",
    )


# -- reserve / reservation --------------------------------------------------------------------
def cmd_reserve(ctx: Context) -> int:
    reservations = ctx.ledger.tickets.reserve(ctx.args.prefix, ctx.me(), ctx.args.count,
                                              op_id=ctx.args.op_id)
    data = [r.to_dict() for r in reservations]
    ctx.out(data if ctx.args.count > 1 else data[0], "\n".join(r.ticket_id for r in reservations))
    return 0


def setup_reserve(sub: Any) -> None:
    p = add_command(
        sub, "reserve", func=cmd_reserve, help="reserve the next ticket number(s) in a namespace",
        description=(
            "Reserve the next number(s) in PREFIX and print the id(s), one per line. The ledger\n"
            "owns the counter: uniqueness is enforced by the database (unique (prefix, period,\n"
            "seq) and unique ticket id), so concurrent seats never get the same number. Ids\n"
            "already in use (a task, a post) are skipped. Lane-private namespace of another\n"
            "actor: exit 1. --json prints the reservation (a list with --count > 1)."
        ),
        examples=(
            "  leasehold reserve CMB\n"
            "  leasehold reserve FLT --count 3\n"
            "  ID=$(leasehold reserve CMB) && echo \"filing $ID\"\n"
            "  leasehold reserve CMB --op-id nightly-2026-12-01   # a rerun prints the same id"
        ),
    )
    p.add_argument("prefix", help="namespace prefix, e.g. CMB")
    p.add_argument("--count", type=int, default=1, help="how many numbers (1-1000, default 1)")
    add_op_id_option(p)


def cmd_reservation_show(ctx: Context) -> int:
    res = ctx.ledger.tickets.reservation(ctx.args.id)
    ctx.out(res.to_dict(), reservation_line(res))
    return 0


def cmd_reservation_abandon(ctx: Context) -> int:
    args = ctx.args
    res, changed = ctx.ledger.tickets.abandon(args.id, ctx.me(), args.reason, args.force)
    data = res.to_dict()
    data["changed"] = changed
    ctx.out(data, f"abandoned {res.ticket_id} (the number is never reused)" if changed
            else f"{res.ticket_id} was already abandoned; nothing changed")
    return 0


def setup_reservation(sub: Any) -> None:
    p = add_command(
        sub, "reservation", func=_no_action("reservation", "show or abandon"),
        help="show or abandon a reservation",
        description="Inspect a reserved ticket id, or give it up (its number is never reused).",
        examples="  leasehold reservation show CMB-0036\n  leasehold reservation abandon CMB-0037 --reason 'filed twice'",
    )
    actions = _actions(p)
    s = add_command(
        actions, "show", func=cmd_reservation_show, help="a reservation; unknown id: exit 3",
        description="The reservation: ticket id, namespace, period, seq, holder, time, status.",
        examples="  leasehold reservation show CMB-0036\n  leasehold reservation show CMB-0036 --json",
    )
    s.add_argument("id", help="ticket id")
    a = add_command(
        actions, "abandon", func=cmd_reservation_abandon, help="give up a reserved number",
        description=(
            "Mark a reservation abandoned; the number is never handed out again. Only the\n"
            "reserving actor may (another's: exit 1 unless --force). An id an actionable post\n"
            "files a ticket under: exit 1 (amend the post instead). Twice: exit 0, no change."
        ),
        examples="  leasehold reservation abandon CMB-0037\n  leasehold reservation abandon CMB-0037 --force --reason 'seat crashed'",
    )
    a.add_argument("id", help="ticket id")
    a.add_argument("--reason", help="why (recorded)")
    a.add_argument("--force", action="store_true", help="abandon another actor's reservation")


# -- feed -------------------------------------------------------------------------------------
def cmd_feed_post(ctx: Context) -> int:
    args = ctx.args
    post = ctx.ledger.feed.post(
        args.kind, args.subject, ctx.me(), body=args.body, item=args.item,
        reserve=args.reserve, provisional=args.provisional, release_proof=args.release_proof,
        repair=args.repair, op_id=args.op_id,
    )
    ctx.out(post.to_dict(), f"posted #{post.id} {post.kind} {post.item or '-'}: {escape(post.subject)}"
            + (f"  [{' '.join(post.flags)}]" if post.flags else ""))
    return 0


def cmd_feed_amend(ctx: Context) -> int:
    args = ctx.args
    post = ctx.ledger.feed.amend(args.post, ctx.me(), subject=args.subject, body=args.body,
                                 renumber=args.renumber, prefix=args.prefix, op_id=args.op_id)
    ctx.out(post.to_dict(), f"amended #{post.refs} with #{post.id}: {post.item or '-'} {escape(post.subject)}")
    return 0


def cmd_feed_list(ctx: Context) -> int:
    from leasehold.feed import parse_since

    args = ctx.args
    ledger = ctx.ledger
    since = parse_since(args.since, ledger.now()) if args.since else None
    limit = ctx.limit()
    if limit is None and args.item is None:
        posts: Any = ledger.feed.iter_posts(since=since, kind=args.kind)
        more = False
    else:
        posts = ledger.feed.posts(since=since, item=args.item, kind=args.kind,
                                  limit=None if limit is None else limit + 1)
        more = limit is not None and len(posts) > limit
        if more:
            posts = posts[1:]
    ctx.stream(posts, lambda p: p.to_dict(), post_line, "no posts", None)
    if more:
        ctx.say(f"(only the last {limit} posts shown: --limit N for another number, --all for every one)")
    return 0


#: ``feed tail -f`` bounds, in seconds: the poll interval, and the longest --timeout (7 days).
TAIL_INTERVAL = (0.01, 3600.0)
TAIL_TIMEOUT_MAX = 7 * 86400.0


def cmd_feed_tail(ctx: Context) -> int:
    import json
    import signal
    import time

    args = ctx.args
    if not TAIL_INTERVAL[0] <= args.interval <= TAIL_INTERVAL[1]:  # also refuses nan
        raise InvalidInput(f"--interval must be {TAIL_INTERVAL[0]:g} to {TAIL_INTERVAL[1]:g} "
                           f"seconds, got {args.interval:g}")
    if args.timeout is not None and not 0 < args.timeout <= TAIL_TIMEOUT_MAX:
        raise InvalidInput(f"--timeout must be more than 0 and at most {TAIL_TIMEOUT_MAX:g} "
                           f"seconds (7 days), got {args.timeout:g}")
    if args.count is not None and args.count < 1:
        raise InvalidInput(f"--count must be at least 1, got {args.count}")
    feed = ctx.ledger.feed

    def emit(post: Post) -> None:
        if ctx.json:
            sys.stdout.write(json.dumps(post.to_dict(), ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(post_line(post) + "\n")
        sys.stdout.flush()

    posts = feed.last(args.lines)
    last = posts[-1].id if posts else (feed.last_id() if args.lines == 0 else 0)
    for post in posts:
        emit(post)
    if not args.follow:
        return 0
    stop = []

    def on_signal(signum: int, frame: object) -> None:
        stop.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    seen = 0
    while not stop and not output_lost():  # the reader went away (| head), or stdout is full
        for post in feed.after(last):
            emit(post)
            last = post.id
            seen += 1
            if args.count is not None and seen >= args.count:
                return 0
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return 0
            time.sleep(min(args.interval, left))
        else:
            time.sleep(args.interval)
    return 0


def cmd_feed_import(ctx: Context) -> int:
    result = ctx.ledger.feed.import_file(ctx.args.file, ctx.me())
    data = {"imported": len(result.posts), "skipped": result.skipped,
            "posts": [p.to_dict() for p in result.posts]}
    pending = sum(1 for p in result.posts if p.flags)
    ctx.out(data, f"imported {len(result.posts)} post(s) from {ctx.args.file}"
            f" ({pending} CONFIRM-PENDING; {result.skipped} already imported)")
    return 0


def cmd_feed_confirm(ctx: Context) -> int:
    result = ctx.ledger.feed.confirm(ctx.args.post, ctx.me(), prefix=ctx.args.prefix,
                                     op_id=ctx.args.op_id)
    ctx.out(result.to_dict(), result.message)
    return 0


def setup_feed(sub: Any) -> None:
    from leasehold.feed import KINDS, POSTABLE

    p = add_command(
        sub, "feed", func=_no_action("feed", "post, amend, list, tail, import or confirm"),
        help="the append-only feed (post, amend, list, tail, import, confirm)",
        description=(
            "The append-only feed of ticket posts. Posts are never edited or deleted (the database\n"
            "refuses it): 'feed amend' appends an AMENDMENT referencing the original. An\n"
            "actionable post creates (or reopens) the task with its id, so it can be claimed."
        ),
        examples=(
            "  leasehold feed post --kind actionable --reserve CMB --subject '{{ITEM_ID}}: fix the retry loop'\n"
            "  leasehold feed post --kind actionable --provisional CMB-0105 --subject 'offline filing'\n"
            "  leasehold feed confirm 12\n"
            "  leasehold feed tail -f"
        ),
    )
    actions = _actions(p)
    a = add_command(
        actions, "post", func=cmd_feed_post, help="append a post",
        description=(
            "Append a post as ACTOR:SESSION. The item comes from --item ID, --reserve PREFIX (a\n"
            "number is reserved and the post filed in one transaction: Protocol A) or\n"
            "--provisional ID (filed CONFIRM-PENDING until 'feed confirm': Protocol B).\n"
            "{{ITEM_ID}} in subject and body becomes the id. Duplicate guard: an actionable post\n"
            "for an item that has an open actionable post is refused (exit 1, naming it) unless\n"
            "it carries --release-proof TEXT or --repair TEXT (recorded). After a done/release\n"
            "post, or with the task done in the lease ledger, a re-post is accepted and the\n"
            "evidence recorded automatically."
        ),
        examples=(
            "  leasehold feed post --kind actionable --reserve CMB --subject '{{ITEM_ID}}: flaky upload test'\n"
            "  leasehold feed post --kind claimed --item CMB-0036 --subject 'on it'\n"
            "  leasehold feed post --kind actionable --item CMB-0036 --subject 'again' --release-proof 'released in #40'\n"
            "  leasehold feed post --kind info --subject 'deploy window opens 14:00Z' --json"
        ),
    )
    a.add_argument("--kind", required=True, type=str.lower, choices=POSTABLE, metavar="KIND",
                   help=f"one of {', '.join(POSTABLE)}")
    a.add_argument("--subject", required=True, help="one line; {{ITEM_ID}} is replaced by the id")
    a.add_argument("--body", help="text; {{ITEM_ID}} is replaced by the id")
    source = a.add_mutually_exclusive_group()
    source.add_argument("--item", metavar="ID", help="the item (ticket id) the post is about")
    source.add_argument("--reserve", metavar="PREFIX", help="reserve a number in PREFIX and file under it")
    source.add_argument("--provisional", metavar="ID", help="file under ID, CONFIRM-PENDING (Protocol B)")
    proof = a.add_mutually_exclusive_group()
    proof.add_argument("--release-proof", metavar="TEXT", help="evidence the earlier post was released")
    proof.add_argument("--repair", metavar="TEXT", help="evidence this is a state repair")
    add_op_id_option(a)

    m = add_command(
        actions, "amend", func=cmd_feed_amend, help="append an AMENDMENT to a post",
        description=(
            "Append an AMENDMENT post referencing POST (nothing is edited). --subject/--body\n"
            "replace the effective ones. --renumber alone reserves a fresh number in the item's\n"
            "namespace (--prefix, or the one the id starts with) and clears CONFIRM-PENDING;\n"
            "--renumber ID moves the post to ID (duplicate guard applies)."
        ),
        examples=(
            "  leasehold feed amend 12 --subject 'CMB-0036: flaky upload test (macOS only)'\n"
            "  leasehold feed amend 12 --renumber\n"
            "  leasehold feed amend 12 --renumber CMB-0107 --json"
        ),
    )
    m.add_argument("post", type=int, help="post id")
    m.add_argument("--subject", help="the new subject")
    m.add_argument("--body", help="the new body")
    m.add_argument("--renumber", nargs="?", const="", metavar="ID",
                   help="move to a freshly reserved number (or to ID)")
    m.add_argument("--prefix", help="namespace for --renumber (default: from the id)")
    add_op_id_option(m)

    ls = add_command(
        actions, "list", func=cmd_feed_list, help="list posts",
        description="Posts by UTC timestamp (imported posts at their original time).",
        examples=(
            "  leasehold feed list --since 2h\n"
            "  leasehold feed list --item CMB-0036\n"
            "  leasehold feed list --kind actionable --since 2026-04-16T00:00:00Z --json"
        ),
    )
    ls.add_argument("--since", metavar="TS", help="ISO 8601 UTC time, or a duration back from now (2h)")
    ls.add_argument("--item", metavar="ID", help="posts about this item (with its amendments)")
    ls.add_argument("--kind", type=str.lower, choices=KINDS, metavar="KIND", help="only this kind")
    add_limit_options(ls, "posts", newest=True)

    t = add_command(
        actions, "tail", func=cmd_feed_tail, help="the newest posts; -f follows new ones",
        description=(
            "Print the newest posts in recording order; -f keeps polling for new ones until\n"
            "Ctrl-C / SIGTERM (exit 0), --timeout seconds, or --count new posts. With --json,\n"
            "one JSON object per line."
        ),
        examples=(
            "  leasehold feed tail -n 20\n"
            "  leasehold feed tail -f\n"
            "  leasehold feed tail -f -n 0 --count 1 --timeout 30 --json"
        ),
    )
    t.add_argument("-n", "--lines", type=int, default=10, help="how many recent posts first (default 10)")
    t.add_argument("-f", "--follow", action="store_true", help="keep printing new posts")
    t.add_argument("--interval", type=float, default=0.5, help="seconds between polls (0.01 to 3600, default 0.5)")
    t.add_argument("--timeout", type=float, help="stop following after this many seconds (at most 7 days)")
    t.add_argument("--count", type=int, help="stop after this many new posts")

    i = add_command(
        actions, "import", func=cmd_feed_import, help="import posts from a JSONL file",
        description=(
            "Import posts made elsewhere (Protocol B), keeping their UTC timestamps and seat names.\n"
            "One JSON object per line: ts, seat, kind, item, subject, optional body. Every line is\n"
            "validated first; a bad line: exit 2 naming it, nothing imported. Actionable posts\n"
            "arrive CONFIRM-PENDING (no duplicate guard; drift-check flags collisions until\n"
            "confirmed). Lines imported before are skipped."
        ),
        examples=(
            "  leasehold feed import offline-posts.jsonl\n"
            "  leasehold feed import laptop.jsonl --json | jq '.posts[].id'"
        ),
    )
    i.add_argument("file", help="a JSONL file")

    c = add_command(
        actions, "confirm", func=cmd_feed_confirm, help="Protocol B phase 2: confirm a provisional post",
        description=(
            "Look for other actionable posts that use POST's id. None: append CONFIRMED. A\n"
            "collision: the first post wins the number (earliest UTC timestamp, ties by\n"
            "lexicographic seat name); the winner gets CONFIRMED, each loser an AMENDMENT\n"
            "renumbering it to a freshly reserved id and clearing CONFIRM-PENDING. Confirming\n"
            "twice changes nothing."
        ),
        examples="  leasehold feed confirm 12\n  leasehold feed confirm 12 --prefix CMB --json",
    )
    c.add_argument("post", type=int, help="post id")
    c.add_argument("--prefix", help="namespace for renumbering (default: from the id)")
    add_op_id_option(c)


# -- queue / drift-check ----------------------------------------------------------------------
def queue_line(e: dict[str, Any]) -> str:
    owner = escape(e["owner"] or "-")
    if e["claimed_until"]:
        owner += f" until {e['claimed_until'][:19]}Z"
    drift = f"  DRIFT {','.join('#' + str(d) for d in e['drift'])}" if e["drift"] else ""
    return f"{e['item']:<16} {e['state']:<15} {e['warmth']:<5} {owner:<28} {escape(e['subject'])}{drift}"


def cmd_queue(ctx: Context) -> int:
    args = ctx.args
    limit = ctx.limit()
    entries = ctx.ledger.feed.iter_queue(args.state, args.item,
                                         page=1000 if limit is None else min(limit + 1, 1000))
    ctx.stream(entries, lambda e: e, queue_line, "the queue is empty", limit, "items")
    return 0


def setup_queue(sub: Any) -> None:
    from leasehold.feed import STATES

    p = add_command(
        sub, "queue", func=cmd_queue, help="the live reducer: every item's state, owner, warmth",
        description=(
            "Every item reduced from the feed and the leases: CONFIRM-PENDING, AWAITING_CLAIM,\n"
            "CLAIMED (by whom, until when), RELEASED, DONE; owner; last activity; warmth (hot <\n"
            "15 min, warm < 2 h, cold). Check it before filing or claiming. Open items first;\n"
            "the first 100 unless --limit N or --all."
        ),
        examples="  leasehold queue\n  leasehold queue --state AWAITING_CLAIM --json",
    )
    p.add_argument("--state", choices=STATES, help="only items in this state")
    p.add_argument("--item", metavar="ID", help="only this item")
    add_limit_options(p, "items")


def cmd_drift_check(ctx: Context) -> int:
    drift = ctx.ledger.feed.drift()
    lines = []
    for d in drift:
        other = d["collides_with"]
        hint = f" (CONFIRM-PENDING: run 'leasehold feed confirm {d['post']}')" if d["pending"] else ""
        lines.append(f"DRIFT {d['item']}: #{d['post']} by {escape(d['seat'])} at {d['ts'][:19]}Z collides with "
                     f"#{other['post']} by {escape(other['seat'])} at {other['ts'][:19]}Z{hint}")
    ctx.out({"clean": not drift, "drift": drift}, "\n".join(lines) if lines else "no drift")
    return 1 if drift else 0


def setup_drift_check(sub: Any) -> None:
    add_command(
        sub, "drift-check", func=cmd_drift_check, help="flag actionable posts colliding on one id",
        description=(
            "List actionable posts whose item id collides with an earlier actionable post (first\n"
            "post wins: earliest UTC time, then seat name) and that no AMENDMENT has renumbered.\n"
            "A re-post accepted on --release-proof / --repair evidence is not drift.\n"
            "Exit 1 if any drift, 0 if clean."
        ),
        examples="  leasehold drift-check\n  leasehold drift-check --json || alert-oncall",
    )


COMMANDS = {
    "namespace": setup_namespace,
    "reserve": setup_reserve,
    "reservation": setup_reservation,
    "feed": setup_feed,
    "queue": setup_queue,
    "drift-check": setup_drift_check,
}
