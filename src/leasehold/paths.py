"""File reservations: leases on gitignore-style path patterns, relative to the repository root.

Semantics follow task leases: a TTL (default ``default_ttl``), valid while ``now < expires_at``,
extended by the holder's heartbeat, a fencing token that increases on every new grant, one event
per change. Patterns are matched with the ``pathspec`` library's gitignore rules
(``src/api/``, ``src/**/*.py``, ``*.md``, ``/Makefile``).

Modes, as a readers-writer lock: an *exclusive* reservation (the default) conflicts with every
overlapping reservation of another holder; a *shared* one conflicts only with other holders'
exclusive ones. Two patterns overlap when they can match a common path; the rule is conservative
(:func:`overlaps`): when in doubt it reports an overlap.
"""

from __future__ import annotations

import os

from leasehold.errors import Conflict, InvalidInput
from leasehold.model import Holder, PathReservation, format_ts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from leasehold.ledger import TTL, Ledger

#: Characters that make a path segment a wildcard in gitignore patterns.
GLOB_CHARS = frozenset("*?[\\")
PATTERN_MAX = 500


class PathReserved(Conflict):
    """A path pattern is reserved by another holder.

    Attributes: ``conflicts``, a list of ``(pattern asked for, the other holder's
    PathReservation)``.
    """

    def __init__(self, conflicts: list[tuple[str, PathReservation]]) -> None:
        self.conflicts = conflicts
        first_pattern, first = conflicts[0]
        self.holder = first.holder
        self.expires_at = first.expires_at
        parts = [f"{pattern!r} overlaps {other.pattern!r} reserved "
                 f"({'exclusive' if other.exclusive else 'shared'}) by {other.holder} "
                 f"until {format_ts(other.expires_at)}"
                 for pattern, other in conflicts]
        super().__init__("; ".join(parts))


def normalize_pattern(pattern: str) -> str:
    """Check a reservation pattern and return it in canonical form (surrounding whitespace
    dropped, ``./`` prefixes removed, repeated slashes collapsed).

    Raises :class:`InvalidInput` for an empty pattern, a negation (``!x``), a comment (``#x``),
    ``..`` segments, control characters, or more than 500 characters.
    """
    text = pattern.strip() if isinstance(pattern, str) else ""
    if not text:
        raise InvalidInput("a path pattern must not be empty")
    if len(text) > PATTERN_MAX:
        raise InvalidInput(f"path pattern is {len(text)} characters long; the limit is {PATTERN_MAX}")
    if not text.isprintable():
        raise InvalidInput(f"path pattern {text!r} has control characters")
    if text.startswith("!"):
        raise InvalidInput(f"path pattern {text!r}: negations cannot be reserved")
    if text.startswith("#"):
        raise InvalidInput(f"path pattern {text!r}: '#' starts a comment in gitignore syntax; "
                           "write '\\#' for a literal '#'")
    while text.startswith("./"):
        text = text[2:]
    while "//" in text:
        text = text.replace("//", "/")
    if ".." in text.strip("/").split("/"):
        raise InvalidInput(f"path pattern {pattern!r} must stay inside the repository (no '..')")
    if not text or text == "/":
        raise InvalidInput(f"path pattern {pattern!r} names nothing; use '**' for everything")
    return text


def _anchored(pattern: str) -> bool:
    """gitignore: a pattern with a ``/`` at its start or middle is relative to the root; one
    without (``*.py``, ``routes.py``, ``build/``) matches at any depth."""
    return "/" in pattern.rstrip("/")


def literal_prefix(pattern: str) -> list[str]:
    """The leading path segments of an anchored pattern that hold no wildcard (``src/api/*.py``
    -> ``["src", "api"]``); the whole path for a plain path; ``[]`` for an unanchored pattern."""
    if not _anchored(pattern):
        return []
    prefix = []
    for segment in pattern.strip("/").split("/"):
        if GLOB_CHARS.intersection(segment):
            break
        prefix.append(segment)
    return prefix


