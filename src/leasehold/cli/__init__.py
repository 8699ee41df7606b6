"""The ``leasehold`` command line: a thin layer over :mod:`leasehold.ledger` (argparse).

Only the sub-parser of the command being run is built, and each command module is imported on
demand: these commands run inside every agent tool call, so start-up time matters.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

#: command -> module that defines it (its ``COMMANDS`` dict maps name -> parser set-up function).
COMMAND_MODULES = {
    "claim": "leasehold.cli.leases",
    "extend": "leasehold.cli.leases",
    "release": "leasehold.cli.leases",
    "done": "leasehold.cli.leases",
    "status": "leasehold.cli.leases",
    "check": "leasehold.cli.leases",
    "sweep": "leasehold.cli.leases",
    "show": "leasehold.cli.leases",
    "who": "leasehold.cli.leases",
    "add": "leasehold.cli.leases",
    "reopen": "leasehold.cli.leases",
    "list": "leasehold.cli.leases",
    "next": "leasehold.cli.leases",
    "log": "leasehold.cli.leases",
    "watch": "leasehold.cli.leases",
    "migrate": "leasehold.cli.leases",
    "init": "leasehold.cli.init",
    "whoami": "leasehold.cli.leases",
    "op": "leasehold.cli.leases",
    "dep": "leasehold.cli.deps",
    "ready": "leasehold.cli.deps",
    "blocked": "leasehold.cli.deps",
    "run": "leasehold.cli.run",
    "demo": "leasehold.cli.run",
    "hook": "leasehold.cli.hooks",
    "hooks": "leasehold.cli.hooks",
    "guard": "leasehold.cli.hooks",
    "doctor": "leasehold.cli.doctor",
    "share": "leasehold.cli.share",
    "reserve-path": "leasehold.cli.paths",
    "release-path": "leasehold.cli.paths",
    "paths": "leasehold.cli.paths",
    "missions": "leasehold.cli.missions",
    "namespace": "leasehold.cli.tickets",
    "reserve": "leasehold.cli.tickets",
    "reservation": "leasehold.cli.tickets",
    "feed": "leasehold.cli.tickets",
    "queue": "leasehold.cli.tickets",
    "drift-check": "leasehold.cli.tickets",
    "verify": "leasehold.cli.audit",
    "anchor": "leasehold.cli.audit",
    "db": "leasehold.cli.audit",
    "token": "leasehold.cli.tokens",
    "serve": "leasehold.cli.serve",
    "mcp": "leasehold.cli.mcp",
}
#: The mc-claim-protocol verb names.
ALIASES = {
    "claim-extend": "extend",
    "claim-release": "release",
    "claim-status": "status",
    "claim-sweep": "sweep",
}
#: Commands leasehold.cli.fast runs without argparse when their command line is simple.
_FAST = ("status", "claim-status", "check")
#: Global options that take a value (to find the command word in argv).
_VALUE_OPTIONS = {"--db", "--actor", "--session"}

EXIT_CODES = """\
exit codes:
  0   ok
  1   conflict: held by another, not the holder, lease expired, stale fence,
      none available, blocked
  2   usage or invalid input
  3   not found
  70  internal error
  75  store busy or unavailable, nothing applied: retry later
  76  outcome unknown: look the operation id up before retrying
  77  permission denied
  78  configuration error, retrying will not help: a missing ledger (leasehold
      never creates one at a location you named: 'leasehold init' does), a file
      that is not a ledger, a newer ledger schema, a bad URL, permission denied
