"""Settings and identity: one source of truth for where the ledger lives, the default TTL, and
who the caller is.

Precedence, highest first:

- database: ``--db`` > ``LEASEHOLD_DB`` > ``db`` in the nearest ``leasehold.toml`` (searched from
  the working directory up) > ``$XDG_DATA_HOME/leasehold/ledger.db`` (default
  ``~/.local/share/leasehold/ledger.db``). A relative path in leasehold.toml (``rel.db``,
  ``sqlite:rel.db``) is relative to that file, never to the working directory; inside a linked
  git worktree it is resolved in the main worktree (found through the git common directory,
  reading ``.git`` and ``commondir`` without running git), so every worktree shares one ledger;
  a linked worktree without a leasehold.toml of its own uses the main worktree's.
  Only the per-user default ledger is created on first use; any other location must exist
  (``leasehold init`` creates it).
- actor: ``--actor`` > ``LEASEHOLD_ACTOR`` > ``actor`` in leasehold.toml > (an http(s) ledger) the
  token's actor > ``git config user.name``
  > ``$USER``.
- session: hook payload ``session_id`` > ``--session`` > ``LEASEHOLD_SESSION`` >
  ``CLAUDE_CODE_SESSION_ID`` > ``CODEX_THREAD_ID`` (Codex sets it for the agent's shell
  commands; it equals the hooks' ``session_id``) > ``GEMINI_SESSION_ID`` (set for Gemini CLI
  hooks).
"""

from __future__ import annotations

import os

from leasehold.errors import ConfigError, InvalidInput
from leasehold.model import DEFAULT_TTL, parse_duration, parse_ttl, validate_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

CONFIG_NAME = "leasehold.toml"
#: A leasehold.toml larger than this (bytes) is refused rather than parsed.
MAX_CONFIG_BYTES = 64 * 1024

#: Every key leasehold.toml may hold, with its meaning (an unknown key is an error: typos show).
KNOWN_KEYS = {
    "db": "database URL or path (relative paths are relative to leasehold.toml)",
    "default_ttl": "default lease TTL, a duration such as 10m",
    "actor": "default actor name",
    "busy_timeout": "seconds to wait for the SQLite write lock before exit 75",
    "heartbeat_interval": "minimum seconds between hook heartbeats of one session",
    "bypass_token": "token that bypasses the dispatch gate (audited)",
    "audit_dir": "folder of the bypass audit logs",
    "state_dir": "folder of small per-session state files",
    "stale_after": "age after which a claimed mission without a valid lease is stale",
    "missions_dir": "folder of the missions queue",
    "reference_keywords": "extra words after which an id is a task reference (list)",
    "reference_patterns": "extra regular expressions finding task references (list)",
    "token_file": "file holding the token for an http(s):// ledger (mode 0600)",
}


#: The ``--db`` given on this process's command line to a command whose code resolves the
#: ledger later without it (``leasehold hook --db URL EVENT``), or None. :func:`load_settings`
#: uses it when called without ``db``, so an empty ``--db ""`` stays an error there too
#: instead of falling through to LEASEHOLD_DB or leasehold.toml.
command_line_db: str | None = None


