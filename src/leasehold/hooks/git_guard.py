"""The git pre-commit guard: a second layer under the agent hooks. Agent runtimes do not gate
file writes made through a shell, and a PreToolUse denial is not enforced everywhere; the
guard refuses a commit whose staged changes touch a file under another session's exclusive
reservation (``leasehold reserve-path``), naming the holder and the expiry.

``leasehold hooks install --git`` writes the guard into the repository's hooks folder: the
``core.hooksPath`` folder when that is set (relative to the working tree's top), else the
common ``hooks`` folder of the repository (shared by all its worktrees). It never clobbers:

- no ``pre-commit`` yet: a small ``sh`` script that runs ``leasehold guard pre-commit``;
- a shell ``pre-commit`` (``#!/bin/sh``, ``bash``, ``dash``, ``zsh`` or no ``#!`` line): a
  marked block is inserted after its first line, the rest is kept byte for byte;
- any other ``pre-commit`` (Python, a binary..., or a symbolic link, whose target is never
  edited): it is renamed ``pre-commit.leasehold-chained`` and a ``sh`` script runs the guard
  and then it, with the same arguments and stdin.

``leasehold hooks uninstall --git`` undoes exactly that. The command in the hook is the absolute
path of the ``leasehold`` program.

At commit time (``leasehold guard pre-commit``): the staged paths (``git diff --cached
--name-only --no-renames``: added, changed, deleted, both sides of a rename), relative to the
working tree's top, are checked against the valid exclusive reservations of sessions other than
this one (the session: ``LEASEHOLD_SESSION``, ``CLAUDE_CODE_SESSION_ID``, ``CODEX_THREAD_ID``,
``GEMINI_SESSION_ID``; none: every reservation is another's). ``LEASEHOLD_ENFORCE=0`` lets the
commit through, printing what would have been refused and recording a ``bypass`` event;
``git commit --no-verify`` skips the hook entirely (git's own switch: nothing is recorded). A
ledger that cannot be reached refuses the commit (fail closed), saying how to override.
"""

from __future__ import annotations

import os
import subprocess
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BEGIN = "# >>> leasehold guard >>>"
END = "# <<< leasehold guard <<<"
CHAINED = "pre-commit.leasehold-chained"
#: The line that says leasehold created the hook file itself (uninstall then deletes the file);
#: without it the file was the user's, and uninstall gives back exactly what was there, even a
#: hook that is only ``#!/bin/sh`` or empty.
CREATED = "# (this file was created by leasehold hooks install --git)"
_SHELLS = ("sh", "bash", "dash", "zsh", "ksh", "ash")


def _git(*args: str, cwd: str | None = None) -> str:
    """Run git; its stdout. Raises :class:`~leasehold.errors.InvalidInput` outside a repository
    or when git is missing."""
    from leasehold.errors import InvalidInput

    try:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, cwd=cwd,
                              timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise InvalidInput(f"cannot run git: {exc}") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        raise InvalidInput(f"git {args[0]}: {lines[0] if lines else 'failed'}")
    return proc.stdout


def hooks_dir(cwd: str | None = None) -> str:
    """The folder git runs hooks from: ``core.hooksPath`` (relative to the working tree's top)
    or the common ``hooks`` folder. Raises :class:`~leasehold.errors.InvalidInput` outside a
    repository."""
    top = _git("rev-parse", "--show-toplevel", cwd=cwd).strip()
    try:
        custom = _git("config", "--get", "core.hooksPath", cwd=cwd).strip()
    except Exception:
        custom = ""
    if custom:
        custom = os.path.expanduser(custom)
        return custom if os.path.isabs(custom) else os.path.join(top, custom)
    common = _git("rev-parse", "--git-common-dir", cwd=cwd).strip()
    if not os.path.isabs(common):
        common = os.path.join(cwd or os.getcwd(), common)
    return os.path.normpath(os.path.join(common, "hooks"))


def _guard_line(exe: str) -> str:
    import shlex

    return f'{shlex.quote(exe)} guard pre-commit || exit $?'


def _script(exe: str, chained: bool) -> str:
    lines = ["#!/bin/sh", BEGIN, _guard_line(exe), END, CREATED]
    if chained:
        lines += ['exec "$(dirname "$0")/' + CHAINED + '" "$@"']
    return "\n".join(lines) + "\n"


def _is_shell(first_line: str) -> bool:
    if not first_line.startswith("#!"):
        return True
    words = first_line[2:].split()
    if not words:
        return False
    prog = os.path.basename(words[0])
    if prog == "env" and len(words) > 1:
        prog = os.path.basename(words[-1])
    return prog in _SHELLS


