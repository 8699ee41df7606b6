"""``leasehold share``: let named sessions (agent teammates) work under a lease you hold."""

from __future__ import annotations

from leasehold.cli.common import Context, add_command

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def cmd_share(ctx: Context) -> int:
    holder = ctx.me()
    lease = ctx.ledger.share(ctx.args.id, holder, ctx.args.sessions)
    sessions = ctx.ledger.shared_among([ctx.args.id]).get(ctx.args.id, [])
    data = dict(lease.task.to_dict(ctx.ledger.now()), shared_with=sessions)
    ctx.out(data, f"task {ctx.args.id} (fence {lease.task.fence}) is shared with "
                  + ", ".join(sessions))
    return 0


def setup_share(sub: Any) -> None:
    p = add_command(
        sub, "share", func=cmd_share,
        help="let other sessions (agent teammates) work under a lease you hold",
        description=(
            "Claude Code agent teams: every teammate has its own session id, so the lead's lease\n"
            "would block them at the dispatch gate. Sharing names the sessions that may pass;\n"
            "every other session is still denied. A share lasts as long as this grant of the\n"
            "lease (renewals keep it; a release, expiry or takeover ends it). Only the holder of\n"
            "a valid lease can share it: otherwise exit 1 with the reason."
        ),
        examples=(
            "  leasehold share 99927 4b1e0c2a-teammate-1 9d7f-teammate-2\n"
            "  leasehold claim 99927 --share-with 4b1e0c2a-teammate-1   # in one step"
        ),
    )
    p.add_argument("id", help="task id")
    p.add_argument("sessions", nargs="+", metavar="SESSION", help="session ids to share with")


COMMANDS = {"share": setup_share}