def find_config(start: str | None = None) -> str | None:
    """The nearest ``leasehold.toml`` from ``start`` (default: the working directory) upwards.

    Anything by that name counts, a folder or a dangling link included: reading it then fails
    with :class:`ConfigError` (exit 78) instead of the sessions below it silently falling back
    to another ledger."""
    folder = os.path.abspath(start or os.getcwd())
    while True:
        candidate = os.path.join(folder, CONFIG_NAME)
        if os.path.lexists(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def default_db_path(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "leasehold", "ledger.db")


class Settings:
    """Resolved settings. ``db`` is a URL or path; ``db_source`` says where it came from;
    ``default_ttl`` is in seconds; ``file`` is the leasehold.toml used, if any; ``values`` its
    parsed content."""

    def __init__(self, db: str, db_source: str, default_ttl: float, file: str | None,
                 values: dict[str, Any], busy_timeout: float | None = None,
                 worktree: tuple[str, str] | None = None) -> None:
        self.db = db
        self.db_source = db_source
        #: ``(this worktree's root, the main worktree's root)`` when ``db`` is a relative path
        #: in leasehold.toml resolved from a linked git worktree into the main one, else None.
        self.worktree = worktree
        self.default_ttl = default_ttl
        self.file = file
        self.values = values
        #: Seconds a SQLite writer waits for the lock (``LEASEHOLD_BUSY_TIMEOUT`` >
        #: ``busy_timeout`` in leasehold.toml), or None for the store's default.
        self.busy_timeout = busy_timeout

    @property
    def is_default(self) -> bool:
        """True when ``db`` is the per-user default location (the only one created on first
        use)."""
        return self.db_source == "default"

    def describe_source(self) -> str:
        """Where ``db`` came from, for people (``whoami``, error messages)."""
        if self.worktree is not None:
            return (f"db in {self.db_source}, resolved in the main worktree {self.worktree[1]}: "
                    "shared by all worktrees")
        if self.file is not None and self.db_source == self.file:
            return f"db in {self.file}"
        return self.db_source

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def seconds(self, key: str, default: float) -> float:
        """A duration setting in seconds (``60``, ``"90s"``, ``"24h"``). Raises
        :class:`ConfigError` for a malformed value."""
        value = self.values.get(key)
        if value is None:
            return default
        try:
            return parse_duration(value, f"{key} in {self.file}")
        except InvalidInput as exc:
            raise ConfigError(str(exc)) from None

    def path(self, key: str, default: str) -> str:
        """A folder setting; relative values are relative to leasehold.toml."""
        value = self.values.get(key)
        if not value:
            return os.path.expanduser(default)
        value = os.path.expanduser(str(value))
        if self.file and not os.path.isabs(value):
            value = os.path.join(os.path.dirname(self.file), value)
        return value


def cache_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/leasehold`` (default ``~/.cache/leasehold``)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "leasehold")


def read_config(path: str) -> dict[str, Any]:
    """Parse and validate a leasehold.toml. Raises :class:`ConfigError` (exit 78).

    Parsing with tomllib costs ~10 ms of imports, on a path that runs in every agent tool call,
    so the validated values are cached (``marshal``, in the private folder ``config/`` of
    :func:`cache_dir`) keyed on the file's path and its exact content: a file replaced by
    another of the same size and modification time (``cp -p``) is parsed again.
    """
    import marshal

    from leasehold.safefiles import PrivateFolder

    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if os.path.islink(path) and not os.path.exists(path):
            reason = f"a symbolic link to {os.readlink(path)!r}, which does not exist"
        raise ConfigError(f"{path}: {reason}; fix or remove it") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a leasehold.toml")
    where = os.path.abspath(path)
    name = where.replace(os.sep, "%") + ".marshal"
    try:  # a cache in a folder others can write is neither believed nor written
        folder = PrivateFolder(os.path.join(cache_dir(), "config"))
    except OSError:
        return _parse_config(path, raw)
    with folder:
        try:
            found_where, found_raw, values = marshal.loads(folder.read(name, 4 * MAX_CONFIG_BYTES))
            if found_where == where and found_raw == raw and isinstance(values, dict):
                return values
        except (OSError, EOFError, ValueError, TypeError):
            pass
        values = _parse_config(path, raw)
        try:
            folder.replace(name, marshal.dumps((where, raw, values)))
        except (OSError, ValueError):  # unwritable cache, or values marshal cannot hold
            pass
    return values


def _parse_config(path: str, raw: bytes) -> dict[str, Any]:
    import tomllib

    try:
        values = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (TOML files are UTF-8)") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path}: {' '.join(str(exc).split()) or 'nested too deeply'}") from None
    unknown = sorted(set(values) - set(KNOWN_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KNOWN_KEYS)}")
    return values


