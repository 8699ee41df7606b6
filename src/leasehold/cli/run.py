"""``run`` (a command under a heartbeated lease) and ``demo`` (the fleet demonstration)."""

from __future__ import annotations

import os
import sys

from leasehold.cli.common import Context, add_command, add_ttl_options
from leasehold.errors import InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.model import Lease

#: Seconds CMD gets between SIGTERM and SIGKILL after its lease is lost.
KILL_GRACE = 10.0

#: Runs in the child before CMD (Linux): ask the kernel to send it ``argv[2]`` (SIGKILL) when
#: ``run`` dies (``prctl(PR_SET_PDEATHSIG)``, kept across ``execve``), check that call worked
#: (else say on stderr that CMD will outlive a killed ``run``: no portable fallback exists once
#: CMD has replaced this process) and that ``run`` did not die before it took effect, then
#: become CMD with ``execvp`` (same pid). A ``run`` killed with SIGKILL therefore takes CMD
#: with it instead of leaving it working under a lease nobody heartbeats.
_PDEATHSIG_SHIM = (
    "import os, sys\n"
    "try:\n"
    "    import ctypes\n"
    "    libc = ctypes.CDLL(None, use_errno=True)\n"
    "    failed = libc.prctl(1, int(sys.argv[2]), 0, 0, 0) != 0 and os.strerror(ctypes.get_errno())\n"
    "except (ImportError, OSError, AttributeError) as exc:\n"
    "    failed = str(exc) or type(exc).__name__\n"
    "if failed:\n"
    "    sys.stderr.write(f'leasehold run: warning: prctl(PR_SET_PDEATHSIG) failed ({failed}): '\n"
    "                     f'{sys.argv[3]} will keep running if run is killed with SIGKILL\\n')\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(137)\n"
    "try:\n"
    "    os.execvp(sys.argv[3], sys.argv[3:])\n"
    "except OSError as exc:\n"
    "    sys.stderr.write(f'leasehold run: cannot run {sys.argv[3]!r}: {exc.strerror}\\n')\n"
    "    os._exit(127)\n"
)

#: Signals ``run`` passes on to CMD (then waits for it and releases the lease).
FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP")


def child_argv(command: list[str], deathsig: int | None = None) -> list[str]:
    """The argv that starts ``command`` so it dies with this process: on Linux through
    :data:`_PDEATHSIG_SHIM` (``deathsig``, default SIGKILL, is the signal it gets); elsewhere
    ``command`` itself (no portable equivalent: see the README). Raises :class:`InvalidInput`
    when ``command[0]`` is not an executable."""
    import shutil
    import signal

    program = command[0]
    found = shutil.which(program) if os.sep not in program else (
        program if os.access(program, os.X_OK) and not os.path.isdir(program) else None)
    if found is None:
        raise InvalidInput(f"cannot run {program!r}: no such executable")
    if not sys.platform.startswith("linux"):
        return command
    sig = int(signal.SIGKILL if deathsig is None else deathsig)
    return [sys.executable, "-I", "-S", "-c", _PDEATHSIG_SHIM, str(os.getpid()), str(sig), *command]


def _terminal_sent_it_too(signum: int) -> bool:
    """True when a SIGINT most likely came from our terminal (Ctrl-C), which sends it to the
    whole foreground process group, CMD included: forwarding it would deliver it twice. (A
    SIGHUP is always passed on: a second one is harmless, a missing one leaves CMD running.)"""
    import signal

    if signum != signal.SIGINT:
        return False
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def cmd_run(ctx: Context) -> int:
    import signal
    import subprocess
    import threading

    args = ctx.args
    command = list(args.cmd)
    if not command:
        raise InvalidInput("run needs a command after --: leasehold run ID -- CMD ...")
    holder = ctx.me()
    ledger = ctx.ledger
    ttl = ctx.ttl()
    argv = child_argv(command)  # before the claim: a missing program claims nothing
    state: dict[str, Any] = {"proc": None, "held": False}
    lock = threading.Lock()

    def on_lost(lease: Lease) -> None:
        with lock:
            proc = state["proc"]
            if proc is not None and proc.poll() is None:
                proc.terminate()
                timer = threading.Timer(KILL_GRACE, lambda: proc.poll() is None and proc.kill())
                timer.daemon = True
                timer.start()

    pending: list[int] = []  # signals that came before CMD was running

    def forward(signum: int, frame: object) -> None:
        # SIGTERM, SIGINT, SIGHUP: pass it on (unless Ctrl-C sent it to CMD as well), keep
        # waiting for CMD, and release the lease when it has ended. Between the claim and
        # CMD's start the signal is kept: CMD is then not started, or gets it as soon as it
        # runs, and the lease is released either way.
        proc = state["proc"]
        if proc is None and not state["held"]:  # still claiming (a slow or hung ledger): stop
            raise KeyboardInterrupt  # now, as without this handler; nothing is held yet
        if proc is None:
            pending.append(signum)
        elif proc.poll() is None and not _terminal_sent_it_too(signum):
            proc.send_signal(signum)

    # installed before the claim: a signal between the claim and CMD's start must not kill
    # run with the lease still held
    previous = {name: signal.signal(getattr(signal, name), forward)
                for name in FORWARDED if hasattr(signal, name)}
    try:
        hold = ledger.hold(args.id, holder, ttl, on_lost=on_lost)
        with hold as lease:
            state["held"] = True
            if pending:
                ctx.say(f"leasehold: {signal.Signals(pending[0]).name} before {command[0]} "
                        f"started: not starting it; releasing {lease.task_id}")
                code = -pending[0]
            else:
                env = dict(os.environ, LEASEHOLD_TASK=lease.task_id, LEASEHOLD_FENCE=str(lease.fence),
                           LEASEHOLD_HOLDER=str(lease.holder))
                ctx.say(f"leasehold: claimed {lease.task_id} as {lease.holder} (fence {lease.fence}); running {command[0]}")
                try:
                    started = subprocess.Popen(argv, env=env)
                except OSError as exc:
                    raise InvalidInput(f"cannot run {command[0]!r}: {exc.strerror or exc}") from None
                with lock:
                    state["proc"] = started
                for signum in pending:  # came while CMD was being started (so no terminal
                    if started.poll() is None:  # can have sent it to CMD too): passed on
                        started.send_signal(signum)
                code = started.wait()
            hold.complete = bool(args.done) and code == 0
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)
    if lease.lost:
        ctx.say(f"leasehold: lost the lease on {lease.task_id}: {lease.lost_reason}; "
                f"sent SIGTERM to {command[0]}")
        return 1
    if code < 0:
        code = 128 - code
    return code


