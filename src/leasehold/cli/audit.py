"""Ledger verification commands: verify, anchor, db grant."""

from __future__ import annotations

from leasehold.cli.common import Context, add_command
from leasehold.errors import InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VERIFY_EXIT_CODES = """\
exit codes:
  0   the ledger verified clean
  1   a break was found (the first one is named: table, id, what)
  2   usage or invalid input (e.g. a malformed --anchor line)
  75  store busy or unavailable: retry later
  78  configuration error
"""


# -- verify -----------------------------------------------------------------------------------
def cmd_verify(ctx: Context) -> int:
    from leasehold.chain import parse_anchor
    from leasehold.verify import verify_ledger

    anchor = None
    if ctx.args.anchor is not None:
        try:
            anchor = parse_anchor(ctx.args.anchor)
        except ValueError as exc:
            raise InvalidInput(f"--anchor: {exc}") from None
    report = verify_ledger(ctx.ledger.store, anchor)
    rows = ", ".join(f"{n} {t}" for t, n in report.rows.items())
    if report.ok:
        text = (f"ledger verified: {rows}; {report.chains} chains, {report.checkpoints} "
                f"checkpoints, {report.tasks} tasks agree with their events; triggers in place"
                + ("; matches the anchor" if anchor else ""))
    else:
        more = report.total - 1
        text = f"BROKEN: {report.breaks[0]}" + (
            "\n" + "\n".join(f"  also: {b}" for b in report.breaks[1:])
            + (f"\n  ... {report.total - len(report.breaks)} more" if report.total > len(report.breaks) else "")
            if more else "")
    ctx.out(report.to_dict(), text)
    return 0 if report.ok else 1


def setup_verify(sub: Any) -> None:
    parser = add_command(
        sub, "verify", func=cmd_verify,
        help="ledger verification: recompute the hash chains and check the history",
        description=(
            "Ledger verification (not 'make verify', the linearizability harness): recompute\n"
            "every hash chain of events, feed_posts, reservations and namespaces; check that\n"
            "the append-only triggers exist and are enabled, that checkpointed id ranges lost\n"
            "or gained no row, the event log's invariants (no overlapping valid leases, fence\n"
            "+1 per grant, completed at most once per reopen) and that every task row agrees\n"
            "with its last events (holder, fence, status), every share with its shared event,\n"
            "the feed's state (feed_items) with what its posts reduce to. Streams: O(rows),\n"
            "bounded memory.\n"
            "With --anchor, also detect a truncated or rewritten history up to the anchor."),
        examples=("  leasehold verify\n  leasehold verify --json\n"
                  "  leasehold verify --anchor \"$(cat anchors/2026-12-01.txt)\""),
        exit_codes=VERIFY_EXIT_CODES,
    )
    parser.add_argument("--anchor", metavar="LINE",
                        help="a line printed by 'leasehold anchor' and kept outside the database")


# -- anchor -----------------------------------------------------------------------------------
def cmd_anchor(ctx: Context) -> int:
    from leasehold.chain import format_anchor

    heads = ctx.ledger.store.checkpoint()
    line = format_anchor(heads)
    ctx.out({"anchor": line, "heads": {t: {"upto_id": u, "hash": h} for t, (u, h) in heads.items()}},
            line)
    return 0


def setup_anchor(sub: Any) -> None:
    add_command(
        sub, "anchor", func=cmd_anchor,
        help="checkpoint the hash chains and print their heads as one line to keep elsewhere",
        description=(
            "Take a checkpoint of every chained table (events, feed_posts, reservations,\n"
            "namespaces) and print the heads on one line. Publish it outside the database (a\n"
            "commit message, a CI log, a feed post): 'leasehold verify --anchor LINE' then\n"
            "detects a history truncated or rewritten (even with recomputed hashes) up to it.\n"
            "Run it periodically (cron): each run is also the periodic checkpoint."),
        examples=("  leasehold anchor >> ~/leasehold-anchors.txt\n"
                  "  git commit --allow-empty -m \"$(leasehold anchor)\""),
    )


# -- db grant ---------------------------------------------------------------------------------
def cmd_db(ctx: Context) -> int:
    store = ctx.ledger.store
    if store.dialect != "postgres":
        raise InvalidInput("'db grant' is for PostgreSQL ledgers (a SQLite file's owner can "
                           "always rewrite it: keep anchors instead)")
    done = store.grant_role(ctx.args.role)  # type: ignore[attr-defined]
    ctx.out({"role": ctx.args.role, "statements": done},
            f"granted {ctx.args.role} the ledger's operations without rewriting history "
            f"({len(done)} statements)")
    return 0


def setup_db(sub: Any) -> None:
    parser = add_command(
        sub, "db", func=cmd_db,
        help="PostgreSQL least privilege: 'db grant ROLE'",
        description=(
            "db grant ROLE: give an existing PostgreSQL role every ledger operation (run it as\n"
            "the tables' owner). The role may SELECT everything and INSERT history, but not\n"
            "UPDATE/DELETE/TRUNCATE events, feed_posts, namespaces or chain_checkpoints, only\n"
            "reads feed_items and feed_state (the ledger writes them through the owner's\n"
            "functions, which only the owner and granted roles may execute), may\n"
            "change only a reservation's abandonment, cannot alter or disable triggers (it owns\n"
            "nothing), and a deferred trigger refuses any change to a task row that does not\n"
            "come with its event in the same transaction. See the README for the limits."),
        examples="  leasehold db grant leasehold_app --db postgresql://owner@db1/leasehold",
    )
    parser.add_argument("action", choices=["grant"], help="grant")
    parser.add_argument("role", help="an existing role that must not own the ledger's tables")


COMMANDS = {"verify": setup_verify, "anchor": setup_anchor, "db": setup_db}
