"""What every command shares: the parser class, global options, the context (settings, ledger,
identity), output helpers, and the mapping of errors to exit codes."""

from __future__ import annotations

import argparse
import sys

from leasehold.cli.fast import LedgerContext
from leasehold.errors import InvalidInput, LeaseholdError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from leasehold.model import Holder


class RawFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep description/epilog layout (examples, exit codes) as written.

    The terminal width is asked for (which imports ``shutil``) only when help is printed, not
    for the formatter argparse builds behind every ``add_argument``.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = LeaseholdParser.help_width
        super().__init__(prog, indent_increment, max_help_position, width)


class LeaseholdParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit 2."""

    help_width: int | None = 78

    def format_help(self) -> str:
        import shutil

        LeaseholdParser.help_width = max(shutil.get_terminal_size().columns - 2, 40)
        return super().format_help()

    def error(self, message: str) -> None:  # type: ignore[override]
        from leasehold.untrusted import escape

        # "unrecognized arguments: ..." repeats the arguments as typed: escape them
        sys.stderr.write(f"{self.prog}: error: {escape(message, None)} (see '{self.prog} --help')\n")
        raise SystemExit(2)


_COMMON: argparse.ArgumentParser | None = None


def common_options() -> argparse.ArgumentParser:
    """Options every command accepts, before or after the command word (one parent parser,
    built once: argparse looks up message catalogs for every parser it builds)."""
    global _COMMON
    if _COMMON is not None:
        return _COMMON
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("global options")
    group.add_argument("--db", default=argparse.SUPPRESS, metavar="URL",
                       help="ledger: a path, sqlite:///path or postgresql://... "
                            "(default: LEASEHOLD_DB, leasehold.toml, ~/.local/share/leasehold/ledger.db)")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print JSON on stdout (stable shapes: see the README)")
    group.add_argument("--actor", default=argparse.SUPPRESS,
                       help="who you are (default: LEASEHOLD_ACTOR, leasehold.toml, git user.name, $USER)")
    group.add_argument("--session", default=argparse.SUPPRESS,
                       help="your session id (default: LEASEHOLD_SESSION, CLAUDE_CODE_SESSION_ID)")
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks")
    _COMMON = parent
    return parent


class StandaloneCommand:
    """Stands in for argparse's sub-parsers action when the command word comes first: the
    command's set-up function builds its parser as a parser of its own (``leasehold NAME``), and
    no top-level parser is built at all."""

    def __init__(self, typed: str) -> None:
        self.typed = typed
        self.parser: LeaseholdParser | None = None

    def add_parser(self, name: str, *, aliases: list[str] | None = None, help: str | None = None,
                   **kwargs: Any) -> LeaseholdParser:
        self.parser = LeaseholdParser(prog=f"leasehold {self.typed}", **kwargs)
        return self.parser


def add_command(sub: Any, name: str, *, help: str, description: str, examples: str,
                aliases: tuple[str, ...] = (), func: Callable[[Context], int | None],
                exit_codes: str | None = None) -> argparse.ArgumentParser:
    """Add a sub-command with its description, examples and the exit codes in its help
    (``exit_codes``: the command's own table, when it differs from leasehold's)."""
    from leasehold.cli import EXIT_CODES

    parser: argparse.ArgumentParser = sub.add_parser(
        name, aliases=list(aliases), help=help, description=description,
        epilog="examples:\n" + examples.rstrip() + "\n\n" + (exit_codes or EXIT_CODES),
        formatter_class=RawFormatter, parents=[common_options()],
    )
    parser.set_defaults(func=func)
    return parser


def add_ttl_options(parser: argparse.ArgumentParser, default_text: str = "10m, or default_ttl in leasehold.toml") -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--ttl", metavar="DURATION",
                       help=f"lease TTL: 90s, 10m, 2h, 1d (1s to 7d; default {default_text})")
    group.add_argument("--ttl-minutes", metavar="N", help="lease TTL in minutes")


#: Rows a listing command prints unless given --limit N or --all.
DEFAULT_LIMIT = 100


def add_limit_options(parser: argparse.ArgumentParser, what: str, newest: bool = False) -> None:
    """``--limit N`` (default :data:`DEFAULT_LIMIT`) and ``--all`` for a listing command."""
    group = parser.add_mutually_exclusive_group()
    which = "newest " if newest else "first "
    group.add_argument("--limit", type=int, metavar="N",
                       help=f"only the {which}N {what} (default {DEFAULT_LIMIT})")
    group.add_argument("--all", action="store_true", help=f"every {what.rstrip('s')}, streamed")


def add_op_id_option(parser: argparse.ArgumentParser) -> None:
    """``--op-id ID``: the operation id (idempotency key) a mutating command records."""
    parser.add_argument(
        "--op-id", metavar="ID", default=None,
        help="operation id recorded with the change (1-200 letters, digits, ._:/#-; default: a "
             "random one). Rerunning with the same id never applies twice: it reports the first "
             "outcome. See 'leasehold op'.")


def blockers_after(ctx: Context, task_id: str) -> list[dict[str, str]] | None:
    """The task's blockers with their status, read after the change committed, for people only:
    None (and a note on stderr) when they cannot be read, never a failure of the change."""
    from leasehold.errors import StoreError

    try:
        return [{"id": b, "status": s} for b, s in ctx.ledger.blockers(task_id)]
    except StoreError as exc:
        ctx.say(f"(the change applied; its blockers could not be listed: {exc})")
        return None


class Context(LedgerContext):
    """Per-invocation state: parsed args, settings, the ledger (opened on first use), identity."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args, bool(getattr(args, "json", False)))

    def me(self, payload_session: str | None = None) -> Holder:
        """The caller's ``actor:session``. Raises InvalidInput when it cannot be resolved."""
        holder = self.holder(True, payload_session)
        assert holder is not None
        return holder

    def holder(self, required: bool = True, payload_session: str | None = None) -> Holder | None:
        """The caller's ``actor:session``, or None when no session is set and not ``required``.
        Raises InvalidInput when required and unresolvable."""
        from leasehold.config import resolve_actor, resolve_session
        from leasehold.model import Holder

        session, _ = resolve_session(getattr(self.args, "session", None),
                                     payload_session=payload_session, required=required)
        if session is None:
            return None
        actor, _ = resolve_actor(getattr(self.args, "actor", None), self.settings)
        return Holder(actor, session)

    def ttl(self) -> float | None:
        """Seconds from --ttl / --ttl-minutes, or None (the default applies)."""
        from leasehold.model import parse_ttl

        raw = getattr(self.args, "ttl", None)
        minutes = getattr(self.args, "ttl_minutes", None)
        if raw is not None:
            return parse_ttl(raw, "--ttl")
        if minutes is not None:
            from leasehold.model import TTL_LIMITS, TTL_MAX, TTL_MIN

            try:
                seconds = float(minutes) * 60
            except ValueError:
                raise InvalidInput(f"--ttl-minutes {minutes!r} is not a number of minutes; "
                                   f"{TTL_LIMITS}") from None
            if not TTL_MIN <= seconds <= TTL_MAX:  # nan and inf included
                raise InvalidInput(f"--ttl-minutes {minutes!r} is out of range; {TTL_LIMITS}")
            return seconds
        return None

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()

    # -- output ----------------------------------------------------------------------------
    def out(self, data: Any, text: str | None) -> None:
        """Data to stdout: ``data`` as JSON with --json, else ``text`` (if any)."""
        if self.json:
            import json

            sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        elif text is not None:
            from leasehold.untrusted import for_terminal

            text = for_terminal(text)  # control characters escaped, line breaks kept
            sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))

    def limit(self) -> int | None:
        """The row limit of a listing command: None with --all, else --limit (default
        :data:`DEFAULT_LIMIT`). Raises InvalidInput below 1."""
        if getattr(self.args, "all", False):
            return None
        limit = getattr(self.args, "limit", None)
        if limit is None:
            return DEFAULT_LIMIT
        if limit < 1:
            raise InvalidInput(f"--limit must be at least 1, got {limit}")
        return limit

    def stream(self, items: Any, to_dict: Callable[[Any], Any], to_line: Callable[[Any], str],
               empty: str, limit: int | None, what: str = "rows") -> int:
        """Print ``items`` (an iterable yielding up to ``limit`` + 1 of them) as they come:
        only the format asked for (JSON: the same array ``json.dumps(..., indent=2)`` gives),
        never the whole list in memory. When more than ``limit`` exist, says so on stderr.
        Returns how many were printed."""
        write = sys.stdout.write
        count = 0
        more = False
        if self.json:
            import json

            for item in items:
                if limit is not None and count >= limit:
                    more = True
                    break
                text = json.dumps(to_dict(item), indent=2, ensure_ascii=False).replace("\n", "\n  ")
                write(("[\n  " if count == 0 else ",\n  ") + text)
                count += 1
            write("[]\n" if count == 0 else "\n]\n")
        else:
            for item in items:
                if limit is not None and count >= limit:
                    more = True
                    break
                write(to_line(item) + "\n")
                count += 1
            if count == 0:
                write(empty + "\n")
        if more:
            self.say(f"(only {limit} {what} shown: --limit N for another number, --all for every one)")
        return count

    @staticmethod
    def say(message: str) -> None:
        """A message for people: stderr, one line, control characters escaped."""
        from leasehold.untrusted import escape

        sys.stderr.write(escape(message, None) + "\n")


