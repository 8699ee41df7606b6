"""``leasehold doctor``: check that this working directory has a working coordination set-up,
and say how to fix each thing that is not.

Each check is ``{"name", "ok", "detail", "fix"}``; ``ok`` is True, False (a problem: exit 1) or
None (information that needs no fix, e.g. an optional runtime not installed). The checks:

- ``config``: leasehold.toml (if any) parses.
- ``ledger``: the ledger location resolves (and from where); ``worktrees``: every worktree of the
  repository resolves the same ledger (two ledgers: two sessions both win).
- ``reachable``: the ledger opens without creating anything (a SQLite file that does not exist
  is a problem, not created); ``schema``: its migrations are applied; ``clock``: for
  PostgreSQL, the skew between this machine and the server (leases are judged by the server's
  clock, the hooks' throttles by this one) must stay under :data:`MAX_SKEW`; ``token``: for a
  remote ledger, the configured token is sent in one real request (``whoami``): a missing,
  unreadable, rejected or expired token is a problem.
- ``identity``: an actor resolves; the session is information (the agent runtimes give it).
- ``hooks``: Claude Code hooks are installed somewhere, and every installed hook of any runtime
  can run (:mod:`leasehold.hooks.health`); ``git-guard``: whether the pre-commit guard is in;
  ``mcp:CLIENT:SCOPE``: each installed MCP server entry can start.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.config import Settings

#: Seconds of clock skew against the PostgreSQL server above which doctor reports a problem.
MAX_SKEW = 2.0


def _check(name: str, ok: bool | None, detail: str, fix: str | None = None) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, "fix": fix}


def _sqlite_path(url: str) -> str | None:
    if "://" in url and not url.startswith("sqlite:"):
        return None
    if url.startswith("sqlite:"):
        url = url[len("sqlite:"):]
        if url.startswith("//"):
            url = url[2:]
    return url


def _same_ledger(url: str) -> str:
    path = _sqlite_path(url)
    return os.path.realpath(path) if path is not None else url


def _worktrees(cwd: str | None) -> list[str]:
    import subprocess

    try:
        out = subprocess.run(["git", "worktree", "list", "--porcelain"], capture_output=True,
                             text=True, cwd=cwd, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [line[len("worktree "):] for line in out.stdout.splitlines() if line.startswith("worktree ")]


def run_checks(cwd: str | None = None, db: str | None = None) -> list[dict[str, Any]]:
    """Every check, in order (see the module docstring)."""
    from leasehold.config import load_settings
    from leasehold.errors import LeaseholdError

    checks: list[dict[str, Any]] = []
    try:
        settings = load_settings(db, cwd=cwd)
    except LeaseholdError as exc:
        checks.append(_check("config", False, str(exc), "fix the leasehold.toml named above"))
        return checks
    from leasehold.hooks.claude import reference_settings

    try:
        reference_settings(settings)  # a bad one makes the gate deny every Agent call
    except LeaseholdError as exc:
        checks.append(_check("config", False, str(exc), "fix the setting named above in "
                             "leasehold.toml; until then the gate denies every sub-agent call"))
    else:
        checks.append(_check("config", True, f"leasehold.toml: {settings.file}" if settings.file
                             else "no leasehold.toml (defaults apply)"))
    where = f"{settings.db} (from {settings.db_source})"
    if settings.db_source == "default":
        checks.append(_check("ledger", None, f"{where}: the per-user default, shared by every "
                             "repository of this user", "for a ledger of this repository: "
                             "leasehold init"))
    else:
        checks.append(_check("ledger", True, where))
    checks.append(_worktree_check(settings, cwd, db))
    checks += _store_checks(settings)
    checks.append(_identity_check(settings))
    checks += _hook_checks(cwd)
    checks += _mcp_checks(cwd)
    from leasehold.urls import scrub

    # A password in the ledger's URL is never printed (text or --json), whichever check names
    # it; other worktrees' URLs are redacted where _worktree_check names them.
    for check in checks:
        for key in ("detail", "fix"):
            if check[key]:
                check[key] = scrub(check[key], str(settings.db))
    return checks


def _mcp_checks(cwd: str | None) -> list[dict[str, Any]]:
    """One check per runtime configuration holding leasehold's MCP server entry (optional: no
    entry, no check; a file that cannot be read is a warning, since the server is optional)."""
    from leasehold.errors import LeaseholdError
    from leasehold.hooks import mcp_install

    try:
        shown = mcp_install.show(cwd=cwd)
    except LeaseholdError as exc:
        return [_check("mcp", None, str(exc))]
    out = []
    for row in shown:
        name = f"mcp:{row['client']}:{row['scope']}"
        if row["error"]:
            out.append(_check(name, None, row["error"], f"fix {row['path']} before 'leasehold mcp install'"))
        elif row["problems"]:
            out.append(_check(name, False, "; ".join(row["problems"]),
                              f"leasehold mcp install --client {row['client']} --scope {row['scope']}"))
        elif row["installed"]:
            out.append(_check(name, True, f"leasehold MCP server in {row['path']}"))
    return out


def _worktree_check(settings: Settings, cwd: str | None, db: str | None) -> dict[str, Any]:
    from leasehold.config import load_settings
    from leasehold.errors import LeaseholdError
    from leasehold.urls import redact

    trees = _worktrees(cwd)
    if len(trees) < 2:
        return _check("worktrees", None, "one working tree" if trees else "not in a git repository")
    mine = _same_ledger(settings.db)
    differ = []
    for tree in trees:
        try:
            other = load_settings(db, cwd=tree)
        except LeaseholdError as exc:
            differ.append(f"{tree}: {exc}")
            continue
        if _same_ledger(other.db) != mine:
            differ.append(f"{tree} uses {redact(str(other.db))} (from {other.db_source})")
    if differ:
        return _check("worktrees", False, "worktrees resolve different ledgers: " + "; ".join(differ),
                      "put one leasehold.toml with an absolute db (or one relative to the main "
                      "worktree) where every worktree finds it, or set LEASEHOLD_DB; "
                      "`leasehold init` in the main worktree does this")
    return _check("worktrees", True, f"all {len(trees)} worktrees use {settings.db}")


def _store_checks(settings: Settings) -> list[dict[str, Any]]:
    from leasehold.errors import ConfigError, LeaseholdError, PermissionDenied
    from leasehold.ledger import Ledger

    path = _sqlite_path(settings.db)
    if path is not None and not os.path.exists(path):
        return [_check("reachable", False, f"no ledger at {path}",
                       "create it: leasehold init (or leasehold init --db URL)")]
    if str(settings.db).startswith(("http://", "https://")):
        from leasehold.remote import token_for

        try:
            token_for(settings)
        except ConfigError as exc:
            return [_check("reachable", None, f"server {settings.db} not asked"),
                    _check("token", False, str(exc), "fix the token named above")]
    try:
        ledger = Ledger.from_settings(settings, busy_timeout=2.0)
    except PermissionDenied as exc:
        return [_check("reachable", None, f"server {settings.db} not asked"),
                _check("token", False, f"no usable token for the ledger server: {exc}",
                       "set LEASEHOLD_TOKEN or token_file in leasehold.toml (an admin makes "
                       "one: leasehold token create ACTOR)")]
    except ConfigError as exc:
        return [_check("reachable", False, str(exc), "fix the configuration named above")]
    except LeaseholdError as exc:
        return [_check("reachable", False, f"cannot open {settings.db}: {exc}",
                       "check that the database is up and the URL right (leasehold whoami)")]
    out = []
    with ledger:
        store = ledger.store
        if getattr(store, "dialect", "") == "remote":
            return _remote_checks(settings, ledger)
        out.append(_check("reachable", True, f"{getattr(store, 'dialect', '?')} ledger opens"))
        applied = list(getattr(store, "applied_on_open", []) or [])
        out.append(_check("schema", True, "current" + (
            f" (opening applied {', '.join(applied)})" if applied else "")))
        if getattr(store, "dialect", "") == "postgres":
            before = time.time()
            server = ledger.now()
            after = time.time()
            skew = server - (before + after) / 2
            if abs(skew) > MAX_SKEW:
                out.append(_check("clock", False, f"this machine's clock is {-skew:+.1f}s off the "
                                  "PostgreSQL server's", "synchronise the clock (NTP, e.g. "
                                  "timedatectl set-ntp true)"))
            else:
                out.append(_check("clock", True, f"skew against PostgreSQL {skew:+.2f}s"))
    return out


def _remote_checks(settings: Settings, ledger: Any) -> list[dict[str, Any]]:
    """A remote ledger (``leasehold serve``): opening it sends nothing, so ask it who the
    configured token belongs to (one real ``whoami`` request): that proves the server answers
    and the token authenticates."""
    from leasehold.errors import ConfigError, LeaseholdError, PermissionDenied
    from leasehold.remote import token_for

    try:
        source = "LEASEHOLD_TOKEN" if os.environ.get("LEASEHOLD_TOKEN") else (
            f"token_file {settings.path('token_file', '')}" if settings.get("token_file") else None)
        token = token_for(settings)
    except ConfigError as exc:
        return [_check("reachable", None, f"server {settings.db} not asked"),
                _check("token", False, str(exc), "fix the token file named above")]
    if not token:
        return [_check("reachable", None, f"server {settings.db} not asked"),
                _check("token", False, "no token configured for the ledger server",
                       "set LEASEHOLD_TOKEN or token_file in leasehold.toml (an admin makes one: "
                       "leasehold token create ACTOR)")]
    try:
        me = ledger.whoami()
    except PermissionDenied as exc:
        return [_check("reachable", True, f"server {settings.db} answers"),
                _check("token", False, f"the server refused the token from {source}: {exc}",
                       "set a valid token (leasehold token create ACTOR on the server's ledger; "
                       "an expired or revoked token must be replaced)")]
    except LeaseholdError as exc:
        return [_check("reachable", False, f"cannot reach {settings.db}: {exc}",
                       "check that leasehold serve is running there and the URL is right")]
    return [_check("reachable", True, f"server {settings.db} answers"),
            _check("token", True, f"the token from {source} authenticates as {me.get('actor')} "
                   f"(role {me.get('role')})")]


def _identity_check(settings: Settings) -> dict[str, Any]:
    from leasehold.config import resolve_actor, resolve_session
    from leasehold.errors import InvalidInput

    try:
        actor, source = resolve_actor(None, settings)
    except InvalidInput as exc:
        return _check("identity", False, str(exc),
                      "set actor in leasehold.toml, LEASEHOLD_ACTOR, or git config user.name")
    session, ssource = resolve_session(None, required=False)
    tail = (f"; session {session} (from {ssource})" if session else
            "; no session here (agent hooks get theirs from the runtime; pass --session or set "
            "LEASEHOLD_SESSION for claims made outside an agent)")
    return _check("identity", True, f"actor {actor} (from {source}){tail}")


def _hook_checks(cwd: str | None) -> list[dict[str, Any]]:
    from leasehold.errors import LeaseholdError
    from leasehold.hooks import install

    out = []
    try:
        shown = install.show(cwd)
    except LeaseholdError as exc:
        return [_check("hooks", False, str(exc), "fix the settings file named above")]
    claude = [i for i in shown if i["runtime"] == "claude" and i["installed"]]
    if not claude:
        out.append(_check("hooks", False, "no Claude Code hooks are installed (no gate, no "
                          "heartbeat, no release at session end)", "leasehold hooks install"))
    for info in shown:
        if info.get("error"):
            out.append(_check(f"hooks:{info['runtime']}:{info['scope']}", False, info["error"],
                              f"fix {info['path']}"))
        elif info["installed"]:
            missing = install.missing_text(info)
            problems = info["problems"] + ([missing] if missing else [])
            name = f"hooks:{info['runtime']}:{info['scope']}"
            if problems:
                out.append(_check(name, False, "; ".join(problems),
                                  "see each problem's fix; then leasehold hooks show"))
            else:
                detail = f"{', '.join(info['installed'])} in {info['path']}"
                if info["runtime"] == "codex":
                    from leasehold.hooks.health import CODEX_TRUST_NOTE

                    detail += f" ({CODEX_TRUST_NOTE})"
                out.append(_check(name, True, detail))
    try:
        from leasehold.hooks import git_guard

        guard = git_guard.show(cwd)
    except LeaseholdError:
        return out
    if guard["problems"]:
        out.append(_check("git-guard", False, "; ".join(guard["problems"]),
                          "leasehold hooks install --git"))
    else:
        out.append(_check("git-guard", True if guard["installed"] else None,
                          f"pre-commit guard {'installed' if guard['installed'] else 'not installed'} "
                          f"in {guard['hooks_dir']}",
                          None if guard["installed"] else "optional: leasehold hooks install --git"))
    return out