def setup_run(sub: Any) -> None:

    p = add_command(
        sub, "run", func=cmd_run, help="run a command under a heartbeated lease",
        description=(
            "Claim ID, run CMD with LEASEHOLD_TASK, LEASEHOLD_FENCE and LEASEHOLD_HOLDER set,\n"
            "extend the lease every TTL/3 while it runs, and release it when CMD ends (--done:\n"
            "mark the task done if CMD exits 0). Exits with CMD's code. SIGTERM, SIGINT and SIGHUP\n"
            "are passed on to CMD; run then waits for it and releases the lease. If the claim fails: exit\n"
            f"1 and CMD never starts. If the lease is lost: SIGTERM to CMD (SIGKILL {KILL_GRACE:g}s\n"
            "later), a message, exit 1."
        ),
        examples=(
            "  leasehold run 99927 -- make deploy\n"
            "  leasehold run nightly-report --ttl 2m --done -- ./report.sh --full"
        ),
    )
    p.add_argument("id", help="task id")
    add_ttl_options(p)
    p.add_argument("--done", action="store_true", help="mark the task done when CMD exits 0")
    p.set_defaults(cmd=[])
    p.epilog = "usage of the command part: leasehold run ID [options] -- CMD [ARG ...]\n\n" + (p.epilog or "")


def cmd_demo(ctx: Context) -> int:
    from leasehold.demo import run_demo
    from leasehold.model import parse_ttl

    args = ctx.args
    if args.workers < 2 or args.workers > 64:
        raise InvalidInput("--workers must be 2 to 64")
    if args.tasks < 1 or args.tasks > 10000:
        raise InvalidInput("--tasks must be 1 to 10000")
    ttl = parse_ttl(args.ttl, "--ttl")
    db = getattr(args, "db", None)
    result = run_demo(workers=args.workers, tasks=args.tasks, ttl=ttl, db=db,
                      progress=None if ctx.json else sys.stderr)
    ctx.out(result, result["report"])
    return 0 if result["ok"] else 1


def setup_demo(sub: Any) -> None:
    p = add_command(
        sub, "demo", func=cmd_demo, help="watch a fleet of worker processes share a backlog",
        description=(
            "On a fresh temporary SQLite ledger (or --db: an existing ledger without tasks, else\n"
            "exit 2; `leasehold init --db URL` creates one, a missing one is exit 78),\n"
            "N worker processes loop "
            "next -> work (with heartbeat) -> done. One worker is killed with\n"
            "SIGKILL while it holds a task; its lease expires and another worker takes the task over with a\n"
            "higher fence. Then the invariants are checked from the event log alone: every task\n"
            "completed exactly once, no overlapping valid leases, fences strictly increasing.\n"
            "Prints 'invariants: OK' and exits 0, or names the violation and exits 1."
        ),
        examples="  leasehold demo\n  leasehold demo --workers 16 --tasks 200 --ttl 3s",
    )
    p.add_argument("--workers", type=int, default=8, help="worker processes (default 8)")
    p.add_argument("--tasks", type=int, default=40, help="tasks in the backlog (default 40)")
    p.add_argument("--ttl", default="2s", help="lease TTL (default 2s)")


COMMANDS = {"run": setup_run, "demo": setup_demo}