def output_lost() -> bool:
    """True once standard output could not be written (the console entry point guards it:
    ``leasehold.cli._GuardedStdout``): loops that stream until interrupted stop then."""
    return getattr(sys.stdout, "failed", None) is not None


def run_command(args: argparse.Namespace, debug: bool) -> int:
    """Run ``args.func`` and map errors to exit codes; never a traceback unless --debug."""
    ctx = Context(args)
    try:
        code = args.func(ctx)
        return 0 if code is None else int(code)
    except LeaseholdError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _report(ctx, exc, type(exc).__name__, exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("leasehold: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: exit 70, not a traceback
        if debug:
            import traceback

            traceback.print_exc()
        _report(ctx, exc, "InternalError", 70,
                f"leasehold: internal error: {type(exc).__name__}: {exc} (rerun with --debug)")
        return 70
    finally:
        try:
            ctx.close()
        except Exception:
            pass


def _report(ctx: Context, exc: BaseException, kind: str, code: int, line: str | None = None) -> None:
    from leasehold.untrusted import escape

    full = str(exc)
    message = " ".join((line or full).split("\n"))
    # The last guard against a password from a URL in any message (stores redact their own).
    import os

    urls = [getattr(ctx.args, "db", None), os.environ.get("LEASEHOLD_DB"),
            ctx._settings.db if ctx._settings is not None else None]
    for url in urls:
        if url and "://" in url:
            from leasehold.urls import scrub

            message, full = scrub(message, url), scrub(full, url)
    message = escape(message, None)  # control characters from user text, escaped
    sys.stderr.write(message + "\n")
    if ctx.json:
        import json

        error: dict[str, Any] = {"type": kind, "exit_code": code, "message": full}
        for attr in ("task_id", "holder", "fence", "op_id"):
            if hasattr(exc, attr):
                error[attr] = getattr(exc, attr)
        if hasattr(exc, "expires_at"):
            from leasehold.model import format_ts_precise

            error["lease_until"] = format_ts_precise(exc.expires_at)
        sys.stdout.write(json.dumps({"error": error}, indent=2) + "\n")