def _write(path: str, text: str, mode: int = 0o755) -> None:
    """Replace ``path`` with ``text`` atomically. Hooks are read and written with
    ``surrogateescape`` and no newline translation, so the bytes of an existing hook (CRLF, a
    byte that is not UTF-8) are kept exactly."""
    tmp = f"{path}.leasehold-{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def install(cwd: str | None = None, exe: str | None = None) -> dict[str, Any]:
    """Install (or update) the guard; returns ``{"path", "how", "message"}`` with ``how`` one of
    ``created``, ``inserted``, ``chained``, ``updated``, ``unchanged``."""
    from leasehold.hooks.install import executable

    exe = exe or executable()
    folder = hooks_dir(cwd)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "pre-commit")
    chained = os.path.join(folder, CHAINED)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
            text: str | None = fh.read()
    except FileNotFoundError:
        text = None
    if text is not None and BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        new = head + BEGIN + "\n" + _guard_line(exe) + "\n" + END + tail
        if new == text:
            how = "unchanged"
        else:
            mode = os.stat(path).st_mode & 0o7777
            _write(path, new, mode)
            how = "updated"
    elif text is None:
        _write(path, _script(exe, chained=False))
        how = "created"
    elif _is_shell(text.split("\n", 1)[0]) and not os.path.islink(path):
        mode = os.stat(path).st_mode & 0o7777
        if text.startswith("#!"):
            first, newline, body = text.partition("\n")
            # a hook that is only its "#!" line without a newline: the block ends the file
            # without one too, so uninstall can give back exactly those bytes
            new = first + "\n" + BEGIN + "\n" + _guard_line(exe) + "\n" + END + newline + body
        else:
            new = BEGIN + "\n" + _guard_line(exe) + "\n" + END + "\n" + text
        _write(path, new, mode)
        how = "inserted"
    else:
        from leasehold.errors import InvalidInput

        if os.path.exists(chained):
            raise InvalidInput(f"{chained} already exists; nothing was changed")
        os.rename(path, chained)
        _write(path, _script(exe, chained=True))
        how = "chained"
    messages = {
        "created": f"installed the pre-commit guard in {path}",
        "inserted": f"added the guard to the existing pre-commit hook {path} (its own lines kept)",
        "chained": f"installed the guard in {path}; the existing hook runs after it as {chained}",
        "updated": f"updated the guard's command in {path}",
        "unchanged": f"the guard is already installed in {path}",
    }
    return {"path": path, "how": how, "message": messages[how]}


def uninstall(cwd: str | None = None) -> dict[str, Any]:
    """Take the guard out again, restoring what was there; ``{"path", "how", "message"}``."""
    folder = hooks_dir(cwd)
    path = os.path.join(folder, "pre-commit")
    chained = os.path.join(folder, CHAINED)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
            text = fh.read()
    except FileNotFoundError:
        return {"path": path, "how": "absent", "message": f"no pre-commit hook in {folder}"}
    if BEGIN not in text or END not in text:
        return {"path": path, "how": "absent", "message": f"no leasehold guard in {path}"}
    if os.path.exists(chained) and text == _script_from(text, chained=True):
        os.replace(chained, path)
        return {"path": path, "how": "unchained",
                "message": f"removed the guard; {path} is the original hook again"}
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    remaining = head + (tail[1:] if tail.startswith("\n") else tail)
    if not tail and head.endswith("\n") and head.count("\n") == 1:
        remaining = head[:-1]  # a "#!" line without a newline of its own (see install)
    if CREATED + "\n" in remaining:  # the file is ours: gone, unless someone added lines to it
        if remaining.replace(CREATED + "\n", "", 1).strip() in ("", "#!/bin/sh"):
            os.remove(path)
            return {"path": path, "how": "removed", "message": f"removed {path}"}
        remaining = remaining.replace(CREATED + "\n", "", 1)
    # the user's hook (even one that is only "#!/bin/sh", or empty) is given back as it was
    mode = os.stat(path).st_mode & 0o7777
    _write(path, remaining, mode)
    return {"path": path, "how": "removed-block",
            "message": f"removed the guard's lines from {path}; the rest is unchanged"}


def _script_from(text: str, chained: bool) -> str:
    """The script :func:`_script` would write with the command found in ``text``."""
    line = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    lines = ["#!/bin/sh", BEGIN, line, END]
    if CREATED in text:
        lines.append(CREATED)
    if chained:
        lines += ['exec "$(dirname "$0")/' + CHAINED + '" "$@"']
    return "\n".join(lines) + "\n"