def load_settings(db: str | None = None, environ: Mapping[str, str] | None = None,
                  cwd: str | None = None) -> Settings:
    """Resolve settings from a ``--db`` value, the environment and leasehold.toml.

    Raises :class:`ConfigError` (exit 78) for a malformed leasehold.toml (``default_ttl`` and
    ``busy_timeout`` included), :class:`InvalidInput` for a bad ``LEASEHOLD_BUSY_TIMEOUT``.
    """
    env = os.environ if environ is None else environ
    if db is None:
        db = command_line_db
    file = find_config(cwd)
    linked: tuple[str, str] | None = None
    if file is None:
        # a linked worktree without a leasehold.toml of its own (made before the main
        # worktree's was committed, or the file is not in git): use the main worktree's
        linked, file = _main_worktree_config(os.path.abspath(cwd or os.getcwd()))
    values = read_config(file) if file else {}
    worktree: tuple[str, str] | None = None
    if db is not None:
        if not db.strip():  # `--db "$UNSET"`: never fall through to another ledger
            raise ConfigError("the ledger named (--db, or the url given to Ledger.open) is empty: "
                              "name it (a path, sqlite:///abs/path or postgresql://...), or "
                              "leave it out to use LEASEHOLD_DB, leasehold.toml or the default")
        url, source = db, "--db"
    elif env.get("LEASEHOLD_DB"):
        url, source = env["LEASEHOLD_DB"], "LEASEHOLD_DB"
    elif "db" in values:
        assert file is not None
        url, worktree = resolve_config_db(values["db"], file)
        source = file
        if linked is not None and _is_relative_sqlite(values["db"]):
            worktree = linked
    else:
        url, source = default_db_path(env), "default"
    ttl = DEFAULT_TTL
    busy: float | None = None
    try:  # a setting in the file, not this command's input: fix the configuration (78)
        if values.get("default_ttl") is not None:
            ttl = parse_ttl(values["default_ttl"], f"default_ttl in {file}")
        if not env.get("LEASEHOLD_BUSY_TIMEOUT") and values.get("busy_timeout") is not None:
            busy = parse_duration(values["busy_timeout"], f"busy_timeout in {file}")
    except InvalidInput as exc:
        raise ConfigError(str(exc)) from None
    if env.get("LEASEHOLD_BUSY_TIMEOUT"):  # this invocation's input: exit 2
        busy = parse_duration(env["LEASEHOLD_BUSY_TIMEOUT"], "LEASEHOLD_BUSY_TIMEOUT")
    return Settings(url, source, ttl, file, values, busy, worktree)


def resolve_config_db(value: Any, file: str) -> tuple[str, tuple[str, str] | None]:
    """The ledger ``db = value`` in leasehold.toml ``file`` names: ``(url, worktree)``.

    A PostgreSQL URL and an absolute path (``/abs``, ``~/x``, ``sqlite:///abs``) are used as
    they are; a relative path (``rel.db``, ``sqlite:rel.db``) is relative to the folder of
    ``file``, and when that folder is inside a linked git worktree, to the same folder of the
    main worktree (``worktree`` is then ``(this worktree's root, the main worktree's root)``).
    Raises :class:`ConfigError` for a malformed value (an empty string or not a string
    included: it names no ledger, and falling back to the per-user one would split the fleet).
    """
    from leasehold.urls import split

    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"db in {file} names no ledger ({value!r}): give a path, "
                          "sqlite:///abs/path or postgresql://..., or remove the line to use "
                          "the per-user default")
    if value.startswith(("http://", "https://")):
        return value, None  # a leasehold serve server
    try:
        kind, target = split(value)
    except ValueError as exc:
        raise ConfigError(f"db in {file}: {exc}") from None
    if kind != "sqlite":
        return value, None
    path = os.path.expanduser(target)
    if os.path.isabs(path):
        return os.path.normpath(path), None
    base = os.path.dirname(os.path.abspath(file))
    worktree = linked_worktree(base)
    if worktree is not None:
        base = os.path.normpath(os.path.join(worktree[1], os.path.relpath(base, worktree[0])))
    return os.path.normpath(os.path.join(base, path)), worktree