"""


def find_command(argv: Sequence[str]) -> str | None:
    """The command word in ``argv`` (skipping global options and their values)."""
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token == "--":
            return None
        if token.startswith("-"):
            skip = token in _VALUE_OPTIONS
            continue
        return token
    return None


def _unreadable_argument(argv: Sequence[str]) -> str | None:
    """Why an argument cannot be taken (bytes that are not UTF-8, which Python carries as lone
    surrogates; a NUL), or None. Decided before anything runs, so nothing is half-written."""
    for number, arg in enumerate(argv, 1):
        if "\0" in arg:
            return f"argument {number} contains a NUL character"
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "backslashreplace").decode("utf-8")
            return f"argument {number} is not UTF-8 text: {shown[:80]}"
    return None


def build_parser(only: str | None = None):  # type: ignore[no-untyped-def]
    """The argparse parser; with ``only``, just that command's sub-parser is built."""
    import importlib

    from leasehold.cli.common import LeaseholdParser, RawFormatter, common_options

    parser = LeaseholdParser(
        prog="leasehold",
        description=(
            "leasehold: a coordination ledger for fleets of concurrent workers.\n"
            "Leases on tasks with TTLs, heartbeats and fencing tokens, on an embedded SQLite\n"
            "ledger or a shared PostgreSQL."
        ),
        epilog=EXIT_CODES
        + "\nexamples:\n  leasehold claim 99927 --actor john --session abc123\n"
        "  leasehold check 99927 && dispatch-worker 99927\n"
        "  leasehold run 99927 --ttl 2m -- make deploy\n"
        "\nRun 'leasehold COMMAND --help' for a command's options.",
        formatter_class=RawFormatter,
        parents=[common_options()],
    )
    from leasehold import __version__

    parser.add_argument("--version", action="version", version=f"leasehold {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=LeaseholdParser)
    seen: set[str] = set()
    names = [only] if only else list(COMMAND_MODULES)
    for name in names:
        module_name = COMMAND_MODULES[name]
        module = importlib.import_module(module_name)
        if only:
            module.COMMANDS[name](sub)
        elif module_name not in seen:
            seen.add(module_name)
            for setup in module.COMMANDS.values():
                setup(sub)
    return parser


def build_standalone(command: str, typed: str):  # type: ignore[no-untyped-def]
    """Only ``command``'s parser, as a parser of its own (when the command word comes first)."""
    import importlib

    from leasehold.cli.common import StandaloneCommand

    holder = StandaloneCommand(typed)
    importlib.import_module(COMMAND_MODULES[command]).COMMANDS[command](holder)
    return holder.parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see EXIT_CODES)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    command = find_command(args_in)
    if command in ALIASES:
        command = ALIASES[command]
    only = command if command in COMMAND_MODULES else None
    standalone = only is not None and bool(args_in) and find_command(args_in[:1]) == args_in[0]
    parser = build_standalone(only, args_in[0]) if standalone and only else build_parser(only)
    # For `run`, everything after the first "--" is the command to run, passed through untouched
    # (argparse 3.11 mishandles "--" before a REMAINDER after a sub-command, so it is split here).
    passthrough: list[str] | None = None
    if only == "run" and "--" in args_in:
        cut = args_in.index("--")
        args_in, passthrough = args_in[:cut], args_in[cut + 1:]
    debug = "--debug" in args_in
    bad = _unreadable_argument(args_in)
    if bad:
        sys.stderr.write(f"leasehold: error: {bad} (see 'leasehold --help')\n")
        return 2
    try:
        args = parser.parse_args(args_in[1:] if standalone else args_in)
        if passthrough is not None:
            if not hasattr(args, "cmd"):
                parser.error("arguments after '--' are only for 'run'")
            args.cmd = passthrough
    except SystemExit as exc:
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from leasehold.cli.common import run_command

    try:
        return run_command(args, debug)
    finally:
        if "leasehold.config" in sys.modules:  # a hook's pinned --db ends with its command
            sys.modules["leasehold.config"].command_line_db = None  # type: ignore[attr-defined]


class _GuardedStdout:
    """Standard output that cannot turn an outcome into an error.

    The exit code is the answer scripts branch on, and a change may already be committed when
    its answer is printed: a closed stdout (``>&-``), a full disk (``>/dev/full``) or a closed
    pipe must not make an applied claim exit 70 or 1. The first failed write or flush points
    the file descriptor at ``/dev/null`` (so Python's own flush at exit succeeds) and drops the
    rest; :func:`entry` then says so in one line on stderr, except for a closed pipe
    (``leasehold list | head``), which is normal.
    """

    def __init__(self, stream: object) -> None:
        self._stream = stream
        self.failed: BaseException | None = None

    def write(self, text: str) -> int:
        if self.failed is None:
            try:
                return self._stream.write(text)  # type: ignore[attr-defined]
            except (OSError, ValueError, AttributeError) as exc:
                self._fail(exc)
        return len(text)

    def flush(self) -> None:
        if self.failed is None and self._stream is not None:  # closed: only a write fails
            try:
                self._stream.flush()  # type: ignore[attr-defined]
            except (OSError, ValueError, AttributeError) as exc:
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        import os

        self.failed = exc
        try:
            fd = self._stream.fileno()  # type: ignore[attr-defined]
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        except (OSError, ValueError, AttributeError):
            pass

    def isatty(self) -> bool:
        try:
            return bool(self._stream.isatty())  # type: ignore[attr-defined]
        except (OSError, ValueError, AttributeError):
            return False

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def entry() -> None:
    """Console-script entry point.

    ``leasehold hook EVENT`` with nothing else goes straight to the hook runner, before argparse
    is imported: it runs inside every agent tool call (the throttled heartbeat must cost little
    more than starting Python). Any other form takes the argparse path to the same runner.
    Standard output is guarded (:class:`_GuardedStdout`): when it cannot be written, the exit
    code is still the command's outcome.
    """
    argv = sys.argv[1:]
    code: int | None = None
    guard = _GuardedStdout(sys.stdout)
    sys.stdout = guard  # type: ignore[assignment]
    if len(argv) == 2 and argv[0] == "hook":
        from leasehold.hooks import EVENTS

        if argv[1] in ("codex", "gemini"):
            from leasehold.hooks import runtime_module

            code = runtime_module(argv[1]).run()
        elif argv[1] in EVENTS:
            from leasehold.hooks.claude import run

            code = run(argv[1])
    elif any(a in _FAST for a in argv):
        # status / check in their simple shape skip argparse (leasehold.cli.fast).
        from leasehold.cli.fast import run as run_fast

        code = run_fast(argv)
    if code is None:
        code = main()
    guard.flush()
    if guard.failed is not None and not isinstance(guard.failed, BrokenPipeError):
        reason = ("standard output is closed" if guard._stream is None
                  else f"{type(guard.failed).__name__}: {guard.failed}")
        sys.stderr.write(f"leasehold: could not write the answer to standard output ({reason}); "
                         f"the exit code ({code}) is the outcome\n")
    sys.exit(code)