def show(cwd: str | None = None) -> dict[str, Any]:
    """``{"hooks_dir", "path", "installed", "command", "problems"}``."""
    from leasehold.hooks.health import command_problem

    folder = hooks_dir(cwd)
    path = os.path.join(folder, "pre-commit")
    info: dict[str, Any] = {"hooks_dir": folder, "path": path, "installed": False,
                            "command": None, "problems": []}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
            text = fh.read()
    except FileNotFoundError:
        return info
    if BEGIN in text and END in text:
        info["installed"] = True
        line = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
        info["command"] = line
        cmd = line.split("||", 1)[0].strip()
        problem = command_problem(cmd)
        if problem:
            info["problems"].append(problem)
        if not os.access(path, os.X_OK):
            info["problems"].append(f"{path} is not executable, so git skips it; fix: chmod +x {path}")
    return info


def describe(info: dict[str, Any]) -> str:
    state = "installed" if info["installed"] else "not installed"
    text = f"git     pre-commit {info['path']}  {state}"
    for problem in info["problems"]:
        text += f"\n    CANNOT RUN: {problem}"
    return text


# -- the check at commit time ------------------------------------------------------------------
def staged_paths(cwd: str | None = None) -> list[str]:
    """Staged paths relative to the working tree's top (both sides of a rename). Raises
    :class:`~leasehold.errors.InvalidInput` outside a repository."""
    _git("rev-parse", "--show-toplevel", cwd=cwd)
    out = _git("diff", "--cached", "--name-only", "--no-renames", "-z", cwd=cwd)
    return [p for p in out.split("\0") if p]


def check(cwd: str | None = None) -> int:
    """The pre-commit check: 0 to let the commit through, 1 to refuse it (reasons on
    stderr)."""
    from leasehold import paths
    from leasehold.config import load_settings, resolve_session
    from leasehold.errors import LeaseholdError
    from leasehold.hooks.claude import _actor, enforcing, open_ledger
    from leasehold.model import Holder, format_ts

    enforce = enforcing()
    try:
        files = staged_paths(cwd)
    except LeaseholdError as exc:
        sys.stderr.write(f"leasehold guard: {exc}\n")
        return 1 if enforce else 0
    if not files:
        return 0
    try:
        session, _ = resolve_session(None, required=False)
        settings = load_settings(cwd=cwd)
        with open_ledger(settings, "pre-tool-use") as ledger:
            others = ledger.store.exclusive_paths_not_of_session(session or "")
            hits = []
            for rel in files:
                for res in paths.blocking(others, rel) if others else []:
                    hits.append((rel, res))
            if not hits:
                return 0
            from leasehold.untrusted import escape, quoted

            # file names and reasons are free text: escaped, the reason quoted as its holder's
            lines = [f"  {escape(rel, None)}: reserved by {res.holder} until "
                     f"{format_ts(res.expires_at)} (pattern {res.pattern!r}, "
                     f"exclusive, fence {res.fence}"
                     + (f", reason: {quoted(res.reason, res.holder)}" if res.reason else "") + ")"
                     for rel, res in hits]
            if not enforce:
                actor = _actor(settings)
                holder = Holder(actor, session) if actor and session else None
                ledger.record_bypass([], holder, {
                    "tool": "git commit", "via": "LEASEHOLD_ENFORCE=0",
                    "paths": [{"pattern": r.pattern, "holder": r.holder, "fence": r.fence,
                               "file": rel} for rel, r in hits]})
                sys.stderr.write("leasehold guard (enforcement off, LEASEHOLD_ENFORCE=0): this "
                                 "commit would have been refused:\n" + "\n".join(lines)
                                 + "\nThe override is recorded in the ledger.\n")
                return 0
    except LeaseholdError as exc:
        message = " ".join(str(exc).splitlines())
        if not enforce:
            sys.stderr.write(f"leasehold guard: cannot check this commit ({message}); allowed "
                             "because enforcement is off (LEASEHOLD_ENFORCE=0)\n")
            return 0
        sys.stderr.write(f"leasehold guard: cannot check this commit ({message}), so it is "
                         "refused (fail closed). Fix the ledger (`leasehold doctor`), or commit "
                         "with LEASEHOLD_ENFORCE=0 (recorded) or git commit --no-verify.\n")
        return 1
    me = f" (this session: {session})" if session else " (no session set: every reservation is another's)"
    sys.stderr.write(
        "leasehold guard: commit refused: staged files are under another session's exclusive "
        f"reservation{me}:\n" + "\n".join(lines) + "\n"
        "Unstage them (git restore --staged FILE), wait for the reservation to end, or ask the "
        "holder to release it (`leasehold release-path PATTERN` in that session). Override: "
        "LEASEHOLD_ENFORCE=0 git commit ... (recorded) or git commit --no-verify (skips every "
        "pre-commit hook, nothing recorded).\n")
    return 1
