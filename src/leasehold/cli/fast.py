"""The hot read commands without argparse: ``status ID`` / ``claim-status ID`` / ``check ID``.

Dispatchers and agents run these around every unit of work, so their start-up is most of their
cost; ``import argparse`` (with ``re``, ``enum`` and gettext) alone is a third of it. This module
recognises only the simple shape of their command line: the command word, one task id, and any of
``--json``, ``--db URL``, ``--actor NAME``, ``--session ID`` (``--opt=value`` too) before or after
it. Anything else (``--help``, ``--debug``, a second id, an unknown option, ``--``) returns None
and the full argparse parser runs instead, which also owns every error message. The commands do
the same work as :mod:`leasehold.cli.leases`, which calls :func:`cmd_status` / :func:`cmd_check`
from here, so both paths print the same thing.

A failure raised by the ledger is reported through :func:`leasehold.cli.common.run_command`
(imported only then), so exit codes and messages are those of every command.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.config import Settings
    from leasehold.ledger import Ledger
    from leasehold.model import Holder, Task

#: Command words this module runs, with the name they stand for.
COMMANDS = {"status": "status", "claim-status": "status", "check": "check"}
_VALUED = ("--db", "--actor", "--session")


class Args:
    """The parsed command line (the attributes argparse would set)."""

    def __init__(self, command: str, task_id: str, options: dict[str, Any]) -> None:
        self.command = command
        self.id = task_id
        self.json = bool(options.get("json"))
        for name in ("db", "actor", "session"):
            if name in options:
                setattr(self, name, options[name])


def parse(argv: list[str]) -> Args | None:
    """``Args`` for the simple shape of a hot command, else None."""
    command = task_id = None
    options: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if token.startswith("-"):
            name, eq, value = token.partition("=")
            if name == "--json" and not eq:
                options["json"] = True
            elif name in _VALUED and name[2:] not in options:
                if not eq:
                    i += 1
                    if i >= len(argv) or argv[i].startswith("-"):
                        return None
                    value = argv[i]
                if not value:
                    return None
                options[name[2:]] = value
            else:
                return None
        elif command is None:
            if token not in COMMANDS:
                return None
            command = COMMANDS[token]
        elif task_id is None:
            task_id = token
        else:
            return None
        i += 1
    if command is None or task_id is None:
        return None
    return Args(command, task_id, options)


class LedgerContext:
    """The settings and the ledger of one invocation, each resolved on first use; shared by
    :class:`FastContext` and :class:`leasehold.cli.common.Context` (no argparse here)."""

    def __init__(self, args: Any, json: bool) -> None:
        self.args = args
        self.json = json
        self._settings: Settings | None = None
        self._ledger: Ledger | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from leasehold.config import load_settings

            self._settings = load_settings(getattr(self.args, "db", None))
        return self._settings

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            from leasehold.ledger import Ledger

            self._ledger = Ledger.from_settings(self.settings)
        return self._ledger


class FastContext(LedgerContext):
    """What :class:`leasehold.cli.common.Context` gives a command, for the hot commands only."""

    def __init__(self, args: Args) -> None:
        super().__init__(args, args.json)

    def holder(self, required: bool = True) -> Holder | None:
        from leasehold.config import resolve_actor, resolve_session
        from leasehold.model import Holder

        session, _ = resolve_session(getattr(self.args, "session", None), required=required)
        if session is None:
            return None
        actor, _ = resolve_actor(getattr(self.args, "actor", None), self.settings)
        return Holder(actor, session)

    def out(self, data: Any, text: str | None) -> None:
        if self.json:
            import json

            sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        elif text is not None:
            sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()


# -- the commands (also the argparse path's) ---------------------------------------------------
def status_dict(task_id: str, task: Task | None, now: float) -> dict[str, Any]:
    if task is None:
        return {"id": task_id, "exists": False, "available": True, "lease_holder": None,
                "lease_until": None, "fence": 0, "status": None}
    data = task.to_dict(now)
    data["exists"] = True
    data["available"] = not task.lease_valid(now) and task.status != "done"
    return data


def cmd_status(ctx: Any) -> int:
    from leasehold.model import format_ts

    ledger = ctx.ledger
    task = ledger.status(ctx.args.id)
    now = ledger.now()
    if task is not None and task.lease_valid(now):
        text = f"held by {task.lease_holder} until {format_ts(task.lease_until)} (fence {task.fence})"
    elif task is not None and task.status == "done":
        text = "done"
    else:
        text = "available"
    ctx.out(status_dict(ctx.args.id, task, now), text)
    return 0


def cmd_check(ctx: Any) -> int:
    holder = ctx.holder(required=False)
    verdict = ctx.ledger.check(ctx.args.id, holder)
    enforce = os.environ.get("LEASEHOLD_ENFORCE", "1").strip().lower() not in ("0", "false", "no", "off")
    if verdict.clear:
        text = "VERDICT: CLEAR"
    else:
        text = f"VERDICT: BLOCKED — {verdict.reason}"
    if not enforce:
        text += " (enforcement off)"
    data = {
        "verdict": "CLEAR" if verdict.clear else "BLOCKED",
        "reason": verdict.reason,
        "enforce": enforce,
        "holder": str(holder) if holder else None,
        "task": verdict.task.to_dict(ctx.ledger.now()) if verdict.task else None,
    }
    ctx.out(data, text)
    return 0 if verdict.clear or not enforce else 1


def run(argv: list[str]) -> int | None:
    """Run a hot command given in its simple shape; None when ``argv`` is not one (the caller
    then runs the full parser)."""
    args = parse(argv)
    if args is None:
        return None
    ctx = FastContext(args)
    func = cmd_status if args.command == "status" else cmd_check
    try:
        return func(ctx)
    except BaseException as exc:  # reported exactly as every other command reports it
        from leasehold.cli.common import run_command

        error = exc

        def fail(_ctx: Any) -> int:
            raise error

        args.func = fail  # type: ignore[attr-defined]
        return run_command(args, False)  # type: ignore[arg-type]
    finally:
        try:
            ctx.close()
        except Exception:
            pass