def _main_worktree_config(here: str) -> tuple[tuple[str, str] | None, str | None]:
    """``((worktree root, main worktree root), leasehold.toml)`` when ``here`` is in a linked
    git worktree and the main worktree has a leasehold.toml in the same folder or above (up to
    its root); else ``(None, None)``."""
    try:
        linked = linked_worktree(here)
    except ConfigError:
        # the main worktree is unknown (a separate git dir without core.worktree): like the
        # main checkout without a leasehold.toml, use the per-user default
        return None, None
    if linked is None:
        return None, None
    mirrored = os.path.normpath(os.path.join(linked[1], os.path.relpath(here, linked[0])))
    found = find_config(mirrored)
    if found is None:
        return None, None
    rel = os.path.relpath(found, linked[1])
    if rel.startswith(".." + os.sep):
        return None, None
    return linked, found


def _is_relative_sqlite(value: Any) -> bool:
    from leasehold.urls import split

    kind, target = split(value)
    return kind == "sqlite" and not os.path.isabs(os.path.expanduser(target))


def linked_worktree(start: str) -> tuple[str, str] | None:
    """``(worktree root, main worktree root)`` when ``start`` is inside a linked git worktree,
    else None (not in a repository, in the main worktree, in a submodule).

    Read from the files git keeps (gitrepository-layout(5), git-config(1)), never by running
    git: a linked worktree's ``.git`` is a file ``gitdir: PATH`` naming
    ``$GIT_COMMON_DIR/worktrees/NAME``, which holds a ``commondir`` file (the common directory,
    relative to it). The main worktree is the folder holding the common directory when that is
    named ``.git`` and no ``core.worktree`` is set; else ``core.worktree`` in the common
    directory's ``config.worktree`` or ``config`` (relative to the common directory) when set
    (``git init --separate-git-dir=DIR/.git`` then ``git config core.worktree MAIN``: MAIN, not
    DIR); else, for a bare repository (no
    main worktree), the common directory itself. Raises :class:`ConfigError` when the common
    directory is a separate git dir (``git init --separate-git-dir``) of a non-bare repository
    without ``core.worktree``: git records nowhere where its main worktree is.
    """
    folder = start
    while True:
        dot_git = os.path.join(folder, ".git")
        try:
            with open(dot_git, encoding="utf-8") as fh:
                first = fh.readline()
        except (IsADirectoryError, PermissionError):
            return None  # a main worktree (or an unreadable one: treat as main)
        except (FileNotFoundError, NotADirectoryError):
            parent = os.path.dirname(folder)
            if parent == folder:
                return None
            folder = parent
            continue
        except (OSError, UnicodeDecodeError):
            return None
        if not first.startswith("gitdir:"):
            return None
        gitdir = os.path.join(folder, first[len("gitdir:"):].strip())
        try:
            with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as fh:
                common = fh.readline().strip()
        except (OSError, UnicodeDecodeError):
            return None  # a submodule or a separate git dir: this checkout is the main one
        common = os.path.normpath(os.path.join(gitdir, common))
        return folder, _main_of_common_dir(common, folder)


def _main_of_common_dir(common: str, linked: str) -> str:
    """The main worktree of the git common directory ``common`` (see :func:`linked_worktree`):
    ``core.worktree`` of its ``config`` / ``config.worktree`` when set (git's own rule: it wins
    over the default, also for a separate git dir named ``.git``), else the folder holding a
    common directory named ``.git``, else as documented there."""
    core: dict[str, str] = {}
    for name in ("config", "config.worktree"):  # the main worktree's own config comes last
        core.update(_git_core_section(os.path.join(common, name)))
    if core.get("worktree"):
        return os.path.normpath(os.path.join(common, os.path.expanduser(core["worktree"])))
    if os.path.basename(common) == ".git":
        return os.path.dirname(common)
    if core.get("bare", "true").lower() in ("false", "no", "off", "0"):
        raise ConfigError(
            f"cannot find the main worktree of the linked git worktree {linked}: its repository "
            f"keeps its git directory apart ({common}, git init --separate-git-dir) and git "
            "records nowhere where the main checkout is, so a relative db in leasehold.toml "
            "cannot be shared by all worktrees. Fix: run `git config core.worktree MAIN` once "
            "in the main checkout (MAIN: its absolute path), or name the ledger with an "
            "absolute path (db in leasehold.toml, or LEASEHOLD_DB)")
    return common