def _is_plain(pattern: str) -> bool:
    return _anchored(pattern) and not GLOB_CHARS.intersection(pattern)


def _spec(pattern: str):  # type: ignore[no-untyped-def]
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines([pattern])


def matches(pattern: str, path: str) -> bool:
    """Does the gitignore-style ``pattern`` match ``path`` (relative to the repository root,
    ``/``-separated)? A pattern naming a directory matches everything below it."""
    prefix = literal_prefix(pattern)
    if prefix:  # cheap rejection without importing pathspec
        parts = path.split("/")
        if parts[:len(prefix)] != prefix[:len(parts)]:
            return False
    return bool(_spec(pattern).match_file(path))


def overlaps(a: str, b: str) -> bool:
    """Could patterns ``a`` and ``b`` match a common path? Conservative: True when unsure.

    The rule, in order:

    1. An unanchored pattern (no ``/`` but a trailing one: ``*.py``, ``routes.py``, ``build/``)
       matches at any depth: it overlaps every pattern.
    2. If one pattern is a plain path (no ``* ? [ \\``), they overlap when the other matches
       it, or when the other's literal prefix lies inside it (the plain path is a directory
       holding what the other names), or when it lies inside the other's literal prefix and
       below the other's first wildcard (``src/*/x.py`` vs ``src/api``: unsure, overlap).
       Two plain paths therefore overlap only when one contains the other.
    3. Otherwise (two wildcard patterns) they overlap when one's literal prefix contains the
       other's, segment by segment: ``src/**`` and ``src/api/*.py`` overlap; ``docs/*.md``
       and ``src/**`` do not; ``docs/*.md`` and ``docs/*.txt`` are reported as overlapping
       (reserve narrower patterns, or use shared reservations).
    """
    if not _anchored(a) or not _anchored(b):
        return True
    pa, pb = literal_prefix(a), literal_prefix(b)
    related = pa[:len(pb)] == pb[:len(pa)]
    if not related:
        return False
    plain_a, plain_b = _is_plain(a), _is_plain(b)
    if plain_a and plain_b:
        return True  # one contains the other (related prefixes = the whole paths)
    if plain_a or plain_b:
        plain, other = (a, b) if plain_a else (b, a)
        plain_parts = literal_prefix(plain)
        other_parts = literal_prefix(other)
        if len(other_parts) >= len(plain_parts):
            return True  # the other's fixed part lies inside the plain path
        # The plain path lies below the other's first wildcard: exact when the other matches
        # it; else unsure only if the other could match something below it (a directory).
        if matches(other, "/".join(plain_parts)):
            return True
        return _could_match_below(other, plain_parts)
    return True


def _could_match_below(pattern: str, parts: list[str]) -> bool:
    """Could ``pattern`` match a path strictly below the directory ``parts``? Conservative:
    True when the pattern has more segments than ``parts`` or holds ``**``."""
    segments = pattern.strip("/").split("/")
    return "**" in pattern or len(segments) > len(parts)


def relative_to_root(file_path: str, cwd: str | None = None) -> tuple[str, str] | None:
    """``(repository root, path relative to it with '/')`` for ``file_path``; the root is the
    nearest folder holding ``.git`` above the file (else ``$CLAUDE_PROJECT_DIR``, else ``cwd``).
    None when the file lies outside that root."""
    base = cwd or os.getcwd()
    path = os.path.normpath(os.path.join(base, os.path.expanduser(file_path)))
    folder = os.path.dirname(path)
    root = None
    while True:
        if os.path.exists(os.path.join(folder, ".git")):
            root = folder
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if root is None:
        root = os.path.normpath(os.environ.get("CLAUDE_PROJECT_DIR") or base)
    rel = os.path.relpath(path, root)
    if rel == os.curdir or rel.startswith(os.pardir + os.sep) or rel == os.pardir:
        return None
    return root, rel.replace(os.sep, "/")


