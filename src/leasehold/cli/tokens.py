"""Token commands for ``leasehold serve``: token create / list / revoke."""

from __future__ import annotations

from leasehold.cli.common import Context, add_command
from leasehold.errors import InvalidInput
from leasehold.model import format_ts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def cmd_token(ctx: Context) -> int:
    action = ctx.args.action
    tokens = ctx.ledger.tokens
    if action == "create":
        from leasehold.tokens import expires_seconds

        actor = getattr(ctx.args, "actor", None)
        if not actor:
            raise InvalidInput("token create needs --actor NAME: the actor the token acts as")
        info, token = tokens.create(actor, ctx.args.role, expires_seconds(ctx.args.expires),
                                    by=ctx.holder(required=False))
        data = info.to_dict(ctx.ledger.now())
        data["token"] = token
        ctx.say(f"created {info.id} for {info.actor} ({info.role}, expires "
                f"{format_ts(info.expires_at) if info.expires_at else 'never'}); "
                "the token is shown once: store it now")
        ctx.out(data, token)
        return 0
    if action == "list":
        now = ctx.ledger.now()
        found = tokens.list()
        lines = [f"{t.id}  {t.actor:<16} {t.role:<7} {t.state(now):<8} created {format_ts(t.created_at)}"
                 f"  expires {format_ts(t.expires_at) if t.expires_at else 'never'}" for t in found]
        ctx.out([t.to_dict(now) for t in found], "\n".join(lines) if lines else "no tokens")
        return 0
    if not ctx.args.token_id:
        raise InvalidInput("token revoke needs a token id (see 'leasehold token list')")
    info, revoked = tokens.revoke(ctx.args.token_id, by=ctx.holder(required=False))
    data = info.to_dict(ctx.ledger.now())
    data["revoked"] = revoked
    ctx.out(data, f"revoked {info.id} ({info.actor})" if revoked else f"{info.id} was already revoked")
    return 0


def setup_token(sub: Any) -> None:
    p = add_command(
        sub, "token", func=cmd_token, help="API tokens for 'leasehold serve': create, list, revoke",
        description=(
            "Tokens say who a network caller is. 'create' prints a new token ONCE (only its hash\n"
            "is stored) for --actor NAME with a role: agent (acts as its own actor), reader\n"
            "(reads and watches only) or admin (also force-releases and manages tokens).\n"
            "'list' shows ids, actors, roles and states; 'revoke ID' stops a token at once.\n"
            "Each create and revoke is a token_created / token_revoked event."
        ),
        examples=(
            "  leasehold token create --actor ci-bot --role agent --expires 90d\n"
            "  leasehold token list --json\n"
            "  leasehold token revoke tok_3f9a1c2b7d10"
        ),
    )
    p.add_argument("action", choices=("create", "list", "revoke"), help="what to do")
    p.add_argument("token_id", nargs="?", help="the token id to revoke")
    p.add_argument("--role", default="agent", choices=("agent", "admin", "reader"),
                   help="what the token may do (default agent)")
    p.add_argument("--expires", metavar="DURATION",
                   help="lifetime: 90d, 12h, seconds (default: never)")


COMMANDS = {"token": setup_token}
