"""File reservation commands: reserve-path, release-path, paths."""

from __future__ import annotations

from leasehold.cli.common import Context, add_command, add_op_id_option, add_ttl_options
from leasehold.model import format_ts
from leasehold.untrusted import escape

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.model import PathReservation


def _line(verb: str, res: PathReservation) -> str:
    kind = "exclusive" if res.exclusive else "shared"
    reason = f"  ({escape(res.reason)})" if res.reason else ""
    return (f"{verb} {escape(res.pattern)} as {escape(res.holder)} until {format_ts(res.expires_at)} "
            f"({kind}, fence {res.fence}){reason}")


def cmd_reserve_path(ctx: Context) -> int:
    from leasehold import paths

    ledger = ctx.ledger
    holder = ctx.me()
    assert holder is not None  # required=True raises instead
    granted = paths.reserve(ledger, ctx.args.patterns, holder, ctx.ttl(),
                            shared=ctx.args.shared, reason=ctx.args.reason, op_id=ctx.args.op_id)
    # the instant of the grant (each expiry is that instant plus its TTL), or of the replay of
    # a recorded grant: no round trip after the commit is needed to report it
    now = getattr(ledger, "replayed_at", None) or max(r.expires_at - r.ttl for r in granted)
    ctx.out([r.to_dict(now) for r in granted], "\n".join(_line("reserved", r) for r in granted))
    return 0


def setup_reserve_path(sub: Any) -> None:
    p = add_command(
        sub, "reserve-path", func=cmd_reserve_path,
        help="reserve files: a lease on gitignore-style path patterns",
        description=(
            "Reserve every GLOB (gitignore syntax, relative to the repository root) for your\n"
            "holder, all or none. Exclusive by default: it conflicts with any overlapping\n"
            "reservation of another holder; --shared ones conflict only with others' exclusive\n"
            "ones. A conflict: exit 1 naming the holder. Same TTL, heartbeat and fence rules as\n"
            "task leases; reserving your own pattern again renews it (same fence). The Edit gate\n"
            "denies other sessions' edits under exclusive reservations."
        ),
        examples=(
            "  leasehold reserve-path 'src/api/**' --reason \"refactoring the router\"\n"
            "  leasehold reserve-path docs/guide.md README.md --ttl 30m\n"
            "  leasehold reserve-path 'tests/**' --shared --json"
        ),
    )
    p.add_argument("patterns", nargs="+", metavar="GLOB", help="gitignore-style pattern")
    add_ttl_options(p)
    p.add_argument("--shared", action="store_true", help="a shared reservation (coexists with other shared ones)")
    p.add_argument("--reason", help="why (shown to others)")
    add_op_id_option(p)


def cmd_release_path(ctx: Context) -> int:
    from leasehold import paths
    from leasehold.errors import InvalidInput

    args = ctx.args
    data, lines = [], []
    if args.force:
        if not args.reason:
            raise InvalidInput("--force needs --reason TEXT: say why the reservation is cleared")
        cleared = paths.force_release(ctx.ledger, args.patterns, args.reason,
                                      ctx.holder(required=False), op_id=args.op_id)
        for pattern, gone in cleared:
            data.append({"pattern": pattern, "released": bool(gone),
                         "fence": gone[0].fence if gone else None,
                         "holders": [r.holder for r in gone]})
            lines.append(f"force-released {escape(pattern)} of {', '.join(escape(r.holder) for r in gone)}"
                         if gone else f"{escape(pattern)} is not reserved; nothing to release")
        ctx.out(data, "\n".join(lines))
        return 0
    if args.reason:
        raise InvalidInput("--reason goes with --force")
    holder = ctx.me()
    assert holder is not None  # required=True raises instead
    results = paths.release(ctx.ledger, args.patterns, holder, op_id=args.op_id)
    for pattern, res in results:
        data.append({"pattern": pattern, "released": res is not None,
                     "fence": res.fence if res else None})
        lines.append(f"released {pattern}" if res else f"{pattern} is not reserved by you; nothing to release")
    ctx.out(data, "\n".join(lines))
    return 0


def setup_release_path(sub: Any) -> None:
    p = add_command(
        sub, "release-path", func=cmd_release_path, help="release your file reservations",
        description=(
            "Release your reservations of the given patterns (exactly as reserved). A pattern\n"
            "you do not hold: exit 0 saying so. --force --reason TEXT clears every holder's\n"
            "reservation of the patterns (a crashed session's files), recorded as a\n"
            "path_force_released event with the reason and who did it."
        ),
        examples=("  leasehold release-path 'src/api/**'\n  leasehold release-path docs/guide.md --json\n"
                  "  leasehold release-path 'src/api/**' --force --reason \"session crashed\""),
    )
    p.add_argument("patterns", nargs="+", metavar="GLOB", help="a pattern you reserved")
    p.add_argument("--force", action="store_true", help="release anyone's reservation (needs --reason)")
    p.add_argument("--reason", help="why the reservation is force-released (recorded)")
    add_op_id_option(p)


def cmd_paths(ctx: Context) -> int:
    from leasehold import paths

    ledger = ctx.ledger
    active = paths.active(ledger)
    now = ledger.now()
    ctx.out([r.to_dict(now) for r in active],
            "\n".join(_line("", r).lstrip() for r in active) if active else "no file reservations")
    return 0


def setup_paths(sub: Any) -> None:
    add_command(
        sub, "paths", func=cmd_paths, help="list valid file reservations",
        description="Valid file reservations, by pattern: holder, expiry, mode, fence, reason.",
        examples="  leasehold paths\n  leasehold paths --json | jq '.[].pattern'",
    )


COMMANDS = {
    "reserve-path": setup_reserve_path,
    "release-path": setup_release_path,
    "paths": setup_paths,
}
