"""``leasehold init``: set a project up explicitly, so that nothing is created by accident.

leasehold never creates a ledger at a location someone named (``--db``, ``LEASEHOLD_DB``,
``db`` in leasehold.toml): a mistyped path would otherwise start an empty ledger on which every
claim succeeds. :func:`init_project` is the one explicit way to create one. It runs
:data:`STEPS` in order; each returns a :class:`Step` saying what it did, and running it again
changes nothing (``unchanged``):

1. ``ledger``: create the ledger (a SQLite file and folder, or the schema in an existing
   PostgreSQL database), or bring an existing one's schema up to date. A file that is not a
   leasehold ledger is refused and left untouched;
2. ``config``: inside a git repository, a leasehold.toml naming the ledger (default
   ``db = ".leasehold/ledger.db"`` at the repository root, the main worktree's when run in a
   linked worktree; an existing leasehold.toml without ``db`` gets the line; one naming another
   ledger is an error, never overwritten). A leasehold.toml above the repository that names a
   ledger (the repository is nested in another one, e.g. a submodule) already governs it: that
   ledger is the one created, and no second leasehold.toml is written unless
   ``Plan.separate``. It is planned and checked before step 1 runs, and written after the
   ledger exists;
3. ``gitignore``: the ledger's folder in the ``.gitignore`` at ``Plan.root``;
4. ``hooks``: inside a git repository, the agent hooks with the absolute path of the
   ``leasehold`` program (:func:`leasehold.hooks.setup.install_hooks`): Claude Code by default
   (project scope), the runtimes in ``Plan.runtimes`` (``codex``, ``gemini``), and the git
   pre-commit guard when ``Plan.git_guard``; none when ``Plan.runtimes`` is empty.
"""

from __future__ import annotations

import os

from leasehold.errors import ConfigError, InvalidInput, StoreBusy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from leasehold.config import Settings

#: The ledger ``init`` puts in a repository, relative to its root.
DEFAULT_REPO_DB = ".leasehold/ledger.db"
_TOML_HEADER = (
    "# leasehold settings (see the README, \"Configuration\").\n"
    "# db: the ledger every session in this repository shares. A relative path is relative to\n"
    "# this file; in a linked git worktree it is resolved in the main worktree, so all worktrees\n"
    "# share one ledger. Create it with `leasehold init`.\n"
)


class Step:
    """What one step of ``init`` did: ``name``; ``action`` (``created``, ``updated``,
    ``unchanged``, ``skipped``); ``path`` (the file it concerns, or None); ``detail`` (one line
    for people)."""

    __slots__ = ("name", "action", "path", "detail")

    def __init__(self, name: str, action: str, path: str | None, detail: str) -> None:
        self.name = name
        self.action = action
        self.path = path
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.name, "action": self.action, "path": self.path, "detail": self.detail}


class Plan:
    """Everything ``init`` decided before changing anything.

    ``db``: the ledger URL or absolute path to create; ``repo``: the git repository's root (this
    worktree's), or None; ``worktree``: ``(this worktree's root, the main worktree's root)`` in
    a linked worktree; ``config``: the leasehold.toml to write or keep, or None;
    ``config_action``: ``created`` / ``updated`` / ``unchanged`` / ``skipped``; ``config_value``:
    the ``db`` value written (or found); ``note``: why the config step was skipped."""

    def __init__(self) -> None:
        self.db = ""
        self.repo: str | None = None
        self.worktree: tuple[str, str] | None = None
        self.config: str | None = None
        self.config_action = "skipped"
        self.config_value: str | None = None
        self.note = ""
        self.created = False
        self.applied: list[str] = []
        #: Agent runtimes whose hooks the ``hooks`` step installs; the git guard too when set.
        self.runtimes: tuple[str, ...] = ("claude",)
        self.git_guard = False
        self.settings: Settings | None = None
        #: Where leasehold.toml and .gitignore go: the repository's root, or the main
        #: worktree's when ``repo`` is a linked worktree of a repository with one.
        self.root: str | None = None
        #: True when a leasehold.toml above the repository governs it (nested repositories).
        self.governed = False