def _git_core_section(path: str) -> dict[str, str]:
    """``worktree`` and ``bare`` of the ``[core]`` section of the git config file ``path``
    (git-config(1) syntax: case-insensitive names, optional double quotes, ``#``/``;``
    comments); empty when the file cannot be read."""
    found: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read(256 * 1024).splitlines()
    except (OSError, UnicodeDecodeError):
        return found
    section = ""
    for line in lines:
        line = line.strip()
        if line.startswith("["):
            end = line.find("]")
            section = line[1:end].strip().lower() if end > 0 else ""
            line = line[end + 1:].strip() if end > 0 else ""
        if section != "core" or not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lower()
        if key not in ("worktree", "bare"):
            continue
        value = value.strip() if sep else "true"
        if value.startswith('"'):
            end = value.find('"', 1)
            value = value[1:end] if end > 0 else value[1:]
        else:
            value = value.split("#", 1)[0].split(";", 1)[0].strip()
        found[key] = value
    return found


def git_user_name() -> str | None:
    """``git config user.name``, or None (no git, no repository, not set, or slow)."""
    import subprocess

    try:
        out = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True,
                             timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    name = out.stdout.strip()
    return name or None


def resolve_actor(flag: str | None, settings: Settings | None,
                  environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``(actor, source)``. Raises :class:`InvalidInput` when nothing names an actor."""
    env = os.environ if environ is None else environ
    if flag:
        return validate_name(flag, "actor"), "--actor"
    if env.get("LEASEHOLD_ACTOR"):
        return validate_name(env["LEASEHOLD_ACTOR"], "actor"), "LEASEHOLD_ACTOR"
    if settings is not None and settings.get("actor"):
        return validate_name(str(settings.get("actor")), "actor"), f"actor in {settings.file}"
    if settings is not None and settings.db.startswith(("http://", "https://")):
        from leasehold.remote import token_actor

        return token_actor(settings), "the token of " + settings.db
    name = git_user_name()
    if name:
        return validate_name(name.replace(":", "-"), "actor"), "git config user.name"
    if env.get("USER"):
        return validate_name(env["USER"], "actor"), "USER"
    raise InvalidInput("no actor: pass --actor NAME or set LEASEHOLD_ACTOR")


def resolve_session(flag: str | None, environ: Mapping[str, str] | None = None,
                    payload_session: str | None = None,
                    required: bool = True) -> tuple[str | None, str | None]:
    """``(session, source)``; ``(None, None)`` when none is set and not ``required``.

    Raises :class:`InvalidInput` when a session is required and nothing names one.
    """
    env = os.environ if environ is None else environ
    for value, source in (
        (payload_session, "hook payload session_id"),
        (flag, "--session"),
        (env.get("LEASEHOLD_SESSION"), "LEASEHOLD_SESSION"),
        (env.get("CLAUDE_CODE_SESSION_ID"), "CLAUDE_CODE_SESSION_ID"),
        (env.get("CODEX_THREAD_ID"), "CODEX_THREAD_ID"),
        (env.get("GEMINI_SESSION_ID"), "GEMINI_SESSION_ID"),
    ):
        if value:
            return validate_name(value, "session"), source
    if required:
        raise InvalidInput(
            "no session: pass --session ID or set LEASEHOLD_SESSION (Claude Code sets "
            "CLAUDE_CODE_SESSION_ID)"
        )
    return None, None
