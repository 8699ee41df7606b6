"""What a session lost at SessionEnd, told at the next SessionStart.

Claude Code fires SessionEnd not only on exit but also on ``/clear`` and when ``/resume``
switches sessions, and the session-end hook then releases every lease of the ending session.
The session that starts next (``source`` ``resume`` or ``clear``) must know that those leases
are gone and that it has to claim again before continuing.

At session end the released ids are written to two small files in ``state_dir``: one named
after the session (a later ``/resume`` of that very session finds it) and one named after the
working directory (the new session after ``/clear`` or ``/resume`` in the same folder finds it,
within :data:`RECENT` seconds). SessionStart with ``source`` ``resume``/``clear`` reads and
removes them. Files are written with mode 0600, never through a symbolic link.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.config import Settings
    from leasehold.model import PathReservation, Task

#: Seconds within which a release in the same folder counts as "the previous session".
RECENT = 600.0


def _folder(settings: Settings) -> str:
    from leasehold.hooks.claude import default_state_dir

    return settings.path("state_dir", default_state_dir())


def _session_file(settings: Settings, session: str) -> str:
    from leasehold.hooks.claude import state_file

    return state_file(_folder(settings), session).replace("heartbeat-", "released-", 1)


def _cwd_file(settings: Settings, cwd: str) -> str:
    import hashlib

    digest = hashlib.sha256(os.path.abspath(cwd).encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return os.path.join(_folder(settings), f"released-cwd-{digest}")


def _write(path: str, record: dict[str, Any]) -> None:
    """Replace ``path`` with ``record`` in its private folder (:mod:`leasehold.safefiles`: a
    folder other users can write is refused, nothing is written through a symlink). Raises
    :class:`OSError`."""
    import json

    from leasehold.safefiles import PrivateFolder

    with PrivateFolder(os.path.dirname(path)) as folder:
        folder.replace(os.path.basename(path), json.dumps(record).encode("utf-8", "backslashreplace"))


def _take(path: str) -> dict[str, Any] | None:
    """Read and remove ``path`` (None when missing, unreadable or in an unsafe folder)."""
    import json

    from leasehold.safefiles import PrivateFolder

    try:
        with PrivateFolder(os.path.dirname(path)) as folder:
            name = os.path.basename(path)
            try:
                data = json.loads(folder.read(name, 1 << 20))
            except (OSError, ValueError):
                data = None
            folder.remove(name)
    except OSError:
        return None
    return data if isinstance(data, dict) else None


def record(settings: Settings, session: str, cwd: str | None, tasks: list[Task],
           reservations: list[PathReservation], reason: str | None) -> None:
    """Remember what session end released (nothing is written when nothing was released).
    Never raises: this is a courtesy, the release itself has happened."""
    if not tasks and not reservations:
        return
    entry = {"session": session, "cwd": cwd, "at": time.time(), "reason": reason,
             "tasks": [t.id for t in tasks], "paths": [r.pattern for r in reservations]}
    try:
        _write(_session_file(settings, session), entry)
        if cwd:
            _write(_cwd_file(settings, cwd), entry)
    except OSError:
        pass


def note(settings: Settings, session: str | None, payload: dict[str, Any]) -> str | None:
    """For SessionStart with ``source`` ``resume`` or ``clear``: which leases were released at
    the previous session end, and that they must be claimed again; else None."""
    if payload.get("source") not in ("resume", "clear"):
        return None
    found: list[dict[str, Any]] = []
    if session:
        own = _take(_session_file(settings, session))
        if own:
            found.append(own)
    cwd = payload.get("cwd")
    if isinstance(cwd, str) and cwd:
        recent = _take(_cwd_file(settings, cwd))
        if recent and time.time() - float(recent.get("at") or 0) <= RECENT and not any(
                r.get("session") == recent.get("session") for r in found):
            found.append(recent)
    tasks = [t for r in found for t in r.get("tasks") or [] if isinstance(t, str)]
    pats = [p for r in found for p in r.get("paths") or [] if isinstance(p, str)]
    if not tasks and not pats:
        return None
    items = [f"task {t}" for t in dict.fromkeys(tasks)] + [f"path {p!r}" for p in dict.fromkeys(pats)]
    again = []
    if tasks:
        again.append("`leasehold claim " + " ".join(dict.fromkeys(tasks)) + "`")
    if pats:
        again.append("`leasehold reserve-path " + " ".join(repr(p) for p in dict.fromkeys(pats)) + "`")
    return ("Released when the previous session ended (/clear or /resume ends a session): "
            + ", ".join(items) + ". They are no longer yours: claim them again ("
            + " and ".join(again) + ") before continuing; if a claim fails, another session "
            "has taken the work.")