class InitReport:
    """The outcome of :func:`init_project`: ``plan`` and the ``steps`` in the order run."""

    def __init__(self, plan: Plan, steps: list[Step]) -> None:
        self.plan = plan
        self.steps = steps

    def advice(self) -> list[str]:
        """What the user should do next, for the text output (not part of ``--json``)."""
        lines = []
        for step in self.steps:
            if step.name == "config" and step.action in ("created", "updated"):
                lines.append(
                    f"next: commit leasehold.toml (git add {step.path} && git commit): git "
                    "worktrees and clones made before it is committed do not see it (a linked "
                    "worktree without one still finds the main worktree's)")
        return lines

    def to_dict(self) -> dict[str, Any]:
        from leasehold.urls import redact

        plan = self.plan
        worktree = None
        if plan.worktree is not None:
            worktree = {"worktree": plan.worktree[0], "main_worktree": plan.worktree[1]}
        return {"db": redact(plan.db), "created": plan.created, "applied": plan.applied,
                "repository": plan.repo, "config": plan.config, "db_shared_worktrees": worktree,
                "steps": [step.to_dict() for step in self.steps]}


def repository_root(start: str) -> str | None:
    """The root of the git checkout containing ``start`` (the folder holding ``.git``, a
    directory or, in a linked worktree or submodule, a file), or None."""
    folder = start
    while True:
        if os.path.exists(os.path.join(folder, ".git")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def toml_string(value: str) -> str:
    """``value`` as a TOML string: a literal string when it can be one, else a basic string
    with escapes (TOML 1.0, "String")."""
    if "'" not in value and all(ch >= " " and ch != "\x7f" for ch in value):
        return f"'{value}'" if "\\" in value or '"' in value else f'"{value}"'
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _inside(path: str, root: str) -> bool:
    rel = os.path.relpath(path, root)
    return rel != ".." and not rel.startswith(".." + os.sep)


def _same_file(a: str, b: str) -> bool:
    """Whether two existing paths are one file (a hard link); False when either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def plan_init(db: str | None = None, *, cwd: str | None = None,
              environ: Mapping[str, str] | None = None, separate: bool = False) -> Plan:
    """Decide what ``init`` will do, changing nothing. ``separate``: give a repository nested
    under a governing leasehold.toml its own ledger and leasehold.toml. Raises
    :class:`InvalidInput` when leasehold.toml already names another ledger than ``db``, or
    ``db`` carries a password that would be written into leasehold.toml; :class:`ConfigError`
    for a malformed URL, or a linked worktree whose main worktree cannot be found."""
    from leasehold.config import CONFIG_NAME, linked_worktree, load_settings, resolve_config_db
    from leasehold.urls import passwords, redact, split

    env = os.environ if environ is None else environ
    here = os.path.abspath(cwd or os.getcwd())
    plan = Plan()
    settings = load_settings(db, environ=env, cwd=here)
    plan.settings = settings
    plan.repo = repository_root(here)
    if plan.repo is None or (not db and env.get("LEASEHOLD_DB")):
        plan.db = _absolute(settings.db, here)
        plan.worktree = settings.worktree
        if plan.repo is not None:
            plan.note = "LEASEHOLD_DB is set: leasehold.toml left as it is"
        else:
            plan.note = "not inside a git repository: no leasehold.toml written"
        return plan
    linked = linked_worktree(plan.repo)
    plan.root = plan.repo
    if linked is not None and os.path.exists(os.path.join(linked[1], ".git")):
        plan.root = linked[1]  # not in a bare repository's worktree: the main worktree's files
    existing = None
    if settings.file and (_inside(settings.file, plan.repo) or _inside(settings.file, plan.root)):
        existing = settings.file
    elif settings.file and not db and not separate and "db" in settings.values:
        # a nested repository: the leasehold.toml above it governs this folder already
        plan.governed = True
        plan.config = settings.file
        plan.config_action = "unchanged"
        plan.config_value = str(settings.values["db"])
        plan.db = _absolute(settings.db, here)
        plan.worktree = settings.worktree
        return plan
    plan.config = existing or os.path.join(plan.root, CONFIG_NAME)
    folder = os.path.dirname(plan.config)
    if plan.root != plan.repo and _inside(folder, plan.repo):
        # a linked worktree's own leasehold.toml: its relative paths resolve in the main one
        folder = os.path.normpath(os.path.join(plan.root, os.path.relpath(folder, plan.repo)))
    found = settings.values.get("db") if existing else None
    if db:
        try:
            kind, target = split(db)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if kind == "sqlite":
            path = os.path.normpath(os.path.join(here, os.path.expanduser(target)))
            if _inside(path, plan.repo) and plan.root != plan.repo:
                # from a linked worktree: the same place in the main worktree, shared by all
                path = os.path.normpath(os.path.join(plan.root, os.path.relpath(path, plan.repo)))
            value = os.path.relpath(path, folder) if _inside(path, plan.root) else path
        else:
            if passwords(db):
                raise InvalidInput(
                    f"refusing to write a password into {plan.config} (a file meant to be "
                    "committed): pass the URL without it and put the password in PGPASSWORD or "
                    f"~/.pgpass, e.g. `leasehold init --db {_without_password(db)}`")
            value = db
    else:
        value = str(found) if found else os.path.relpath(os.path.join(plan.root, DEFAULT_REPO_DB),
                                                           folder)
    target_db, plan.worktree = resolve_config_db(value, plan.config)
    # compared as written and with links resolved (SQLite follows a link, even a dangling one)
    pairs = ((os.path.normpath(target_db), os.path.normpath(plan.config)),
             (os.path.realpath(target_db), os.path.realpath(plan.config)))
    if any(ledger == config or _inside(ledger, config) for ledger, config in pairs) \
            or _same_file(target_db, plan.config):
        raise InvalidInput(f"the ledger cannot be the settings file {plan.config} (or inside it): name another "
                           f"path (e.g. `leasehold init --db {DEFAULT_REPO_DB}`)")
    if plan.worktree is None and linked is not None and plan.root != plan.repo \
            and _inside(target_db, plan.root):
        plan.worktree = linked  # written in the main worktree, shared by this one
    if found:
        found_db, _ = resolve_config_db(str(found), plan.config)
        if found_db != target_db:
            raise InvalidInput(
                f"{plan.config} already names another ledger (db = {redact(str(found))}); edit "
                "it yourself, or run `leasehold init` without --db to create the one it names")
        plan.config_action = "unchanged"
        value = str(found)
    else:
        plan.config_action = "updated" if existing else "created"
    plan.config_value = value
    plan.db = target_db
    return plan


def _absolute(url: str, here: str) -> str:
    from leasehold.urls import split

    try:
        kind, target = split(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if kind != "sqlite":
        return url
    return os.path.normpath(os.path.join(here, os.path.expanduser(target)))


def _without_password(url: str) -> str:
    from leasehold.urls import MASK, redact

    return redact(url).replace(":" + MASK + "@", "@")


# -- the steps ----------------------------------------------------------------------------------
def step_ledger(plan: Plan) -> Step:
    """Create the ledger, or bring an existing one's schema up to date."""
    from leasehold.store import open_store
    from leasehold.urls import redact

    busy = plan.settings.busy_timeout if plan.settings is not None else None
    store = open_store(plan.db, busy_timeout=busy, create=True)
    try:
        plan.created = bool(getattr(store, "created", False))
        plan.applied = list(store.applied_on_open)
    finally:
        store.close()
    shown = redact(plan.db)
    if plan.created:
        return Step("ledger", "created", shown, f"created the ledger {shown}")
    if plan.applied:
        return Step("ledger", "updated", shown,
                    f"the ledger {shown} exists; applied {', '.join(plan.applied)}")
    return Step("ledger", "unchanged", shown, f"the ledger {shown} exists and is up to date")


def step_config(plan: Plan) -> Step:
    """Write (or complete) leasehold.toml in the repository."""
    if plan.config is None or plan.config_value is None:
        return Step("config", "skipped", None, plan.note or "no leasehold.toml needed")
    line = f"db = {toml_string(plan.config_value)}\n"
    if plan.governed:
        return Step("config", "unchanged", plan.config,
                    f"{plan.config} governs this repository (it is above it): using its ledger "
                    f"(db = {plan.config_value}); run `leasehold init --separate` for a ledger "
                    "of this repository's own")
    if plan.config_action == "unchanged":
        return Step("config", "unchanged", plan.config,
                    f"{plan.config} already names the ledger (db = {plan.config_value})")
    if plan.config_action == "created":
        _write_atomic(plan.config, _TOML_HEADER + line, exclusive=True)
        return Step("config", "created", plan.config,
                    f"wrote {plan.config} (db = {plan.config_value})")
    try:
        with open(plan.config, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ConfigError(f"{plan.config}: not UTF-8 text (TOML files are UTF-8)") from None
    if text and not text.endswith("\n"):
        text += "\n"
    _write_atomic(plan.config, text + line)
    return Step("config", "updated", plan.config, f"added db = {plan.config_value} to {plan.config}")


#: The largest .gitignore init reads (bytes).
MAX_GITIGNORE_BYTES = 16 * 1024 * 1024


def step_gitignore(plan: Plan) -> Step:
    """Ignore the ledger's folder (or file and its -wal/-shm companions) in the repository."""
    import pathspec

    if plan.repo is None or not os.path.isabs(plan.db):
        return Step("gitignore", "skipped", None, "the ledger is not a file in a repository")
    root = plan.worktree[1] if plan.worktree is not None else plan.repo
    if plan.governed or not _inside(plan.db, root):
        return Step("gitignore", "skipped", None, "the ledger is outside the repository")
    rel = os.path.relpath(plan.db, root).replace(os.sep, "/")
    folder = rel.rpartition("/")[0]
    entry = f"/{folder}/" if folder else f"/{rel}*"
    path = os.path.join(plan.root or plan.repo, ".gitignore")
    from leasehold.safefiles import read_regular

    try:  # git reads it as bytes: any that are not UTF-8 are kept as they are
        text = read_regular(path, MAX_GITIGNORE_BYTES).decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        from leasehold.errors import InvalidInput

        why = f"cannot read {path}: {exc.strerror}" if exc.strerror else str(exc)
        raise InvalidInput(f"{why}; add {entry} to it by hand, or fix it and run init again") from None
    spec = pathspec.GitIgnoreSpec.from_lines(text.splitlines())
    if all(spec.match_file(name) for name in (rel, rel + "-wal", rel + "-shm")):
        return Step("gitignore", "unchanged", path, f"{path} already ignores {rel}")
    if text and not text.endswith("\n"):
        text += "\n"
    _write_atomic(path, text + "# the leasehold ledger (leasehold init)\n" + entry + "\n",
                  errors="surrogateescape")
    return Step("gitignore", "updated" if text else "created", path, f"added {entry} to {path}")


#: The steps of ``init``, in order. Agent-runtime installs are added here.
def step_hooks(plan: Plan) -> Step:
    """Install the agent hooks (and the git guard) in the repository; skipped outside one or
    when no runtime is asked for."""
    if plan.repo is None:
        return Step("hooks", "skipped", None, "not in a git repository: install hooks with "
                    "`leasehold hooks install --scope user` if you want them everywhere")
    if not plan.runtimes and not plan.git_guard:
        return Step("hooks", "skipped", None, "no hooks asked for (--no-hooks)")
    from leasehold.hooks.setup import install_hooks

    done = install_hooks(plan.repo, runtimes=plan.runtimes, git=plan.git_guard)
    changed = any(d.get("events") or d.get("how") not in (None, "unchanged") for d in done)
    return Step("hooks", "created" if changed else "unchanged", done[0]["path"] if done else None,
                "; ".join(d["message"] for d in done))


STEPS: list[Callable[[Plan], Step]] = [step_ledger, step_config, step_gitignore, step_hooks]


def init_project(db: str | None = None, *, cwd: str | None = None,
                 environ: Mapping[str, str] | None = None,
                 runtimes: tuple[str, ...] = ("claude",), git_guard: bool = False,
                 separate: bool = False) -> InitReport:
    """Create the ledger (and, in a git repository, leasehold.toml and the .gitignore entry).

    ``db``: the ledger to create (a path, ``sqlite:...`` or ``postgresql://...``; relative to
    ``cwd``); default: what leasehold.toml names, else ``.leasehold/ledger.db`` at the
    repository root, else (outside a repository) ``LEASEHOLD_DB`` or the per-user default.
    ``runtimes``: agent runtimes whose hooks to install in the repository (``claude``, ``codex``,
    ``gemini``; empty: none); ``git_guard``: the pre-commit guard too; ``separate``: see
    :func:`plan_init`.
    Idempotent. Raises :class:`InvalidInput` (see :func:`plan_init`), :class:`ConfigError` (a
    file that is not a ledger, a missing PostgreSQL database, a bad URL) and the store's errors;
    nothing is written before the plan is validated, and the ledger is created before
    leasehold.toml names it.
    """
    plan = plan_init(db, cwd=cwd, environ=environ, separate=separate)
    plan.runtimes = tuple(runtimes)
    plan.git_guard = git_guard
    return InitReport(plan, [step(plan) for step in STEPS])


def _write_atomic(path: str, text: str, exclusive: bool = False, errors: str = "strict") -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename; ``exclusive``: fail
    (:class:`StoreBusy`, exit 75: run again) if ``path`` appeared meanwhile; ``errors``: the UTF-8 encoder's
    (``surrogateescape`` writes back bytes read that way)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", errors=errors) as fh:
            fh.write(text)
        if exclusive:
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except FileExistsError:
        os.unlink(tmp)
        # Another `leasehold init` won the race: running again completes (or finds) its work,
        # so this is retryable (75), not a configuration error.
        raise StoreBusy(f"{path} appeared while leasehold init ran (another init at the same "
                        "time?); run it again") from None
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