def gate_paths(file_path: str, cwd: str | None = None) -> list[str]:
    """The repository-relative paths an edit of ``file_path`` touches, for the Edit gate: the
    path as written and the path with every symlink resolved (``alias/routes.py`` with
    ``alias -> src/api`` is also ``src/api/routes.py``), each when it lies inside the root of
    :func:`relative_to_root`. Matching is case-sensitive (see the README on case-insensitive
    file systems)."""
    if "\0" in file_path or (cwd and "\0" in cwd):
        return []  # no file has such a name: the edit cannot touch a reserved one
    located = relative_to_root(file_path, cwd)
    if located is None:
        return []
    root, rel = located
    out = [rel]
    try:
        real_root = os.path.realpath(root)
        # the path as written, not ``rel``: ``..`` after a symlink is the link target's parent
        # to the kernel, and collapsing it first by spelling would name another file
        real = os.path.realpath(os.path.join(cwd or os.getcwd(), os.path.expanduser(file_path)))
    except (OSError, ValueError):  # a name the file system cannot hold (a lone surrogate)
        return out
    resolved = os.path.relpath(real, real_root)
    if not (resolved == os.curdir or resolved == os.pardir or resolved.startswith(os.pardir + os.sep)):
        resolved = resolved.replace(os.sep, "/")
        if resolved not in out:
            out.append(resolved)
    return out


def conflicts_with(pattern: str, exclusive: bool, other: PathReservation) -> bool:
    """Readers-writer rule: an exclusive reservation conflicts with any overlapping one of
    another holder; two shared ones never conflict."""
    if not exclusive and not other.exclusive:
        return False
    return overlaps(pattern, other.pattern)


# -- operations on a ledger -------------------------------------------------------------------
def reserve(ledger: Ledger, patterns: Sequence[str], holder: Holder | str, ttl: TTL = None, *,
            shared: bool = False, reason: str | None = None,
            op_id: str | None = None) -> list[PathReservation]:
    """Reserve every pattern for ``holder``, all or none; ``ttl`` as for task leases.

    Re-reserving one's own valid pattern renews it (same fence). ``op_id``: the operation id
    (idempotency key; a fresh one when None) recorded with a grant: a retry with the same id
    and arguments returns the reservations the first call granted (:mod:`leasehold.ops`).
    Raises :class:`InvalidInput` for a bad pattern or an op id used for a different call, and
    :class:`PathReserved` (exit 1, naming the holders) on conflict.
    """
    who = Holder.parse(holder)
    wanted = list(dict.fromkeys(normalize_pattern(p) for p in patterns))
    if not wanted:
        raise InvalidInput("give at least one path pattern")
    if reason is not None and not reason.strip():
        reason = None
    seconds = ledger.ttl_seconds(ttl)
    result, record = ledger._apply(
        op_id, ("reserve_paths",), None, lambda op: ledger.store.reserve_paths(
            wanted, who.actor, who.session, seconds, not shared, reason, conflicts_with, op=op),
        holder=who, unchanged=lambda result: bool(result[1]),
        args={"patterns": wanted, "ttl": seconds, "shared": shared, "reason": reason})
    if record is not None:
        return [PathReservation(**r) for r in record["result"]["paths"]]
    granted, clashes = result
    if clashes:
        raise PathReserved(clashes)
    return granted  # type: ignore[no-any-return]


def release(ledger: Ledger, patterns: Sequence[str], holder: Holder | str, *,
            op_id: str | None = None) -> list[tuple[str, PathReservation | None]]:
    """Release ``holder``'s reservations of ``patterns``: ``[(pattern, released or None)]``.
    Releasing a pattern one does not hold is not an error (None). ``op_id``: as for
    :func:`reserve` (recorded when anything was released)."""
    who = Holder.parse(holder)
    wanted = list(dict.fromkeys(normalize_pattern(p) for p in patterns))
    if not wanted:
        raise InvalidInput("give at least one path pattern")
    result, record = ledger._apply(
        op_id, ("release_paths",), None, lambda op: ledger.store.release_paths(
            wanted, who.actor, who.session, op=op),
        holder=who, unchanged=lambda result: all(gone is None for _, gone in result),
        args={"patterns": wanted})
    if record is not None:
        return [(pattern, None if gone is None else PathReservation(**gone))
                for pattern, gone in record["result"]["released"]]
    return result  # type: ignore[no-any-return]


def force_release(ledger: Ledger, patterns: Sequence[str], reason: str,
                  by: Holder | str | None = None, *,
                  op_id: str | None = None) -> list[tuple[str, list[PathReservation]]]:
    """Anyone clears every holder's reservation of ``patterns`` (a crashed session's files),
    recorded as ``path_force_released`` with ``reason`` and who did it, like a lease's force
    release. Returns ``[(pattern, the reservations cleared)]`` (empty for a pattern nobody
    reserved). Raises :class:`InvalidInput` without a reason or for a bad pattern."""
    if not reason or not reason.strip():
        raise InvalidInput("--force needs --reason TEXT: say why the reservation is cleared")
    who = Holder.parse(by) if by is not None else None
    wanted = list(dict.fromkeys(normalize_pattern(p) for p in patterns))
    if not wanted:
        raise InvalidInput("give at least one path pattern")
    result, record = ledger._apply(
        op_id, ("force_release_paths",), None, lambda op: ledger.store.force_release_paths(
            wanted, who.actor if who else None, who.session if who else None, reason, op=op),
        unchanged=lambda result: not any(gone for _, gone in result),
        args={"patterns": wanted, "reason": reason, "by": None if who is None else str(who)})
    if record is not None:
        return [(pattern, [PathReservation(**r) for r in gone])
                for pattern, gone in record["result"]["cleared"]]
    return result  # type: ignore[no-any-return]


def sweep(ledger: Ledger, auto_release: bool = False) -> list[PathReservation]:
    """Reservations past expiry (as they were); with ``auto_release`` clear each (one
    ``path_expired`` event each)."""
    return ledger.store.sweep_paths(auto_release)


def active(ledger: Ledger) -> list[PathReservation]:
    """Every valid reservation, by pattern."""
    return ledger.store.valid_paths()


def blocking(reservations: Iterable[PathReservation], relpath: str) -> list[PathReservation]:
    """The reservations among ``reservations`` whose pattern matches ``relpath``."""
    return [r for r in reservations if matches(r.pattern, relpath)]


def check(ledger: Ledger, files: Sequence[str], session: str, cwd: str | None = None,
          ) -> list[tuple[str, list[PathReservation]]]:
    """The edit gate's verdict for ``files``: ``[(file, the other sessions' valid exclusive
    reservations matching it)]``, in the order given (an empty list: clear). With ``cwd`` (a
    process beside the files) each file is located as the gate does (:func:`gate_paths`:
    absolute or relative to ``cwd``, symlinks resolved); without, each is taken as a
    repository-relative path. Raises :class:`InvalidInput` for an empty list or a file name
    with a NUL or ``..`` segment."""
    if not files:
        raise InvalidInput("give at least one file path")
    others = ledger.store.exclusive_paths_not_of_session(session)
    out: list[tuple[str, list[PathReservation]]] = []
    for file in files:
        if not isinstance(file, str) or not file.strip() or "\0" in file:
            raise InvalidInput(f"not a file path: {file!r}")
        if cwd is not None:
            candidates = gate_paths(file, cwd)
        else:
            rel = "/".join(part for part in file.strip().split("/") if part not in ("", "."))
            if ".." in rel.split("/"):
                raise InvalidInput(f"a repository-relative path may not hold '..': {file!r}")
            candidates = [rel] if rel else []
        blocked: list[PathReservation] = []
        for candidate in candidates if others else ():
            blocked += [r for r in blocking(others, candidate) if r not in blocked]
        out.append((file, blocked))
    return out
