"""Where the ledger is, and that it is never created by accident: relative paths in
leasehold.toml, git worktrees sharing one ledger, ``leasehold init``, files that are not
ledgers left byte-for-byte untouched, newer schemas refused, permanent problems exit 78 (not the
retryable 75), and passwords never printed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from leasehold import Ledger
from leasehold.errors import ConfigError
from tests.conftest import CLI, LEASEHOLD

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")


def run(env: dict[str, str], cwd: Path, *args: str, input: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LEASEHOLD, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          input=input, timeout=60)


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run([GIT or "git", "-c", "user.email=t@example.com", "-c", "user.name=t",
                          *args], capture_output=True, text=True, cwd=cwd, check=True)
    return out.stdout


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    return proc.stderr


# -- relative paths in leasehold.toml ---------------------------------------------------------
@pytest.mark.parametrize("form", ["rel.db", "sqlite:rel.db", "sqlite://rel.db", "./state/../rel.db"])
def test_every_relative_form_resolves_against_the_toml_not_the_working_directory(
        form: str, base_env: dict[str, str], tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "sub" / "deeper").mkdir(parents=True)
    (project / "leasehold.toml").write_text(f'db = "{form}"\n')
    assert run(base_env, project / "sub", "init").returncode == 0
    assert (project / "rel.db").is_file() and not (project / "sub" / "rel.db").exists()
    first = run(base_env, project, "claim", "T", "--actor", "a", "--session", "s1")
    assert first.returncode == 0, first.stderr
    # the same task from a sub-folder: the same ledger, so the second session is refused
    second = run(base_env, project / "sub" / "deeper", "claim", "T", "--actor", "b", "--session", "s2")
    assert second.returncode == 1 and "held by a:s1" in second.stderr
    assert not list((project / "sub").rglob("*.db"))


def test_absolute_forms_stay_absolute(tmp_path: Path) -> None:
    from leasehold.config import load_settings

    (tmp_path / "leasehold.toml").write_text(f'db = "sqlite://{tmp_path}/abs.db"\n')
    assert load_settings(environ={}, cwd=str(tmp_path)).db == str(tmp_path / "abs.db")
    (tmp_path / "leasehold.toml").write_text('db = "postgresql://u@h/db"\n')
    assert load_settings(environ={}, cwd=str(tmp_path)).db == "postgresql://u@h/db"
    (tmp_path / "leasehold.toml").write_text('db = "mysql://u@h/db"\n')
    with pytest.raises(ConfigError, match="unknown scheme"):
        load_settings(environ={}, cwd=str(tmp_path))


@pytest.mark.parametrize("value", ['""', '"   "', "5", "true"])
def test_an_empty_or_non_string_db_in_the_toml_is_an_error_not_the_per_user_ledger(
        value: str, base_env: dict[str, str], tmp_path: Path) -> None:
    """``db = ""`` (say, a template whose variable was empty) names no ledger: falling back to
    the per-user default would quietly coordinate through another ledger (and the gate would
    allow a task held in the repository's)."""
    from leasehold.config import load_settings

    (tmp_path / "leasehold.toml").write_text(f"db = {value}\n")
    with pytest.raises(ConfigError, match="leasehold.toml"):
        load_settings(environ={}, cwd=str(tmp_path))
    result = run(base_env, tmp_path, "status", "X")
    assert result.returncode == 78 and "leasehold.toml" in one_line(result)
    assert not (Path(base_env["XDG_DATA_HOME"]) / "leasehold").exists()


def test_an_empty_explicit_db_is_an_error_not_the_configured_ledger(
        base_env: dict[str, str], tmp_path: Path) -> None:
    """``--db "$UNSET"`` and ``Ledger.open("")`` name no ledger; they must not fall through to
    LEASEHOLD_DB, leasehold.toml or the per-user default."""
    result = run(base_env, tmp_path, "--db", "", "status", "X")
    assert result.returncode == 78 and "empty" in one_line(result)
    with pytest.raises(ConfigError, match="empty"):
        Ledger.open("")
    assert not (Path(base_env["XDG_DATA_HOME"]) / "leasehold").exists()


# -- git worktrees ----------------------------------------------------------------------------
@needs_git
def test_worktrees_share_the_main_worktrees_ledger(base_env: dict[str, str], tmp_path: Path) -> None:
    main = tmp_path / "repo"
    main.mkdir()
    git(main, "init", "-q")
    (main / "leasehold.toml").write_text('db = ".leasehold/ledger.db"\n')
    (main / "pkg").mkdir()
    (main / "pkg" / "leasehold.toml").write_text('db = "../.leasehold/ledger.db"\n')
    init = run(base_env, main, "init")
    assert init.returncode == 0, init.stderr
    git(main, "add", "-A")
    git(main, "commit", "-qm", "leasehold")
    linked = tmp_path / "wt"
    git(main, "worktree", "add", "-q", str(linked))
    # no git on the PATH: the worktree is recognised from .git and commondir alone
    env = dict(base_env, PATH=str(tmp_path / "no-bin"))
    who = run(env, linked, "whoami", "--json", "--actor", "a")
    assert who.returncode == 0, who.stderr
    data = json.loads(who.stdout)
    assert data["db"] == str(main / ".leasehold" / "ledger.db")
    assert data["db_shared_worktrees"] == {"worktree": str(linked), "main_worktree": str(main)}
    text = run(env, linked, "whoami", "--actor", "a").stdout
    assert "resolved in the main worktree" in text and "shared by all worktrees" in text
    assert run(env, main, "claim", "T", "--actor", "a", "--session", "s1").returncode == 0
    for folder in (linked, linked / "pkg"):
        taken = run(env, folder, "claim", "T", "--actor", "b", "--session", "s2")
        assert taken.returncode == 1 and "held by a:s1" in taken.stderr
    assert not (linked / ".leasehold").exists()
    # init in the worktree finds the shared ledger in place and changes nothing
    again = run(base_env, linked, "init", "--json")
    assert again.returncode == 0, again.stderr
    assert [s["action"] for s in json.loads(again.stdout)["steps"]] == ["unchanged"] * 4  # ledger, config, gitignore, hooks


def test_linked_worktree_layouts(tmp_path: Path) -> None:
    from leasehold.config import linked_worktree

    main = tmp_path / "main"
    common = main / ".git"
    (common / "worktrees" / "wt").mkdir(parents=True)
    (common / "worktrees" / "wt" / "commondir").write_text("../..\n")
    wt = tmp_path / "wt"
    (wt / "a" / "b").mkdir(parents=True)
    (wt / ".git").write_text(f"gitdir: {common / 'worktrees' / 'wt'}\n")
    assert linked_worktree(str(wt / "a" / "b")) == (str(wt), str(main))
    (wt / ".git").write_text("gitdir: ../main/.git/worktrees/wt\n")  # worktree.useRelativePaths
    assert linked_worktree(str(wt)) == (str(wt), str(main))
    assert linked_worktree(str(main)) is None  # the main worktree itself
    bare = tmp_path / "repo.git"
    (bare / "worktrees" / "x").mkdir(parents=True)
    (bare / "worktrees" / "x" / "commondir").write_text("../..\n")
    (wt / ".git").write_text(f"gitdir: {bare / 'worktrees' / 'x'}\n")
    assert linked_worktree(str(wt)) == (str(wt), str(bare))  # bare: the common dir itself
    sub = tmp_path / "submodule"
    (sub / "gitdir").mkdir(parents=True)  # a submodule's git dir has no commondir
    (sub / ".git").write_text("gitdir: gitdir\n")
    assert linked_worktree(str(sub)) is None
    assert linked_worktree(str(tmp_path / "elsewhere")) is None


def test_a_linked_worktree_without_leasehold_toml_uses_the_main_worktrees(tmp_path: Path) -> None:
    """`leasehold init`, then `git worktree add` before leasehold.toml is committed (or with
    leasehold.toml kept out of git): the worktree has no leasehold.toml of its own. It must
    still use the main worktree's ledger, not the per-user default (two sessions would both be
    granted one task with fence 1)."""
    from leasehold.config import load_settings

    main = tmp_path / "main"
    (main / ".git" / "worktrees" / "wt").mkdir(parents=True)
    (main / ".git" / "worktrees" / "wt" / "commondir").write_text("../..\n")
    (main / "leasehold.toml").write_text('db = ".leasehold/ledger.db"\n')
    wt = tmp_path / "wt"
    (wt / "src" / "pkg").mkdir(parents=True)
    (wt / ".git").write_text(f"gitdir: {main / '.git' / 'worktrees' / 'wt'}\n")
    for folder in (wt, wt / "src" / "pkg"):
        settings = load_settings(environ={}, cwd=str(folder))
        assert settings.db == str(main / ".leasehold" / "ledger.db")
        assert settings.file == str(main / "leasehold.toml")
        assert settings.worktree == (str(wt), str(main))
        assert "shared by all worktrees" in settings.describe_source()
    # the worktree's own leasehold.toml, when it has one, still comes first
    (wt / "leasehold.toml").write_text('db = "/abs/elsewhere.db"\n')
    assert load_settings(environ={}, cwd=str(wt)).db == "/abs/elsewhere.db"


# -- never created silently ---------------------------------------------------------------------
def test_explicit_locations_are_never_created(base_env: dict[str, str], tmp_path: Path) -> None:
    typo = tmp_path / "typo" / "ledgr.db"
    for how in (["--db", str(typo)], ["--db", f"sqlite://{typo}"]):
        result = run(base_env, tmp_path, *how, "check", "X", "--actor", "a", "--session", "s")
        assert result.returncode == 78 and "VERDICT" not in result.stdout
        line = one_line(result)
        assert str(typo) in line and f"leasehold init --db {typo}" in line
    env = dict(base_env, LEASEHOLD_DB=str(typo))
    assert run(env, tmp_path, "status", "X").returncode == 78
    (tmp_path / "leasehold.toml").write_text('db = "state/ledgr.db"\n')
    result = run(base_env, tmp_path, "list")
    assert result.returncode == 78 and str(tmp_path / "leasehold.toml") in one_line(result)
    assert not (tmp_path / "typo").exists() and not (tmp_path / "state").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        Ledger.open(str(typo))
    assert not typo.parent.exists()
    with Ledger.open(str(typo), create=True) as ledger:
        assert ledger.status("X") is None
    assert typo.is_file()


def test_a_leasehold_toml_that_is_a_folder_or_a_dangling_link_is_an_error(
        base_env: dict[str, str], tmp_path: Path) -> None:
    # Sessions below a broken settings file must not drift onto the per-user ledger.
    default = Path(base_env["XDG_DATA_HOME"]) / "leasehold" / "ledger.db"
    (tmp_path / "a" / "leasehold.toml" / "x").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "leasehold.toml").symlink_to(tmp_path / "gone.toml")
    for folder, why in (("a", "Is a directory"), ("b", "which does not exist")):
        sub = tmp_path / folder / "sub"
        sub.mkdir()
        result = run(base_env, sub, "check", "X", "--actor", "a", "--session", "s")
        assert result.returncode == 78 and "VERDICT" not in result.stdout
        line = one_line(result)
        assert str(tmp_path / folder / "leasehold.toml") in line and why in line
    assert not default.exists()


def test_the_per_user_default_is_created_on_first_use(base_env: dict[str, str], tmp_path: Path) -> None:
    default = Path(base_env["XDG_DATA_HOME"]) / "leasehold" / "ledger.db"
    assert not default.exists()
    assert run(base_env, tmp_path, "status", "X").stdout == "available\n"
    assert default.is_file()


def test_the_gate_denies_with_the_fix_when_the_ledger_is_missing(base_env: dict[str, str],
                                                                 tmp_path: Path) -> None:
    (tmp_path / "leasehold.toml").write_text('db = ".leasehold/ledgr.db"\n')
    payload = {"session_id": "s1", "hook_event_name": "PreToolUse", "tool_name": "Agent",
               "cwd": str(tmp_path), "tool_input": {"prompt": "work on 99927", "description": "x"}}
    proc = run(base_env, tmp_path, "hook", "pre-tool-use", input=json.dumps(payload))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny"
    reason = out["permissionDecisionReason"]
    assert str(tmp_path / ".leasehold" / "ledgr.db") in reason and "leasehold init" in reason
    assert "retrying will not help" in reason and "LEASEHOLD_ENFORCE=0" in reason
    assert not (tmp_path / ".leasehold").exists()


def test_the_gate_calls_a_malformed_leasehold_toml_permanent(base_env: dict[str, str],
                                                            tmp_path: Path) -> None:
    """A typo in leasehold.toml will not go away by retrying: the denial must not say so."""
    (tmp_path / "leasehold.toml").write_text('db = ".leasehold/ledger.db"\ndb_typo = 1\n')
    payload = {"session_id": "s1", "hook_event_name": "PreToolUse", "tool_name": "Agent",
               "cwd": str(tmp_path), "tool_input": {"prompt": "work on 99927", "description": "x"}}
    proc = run(base_env, tmp_path, "hook", "pre-tool-use", input=json.dumps(payload))
    out = json.loads(proc.stdout)["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny"
    reason = out["permissionDecisionReason"]
    assert "db_typo" in reason and "retrying will not help" in reason and "Retry" not in reason


# -- leasehold init ---------------------------------------------------------------------------
@needs_git
def test_init_in_a_repository_is_idempotent(base_env: dict[str, str], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text("*.pyc")  # no final newline
    first = run(base_env, repo / "src", "init", "--json")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["created"] is True and data["db"] == str(repo / ".leasehold" / "ledger.db")
    assert [(s["step"], s["action"]) for s in data["steps"]] == [
        ("ledger", "created"), ("config", "created"), ("gitignore", "updated"), ("hooks", "created")]
    import tomllib

    assert tomllib.loads((repo / "leasehold.toml").read_text()) == {"db": ".leasehold/ledger.db"}
    assert (repo / ".gitignore").read_text().splitlines()[0] == "*.pyc"
    ignored = subprocess.run([GIT or "git", "check-ignore", ".leasehold/ledger.db",
                              ".leasehold/ledger.db-wal"], cwd=repo, capture_output=True, text=True)
    assert ignored.stdout.split() == [".leasehold/ledger.db", ".leasehold/ledger.db-wal"]
    before = snapshot(repo / ".leasehold") | {"toml": (repo / "leasehold.toml").read_text(),
                                              "ignore": (repo / ".gitignore").read_text()}
    again = run(base_env, repo, "init", "--json")
    assert again.returncode == 0, again.stderr
    assert [s["action"] for s in json.loads(again.stdout)["steps"]] == ["unchanged"] * 4  # ledger, config, gitignore, hooks
    assert before == snapshot(repo / ".leasehold") | {
        "toml": (repo / "leasehold.toml").read_text(), "ignore": (repo / ".gitignore").read_text()}
    assert run(base_env, repo / "src", "status", "X").stdout == "available\n"
    # another ledger than the one leasehold.toml names: refused, nothing written
    other = run(base_env, repo, "init", "--db", "elsewhere.db")
    assert other.returncode == 2 and "already names another ledger" in one_line(other)
    assert not (repo / "elsewhere.db").exists()


@needs_git
def test_init_completes_an_existing_toml_and_takes_db(base_env: dict[str, str], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "leasehold.toml").write_text('# ours\ndefault_ttl = "30m"')
    result = run(base_env, repo, "init", "--db", "var/team.db")
    assert result.returncode == 0, result.stderr
    import tomllib

    text = (repo / "leasehold.toml").read_text()
    assert text.startswith('# ours\ndefault_ttl = "30m"\n')
    assert tomllib.loads(text) == {"default_ttl": "30m", "db": "var/team.db"}
    assert (repo / "var" / "team.db").is_file()
    assert "/var/" in (repo / ".gitignore").read_text()
    # a password is never written into leasehold.toml (nor printed)
    (repo / "leasehold.toml").write_text("")
    secret = run(base_env, repo, "init", "--db", "postgresql://u:s3cr3t@127.0.0.1/x")
    assert secret.returncode == 2 and "s3cr3t" not in secret.stderr + secret.stdout
    assert (repo / "leasehold.toml").read_text() == ""


@pytest.mark.parametrize("content", [b"", b'default_ttl = "30m"\n'])
def test_init_never_makes_the_settings_file_the_ledger(base_env: dict[str, str], tmp_path: Path,
                                                       content: bytes) -> None:
    """``init --db leasehold.toml`` used to turn the settings file into a SQLite database and
    then fail reading it back as text (exit 70): it is exit 2 and the file is left as it was."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "leasehold.toml").write_bytes(content)
    for name in ("leasehold.toml", "./leasehold.toml", "leasehold.toml/ledger.db"):
        result = run(base_env, repo, "init", "--db", name, "--no-hooks", "--git", "--separate")
        assert result.returncode == 2 and "cannot be the settings file" in result.stderr, result.stderr
        assert (repo / "leasehold.toml").read_bytes() == content


@pytest.mark.parametrize("existing", [None, b'default_ttl = "30m"\n', b""])
def test_init_never_makes_the_settings_file_the_ledger_through_a_link(
        base_env: dict[str, str], tmp_path: Path, existing: bytes | None) -> None:
    """A --db path that reaches leasehold.toml through a symbolic link (a link to the file, even
    dangling, a linked folder, or a hard link) is exit 2 too, with nothing written: SQLite follows the link,
    so it used to create (or overwrite an empty) leasehold.toml as a database, then exit 78."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    if existing is not None:
        (repo / "leasehold.toml").write_bytes(existing)
    (repo / "link.db").symlink_to("leasehold.toml")
    (repo / "sub").mkdir()
    (repo / "sub" / "up.db").symlink_to("../leasehold.toml")
    (repo / "here").symlink_to(".")
    for name in ("link.db", "sub/up.db", "here/leasehold.toml", str(repo / "here" / "leasehold.toml")):
        result = run(base_env, repo, "init", "--db", name, "--no-hooks", "--git", "--separate")
        assert result.returncode == 2 and "cannot be the settings file" in result.stderr, (name, result)
        if existing is None:
            assert not os.path.lexists(repo / "leasehold.toml"), name
        else:
            assert (repo / "leasehold.toml").read_bytes() == existing, name
        expected = [".git", "here", "link.db", "sub"] + ([] if existing is None else ["leasehold.toml"])
        assert sorted(p.name for p in repo.iterdir()) == sorted(expected), name
        assert [p.name for p in (repo / "sub").iterdir()] == ["up.db"], name
    if existing is not None:  # a hard link: the same file under another name
        os.link(repo / "leasehold.toml", repo / "hard.db")
        result = run(base_env, repo, "init", "--db", "hard.db", "--no-hooks", "--git", "--separate")
        assert result.returncode == 2 and "cannot be the settings file" in result.stderr, result
        assert (repo / "leasehold.toml").read_bytes() == existing


def test_init_outside_a_repository_creates_only_the_ledger(base_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    target = tmp_path / "fleet" / "ledger.db"
    result = run(base_env, tmp_path, "init", "--db", str(target))
    assert result.returncode == 0 and "created the ledger" in result.stdout
    assert target.is_file() and not (tmp_path / "leasehold.toml").exists()
    assert "exists and is up to date" in run(base_env, tmp_path, "init", "--db", str(target)).stdout


# -- files that are not ledgers: refused, untouched -----------------------------------------------
def _other_app_db(path: Path, wal: bool) -> None:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ann')")
    conn.commit()
    conn.close()


def _user_version_99(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()


def _rails_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE schema_migrations (version VARCHAR NOT NULL PRIMARY KEY)')
    conn.commit()
    conn.close()


def _same_named_migrations_table(path: Path) -> None:
    """Another tool's bookkeeping table with leasehold's very columns, still empty."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "applied_at REAL NOT NULL)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("make", [
    pytest.param(_same_named_migrations_table, id="empty-schema_migrations-same-columns"),
    pytest.param(lambda p: _other_app_db(p, wal=False), id="another-app"),
    pytest.param(lambda p: _other_app_db(p, wal=True), id="another-app-wal"),
    pytest.param(_user_version_99, id="user_version-99"),
    pytest.param(_rails_db, id="rails-schema_migrations"),
    pytest.param(lambda p: p.write_bytes(os.urandom(8192)), id="random-bytes"),
    pytest.param(lambda p: p.write_bytes(b""), id="empty-file"),
])
def test_a_file_that_is_not_a_ledger_is_refused_and_left_untouched(
        make, base_env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    target = folder / "app.db"
    make(target)
    before = snapshot(folder)
    env = dict(base_env, LEASEHOLD_DB=str(target))
    commands = [["status", "T"], ["claim", "T", "--actor", "a", "--session", "s"], ["migrate"],
                ["check", "T", "--actor", "a", "--session", "s"]]
    if target.stat().st_size:  # init makes a ledger of an empty file, nothing else
        commands.append(["init"])
    for command in commands:
        result = run(env, tmp_path, *command)
        assert result.returncode == 78, (command, result.stderr)
        assert str(target) in one_line(result)
        assert snapshot(folder) == before, command
    with pytest.raises(ConfigError):
        Ledger.open(str(target), create=True) if target.stat().st_size else Ledger.open(str(target))
    assert snapshot(folder) == before


def _crash_leaving_wal(target: Path, script: str) -> None:
    """Run ``script`` (Python, ``conn`` a sqlite3 connection to ``target`` with automatic
    checkpoints off) in a process that exits without closing: its -wal stays as a crash
    leaves it."""
    subprocess.run([str(Path(LEASEHOLD).parent / "python"), "-c", f"""if 1:
        import os, sqlite3
        conn = sqlite3.connect({str(target)!r}, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        {script}
        os._exit(0)
        """], check=True, timeout=60)


@pytest.mark.parametrize("app_id", [0, 0x12345678], ids=["unmarked", "another-app"])
def test_another_apps_pending_wal_is_not_checkpointed(base_env: dict[str, str], tmp_path: Path,
                                                       app_id: int) -> None:
    """Another application's WAL-mode database whose -wal still holds its last commits (it
    crashed, or it is not running): a read-write open closed as the last connection would
    checkpoint the -wal into the file and delete it. The file is judged from its bytes (the
    header's application_id, the last page 1 in the -wal; unmarked: a private copy) and both
    files are left byte-identical."""
    folder = tmp_path / "data"
    folder.mkdir()
    target = folder / "app.db"
    _crash_leaving_wal(target, f"""
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA application_id = {app_id}")
        conn.execute("INSERT INTO users DEFAULT VALUES")""")
    kept = {name: (folder / name).read_bytes() for name in os.listdir(folder)}
    assert kept["app.db-wal"]  # the commits are pending in the -wal
    for command in (["status", "T"], ["migrate"], ["init"], ["serve", "--port", "0"]):
        result = run(dict(base_env, LEASEHOLD_DB=str(target)), tmp_path, *command)
        assert result.returncode == 78 and str(target) in one_line(result), (command, result.stderr)
        assert "not a leasehold ledger" in one_line(result)
        assert {name: (folder / name).read_bytes() for name in kept} == kept, command
    assert sorted(os.listdir(folder)) == sorted(kept)  # nothing made, nothing deleted
    with pytest.raises(ConfigError, match="another application" if app_id else "tables users"):
        Ledger.open(str(target), create=True)
    assert {name: (folder / name).read_bytes() for name in kept} == kept


def test_a_ledger_marked_only_in_its_wal_or_unmarked_with_a_pending_wal_opens(
        base_env: dict[str, str], tmp_path: Path) -> None:
    """A ledger whose mark is still in the -wal (its header not yet checkpointed), and one made
    before the mark with commits pending in its -wal, are ledgers: they open, readers and
    writers work, and the second is marked."""
    from leasehold.store.sqlite import APPLICATION_ID, known_migrations
    from leasehold.store.sqlite_files import header_application_id

    for marked in (True, False):
        target = tmp_path / f"ledger-{marked}.db"
        _ledger(target)
        with Ledger.open(str(target)) as ledger:
            ledger.claim("T", "a:s", ttl=600)
        _crash_leaving_wal(target, f"""
        conn.execute("PRAGMA application_id = 0")
        conn.execute("PRAGMA user_version = {len(known_migrations())}")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA application_id = {APPLICATION_ID if marked else 0}")
        conn.execute("UPDATE tasks SET title = 'pending' WHERE id = 'T'")""")
        assert header_application_id(target.read_bytes()[:100]) == 0
        assert Path(f"{target}-wal").stat().st_size > 0
        env = dict(base_env, LEASEHOLD_DB=str(target))
        shown = run(env, tmp_path, "show", "T", "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["title"] == "pending"  # the -wal's commit is read
        assert run(env, tmp_path, "claim", "U", "--actor", "b", "--session", "s").returncode == 0
        with Ledger.open(str(target)) as ledger:
            assert ledger.show("U").lease_holder == "b:s"
        assert header_application_id(target.read_bytes()[:100]) == APPLICATION_ID



def test_a_file_put_where_a_ledger_was_beside_its_live_wal_is_refused(
        base_env: dict[str, str], tmp_path: Path) -> None:
    """A ledger moved away (or replaced) while in use leaves its -wal, which carries the
    ledger's mark, under the old name. Another application's database put at that path is not
    a ledger for that: SQLite would read the ledger's -wal as the file's own and checkpoint
    ledger pages into it. Refused with 78; both files left byte-identical."""
    from leasehold.store.sqlite_files import wal_application_id

    ledger = tmp_path / "ledger.db"
    _ledger(ledger)
    # a ledger written by a process still running (here: one that ends without closing): the
    # file grew, so its -wal holds page 1 (with the mark) and the new pages
    subprocess.run([str(Path(LEASEHOLD).parent / "python"), "-c", f"""if 1:
        import os
        from leasehold import Ledger
        ledger = Ledger.open({str(ledger)!r})
        for i in range(300):
            ledger.add(f"W{{i}}", title="in the wal " * 20)
        os._exit(0)
        """], check=True, timeout=60)
    assert wal_application_id(f"{ledger}-wal") == 0x4C484C44
    folder = tmp_path / "data"
    folder.mkdir()
    target = folder / "app.db"
    _crash_leaving_wal(target, """
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")""")
    os.unlink(f"{target}-wal")
    shutil.copyfile(f"{ledger}-wal", f"{target}-wal")
    kept = {name: (folder / name).read_bytes() for name in os.listdir(folder) if name != "app.db-shm"}
    for command in (["claim", "T", "--actor", "a", "--session", "s"], ["status", "T"]):
        result = run(dict(base_env, LEASEHOLD_DB=str(target)), tmp_path, *command)
        assert {name: (folder / name).read_bytes() for name in kept} == kept, command
        assert result.returncode == 78 and str(target) in one_line(result), result.stderr
        assert "not a leasehold ledger (a SQLite database with tables users)" in result.stderr
    with Ledger.open(str(ledger)) as real:  # the ledger itself, with its -wal, still opens
        assert real.show("W299").title.startswith("in the wal")

def test_a_second_open_in_a_process_keeps_the_first_connections_locks(tmp_path: Path) -> None:
    """A process with the ledger open opens it again (a server's connection per thread): the
    file must not be probed again, since closing any descriptor of it drops the process's
    POSIX locks. Without them another process closing its connection believes itself the last:
    it checkpoints and deletes the -wal, and the first process's later commits are lost to
    every new reader."""
    target = tmp_path / "l.db"
    _ledger(target)
    first = Ledger.open(str(target))
    try:
        first.add("warm")
        second = Ledger.open(str(target))  # same process, first still open
        second.close()
        subprocess.run([str(Path(LEASEHOLD).parent / "python"), "-c", f"""if 1:
            import sqlite3
            conn = sqlite3.connect({str(target)!r})
            conn.execute("SELECT count(*) FROM tasks").fetchone()
            conn.close()
            """], check=True, timeout=60)
        assert Path(f"{target}-wal").exists()  # the other process knew it was not the last
        first.claim("T", "a:s", ttl=600)
        reader = subprocess.run([LEASEHOLD, "--db", str(target), "status", "T"],
                                capture_output=True, text=True, timeout=60)
        assert reader.stdout.startswith("held by a:s"), reader.stdout + reader.stderr
    finally:
        first.close()


def test_the_wal_reader_finds_the_last_committed_page_one(tmp_path: Path) -> None:
    from leasehold.store.sqlite_files import wal_application_id

    target = tmp_path / "x.db"
    _crash_leaving_wal(target, """
        conn.execute("CREATE TABLE t (x)")
        conn.execute("PRAGMA application_id = 7")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("PRAGMA application_id = 9")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (2)")""")
    assert wal_application_id(f"{target}-wal") == 9
    assert wal_application_id(str(tmp_path / "missing-wal")) is None
    (tmp_path / "junk-wal").write_bytes(b"\0" * 64)
    assert wal_application_id(str(tmp_path / "junk-wal")) is None


def test_an_empty_file_becomes_a_ledger_only_through_init(base_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    target = tmp_path / "l.db"
    target.write_bytes(b"")
    env = dict(base_env, LEASEHOLD_DB=str(target))
    assert "empty file" in one_line(run(env, tmp_path, "status", "T"))
    assert run(env, tmp_path, "init").returncode == 0
    assert run(env, tmp_path, "status", "T").stdout == "available\n"


def _ledger(path: Path) -> None:
    Ledger.open(str(path), create=True).close()


@pytest.mark.parametrize("marked", [False, True], ids=["made-by-earlier", "opened-by-earlier"])
def test_ledgers_of_earlier_versions_open_and_are_marked(marked: bool, tmp_path: Path) -> None:
    from leasehold.store.sqlite import APPLICATION_ID, known_migrations, schema_mask

    path = tmp_path / "old.db"
    _ledger(path)
    with Ledger.open(str(path)) as ledger:
        ledger.claim("T", "a:s", ttl=600)
    conn = sqlite3.connect(path)
    # as earlier versions leave it: user_version counting the migrations, and no application_id
    # unless the ledger was made by this version and merely opened by an earlier one
    if not marked:
        conn.execute("PRAGMA application_id = 0")
    conn.execute(f"PRAGMA user_version = {len(known_migrations())}")
    conn.commit()
    conn.close()
    with Ledger.open(str(path)) as ledger:
        assert ledger.status("T").lease_holder == "a:s"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema_mask(known_migrations())
    conn.close()


@pytest.mark.parametrize("how", ["newer-leasehold", "unknown-version-bit", "legacy-unknown-migration",
                                 "legacy-count-beyond"])
def test_a_newer_schema_is_refused_without_resetting_anything(how: str, base_env: dict[str, str],
                                                              tmp_path: Path) -> None:
    from leasehold.store.sqlite import known_migrations

    path = tmp_path / "l.db"
    _ledger(path)
    conn = sqlite3.connect(path)
    if how in ("newer-leasehold", "legacy-unknown-migration"):
        # as a later version would leave it: its migration recorded (and, marked, its bit set)
        conn.execute("INSERT INTO schema_migrations VALUES (29, 'from_the_future', 0)")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if how == "newer-leasehold":
            conn.execute(f"PRAGMA user_version = {version | 1 << 29}")
        else:
            conn.execute("PRAGMA application_id = 0")
            conn.execute(f"PRAGMA user_version = {len(known_migrations()) + 1}")
    elif how == "unknown-version-bit":
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA user_version = {version | 1 << 29}")
    else:
        conn.execute("PRAGMA application_id = 0")
        conn.execute(f"PRAGMA user_version = {len(known_migrations()) + 94}")
    conn.commit()
    conn.close()
    before = snapshot(tmp_path)
    for command in (["status", "T"], ["migrate"], ["init"]):
        result = run(dict(base_env, LEASEHOLD_DB=str(path)), tmp_path, *command)
        assert result.returncode == 78, result.stderr
        assert "newer schema" in one_line(result) and "upgrade leasehold" in result.stderr
    assert snapshot(tmp_path) == before


# -- permanent conditions are 78, busy stays 75 ---------------------------------------------------
def test_permanent_sqlite_conditions_exit_78(base_env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    corrupt = tmp_path / "corrupt.db"
    _ledger(corrupt)
    with Ledger.open(str(corrupt)) as ledger:
        for i in range(200):
            ledger.add(f"task-{i}", title="x" * 200)
    conn = sqlite3.connect(corrupt)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(corrupt.read_bytes())
    data[4096 * 2:4096 * 4] = b"\xff" * (4096 * 2)  # wreck b-tree pages behind the header
    corrupt.write_bytes(bytes(data))
    for target, words in ((folder, "is a directory"), (corrupt, "")):
        result = run(dict(base_env, LEASEHOLD_DB=str(target)), tmp_path, "list")
        assert result.returncode == 78, result.stderr
        assert words in one_line(result) and str(target) in result.stderr
    if os.geteuid() != 0:  # root reads and writes whatever the permissions say
        locked = tmp_path / "locked.db"
        _ledger(locked)
        locked.chmod(0o000)
        try:
            result = run(dict(base_env, LEASEHOLD_DB=str(locked)), tmp_path, "status", "T")
            assert result.returncode == 78 and "permission denied" in one_line(result)
        finally:
            locked.chmod(0o600)


# -- PostgreSQL -----------------------------------------------------------------------------------
def _pg_base() -> str:
    from tests import pg

    pg.require_pg()
    return pg.BASE_URL


def test_postgres_configuration_errors_exit_78(base_env: dict[str, str], tmp_path: Path,
                                               pg_schema_url: str) -> None:
    from tests import pg

    base = _pg_base()
    server = base.rsplit("/", 1)[0]
    cases = {
        "no database name": server + "/",
        "no database name, no slash": server,
        "unknown database": server + "/leasehold_no_such_db",
        "unknown URL parameter": base + ("&" if "?" in base else "?") + "no_such_param=1",
        "search_path names no schema": pg.url_for_schema("lh_no_such_schema"),
        "no ledger in the schema": pg_schema_url,
    }
    for what, url in cases.items():
        result = run(dict(base_env, LEASEHOLD_DB=url), tmp_path, "status", "T")
        assert result.returncode == 78, (what, result.stderr)
        one_line(result)
    # nothing was created in the empty schema; init creates the ledger there
    schema = pg_schema_url.rsplit("%3D", 1)[-1]
    with pg.admin() as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                            (schema,)).fetchone()[0] == 0
    assert run(base_env, tmp_path, "init", "--db", pg_schema_url).returncode == 0
    assert run(dict(base_env, LEASEHOLD_DB=pg_schema_url), tmp_path, "status", "T").returncode == 0


def test_postgres_newer_or_foreign_schema_is_refused(base_env: dict[str, str], tmp_path: Path,
                                                     pg_url: str) -> None:
    from tests import pg

    other = pg.create_schema()
    try:
        with pg.admin() as conn:
            schema = pg_url.rsplit("%3D", 1)[-1]
            conn.execute(f'INSERT INTO "{schema}".schema_migrations VALUES (29, \'from_the_future\', 0)')
            conn.execute(f'CREATE TABLE "{other}".schema_migrations (version varchar PRIMARY KEY)')
        for command in (["status", "T"], ["migrate"]):
            newer = run(dict(base_env, LEASEHOLD_DB=pg_url), tmp_path, *command)
            assert newer.returncode == 78 and "newer schema" in one_line(newer)
        rails = run(base_env, tmp_path, "init", "--db", pg.url_for_schema(other))
        assert rails.returncode == 78 and "not a leasehold ledger" in one_line(rails)
        with pg.admin() as conn:
            assert conn.execute("SELECT count(*) FROM information_schema.tables "
                                "WHERE table_schema = %s", (other,)).fetchone()[0] == 1
    finally:
        pg.drop_schema(other)


# -- passwords are never printed ----------------------------------------------------------------
def test_redaction_helpers() -> None:
    from leasehold.urls import redact, scrub

    assert redact("postgresql://u:p%40ss@h:5432/db?x=1") == "postgresql://u:***@h:5432/db?x=1"
    assert redact("postgresql://u@h/db?password=pw&sslmode=require") == \
        "postgresql://u@h/db?password=***&sslmode=require"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("/tmp/a:b@c.db") == "/tmp/a:b@c.db"
    assert scrub("failed for p@ss and p%40ss", "postgresql://u:p%40ss@h/db") == "failed for *** and ***"
    assert scrub("database x does not exist: u:x@h", "postgresql://u:x@h/db") == \
        "database x does not exist: u:***@h"


def test_passwords_never_printed(base_env: dict[str, str], tmp_path: Path) -> None:
    secret = "s3cr3t-pw"
    urls = [
        f"postgresql://postgres:{secret}@127.0.0.1:1/test?connect_timeout=2",  # unreachable: 75
        f"postgresql://postgres:{secret}@127.0.0.1:1/",                        # no database: 78
        f"postgresql://postgres@127.0.0.1:1/test?password={secret}&connect_timeout=2",
        f"postgresql://postgres:{secret}@127.0.0.1:1/test?bogus_param=1",      # bad param: 78
        f"mysql://root:{secret}@127.0.0.1/test",                               # bad scheme: 78
    ]
    commands = (["whoami"], ["whoami", "--json"], ["status", "T", "--json"],
                ["demo", "--workers", "2", "--tasks", "1"], ["init"])
    for i, url in enumerate(urls):
        # every command with two of the URLs, every URL with two commands, through both
        # --db and LEASEHOLD_DB
        for j in (i, i + 1):
            command = commands[j % len(commands)]
            if j % 2:
                env, extra = dict(base_env, LEASEHOLD_DB=url), []
            else:
                env, extra = base_env, ["--db", url]
            result = run(env, tmp_path, *extra, *command)
            assert secret not in result.stdout + result.stderr, (url, command)
            assert "Traceback" not in result.stderr
    who = run(dict(base_env, LEASEHOLD_DB=urls[0]), tmp_path, "whoami")
    assert "postgresql://postgres:***@127.0.0.1:1/test" in who.stdout


@pytest.mark.parametrize("password", ["ab/cdQ7zz91", "p@sQ7zz91", "Q7zz91#x", "Q7zz91?x"])
def test_a_password_with_unencoded_reserved_characters_is_never_printed(
        password: str, base_env: dict[str, str], tmp_path: Path) -> None:
    """Generated passwords hold ``/ @ # ?``; people paste them into URLs without
    percent-encoding. The URL is then malformed, but the password must still not be shown."""
    from leasehold.urls import redact, scrub

    url = f"postgresql://root:{password}@127.0.0.1:1/test?connect_timeout=2"
    assert redact(url) == "postgresql://root:***@127.0.0.1:1/test?connect_timeout=2"
    assert "Q7zz91" not in scrub(f"failed to resolve host '{password[2:]}@127.0.0.1'", url)
    for args in (["--db", url, "whoami"], ["--db", url, "status", "T", "--json"]):
        result = run(base_env, tmp_path, *args)
        assert "Q7zz91" not in result.stdout + result.stderr, args


def test_passwords_never_printed_by_a_real_server(base_env: dict[str, str], tmp_path: Path) -> None:
    base = _pg_base()
    scheme, rest = base.split("://", 1)
    user_host = rest.split("@", 1)[-1]
    user = rest.split("@", 1)[0].split(":")[0] if "@" in rest else "postgres"
    server = f"{scheme}://{user}:s3cr3t-pw@{user_host.rsplit('/', 1)[0]}"
    for url in (server + "/leasehold_no_such_db", server + "/"):
        result = run(dict(base_env, LEASEHOLD_DB=url), tmp_path, "status", "T", "--json")
        assert result.returncode == 78
        assert "s3cr3t-pw" not in result.stdout + result.stderr


def test_cli_fixture_ledgers_exist(cli: CLI) -> None:
    """The shared fixtures create their ledgers explicitly (so the CLI finds one)."""
    assert cli("status", "T").returncode == 0


def test_postgres_permission_denied_exits_78(base_env: dict[str, str], tmp_path: Path,
                                             pg_url: str) -> None:
    import uuid

    from tests import pg

    role = "lh_noperm_" + uuid.uuid4().hex[:8]
    schema = pg_url.rsplit("%3D", 1)[-1]
    with pg.admin() as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    try:
        scheme, rest = pg_url.split("://", 1)
        url = f"{scheme}://{role}@{rest.split('@', 1)[-1]}"
        result = run(dict(base_env, LEASEHOLD_DB=url), tmp_path, "status", "T")
        assert result.returncode == 78 and "permission denied" in one_line(result)
    finally:
        with pg.admin() as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def test_an_empty_db_flag_on_a_hook_denies_instead_of_using_the_configured_ledger(
        base_env: dict[str, str], tmp_path: Path) -> None:
    """``leasehold hook --db "$UNSET" pre-tool-use``: the hook must not fall through to the
    ledger of leasehold.toml (where the task is free); the gate denies, fail closed, naming
    the empty --db as permanent."""
    configured = tmp_path / "configured.db"
    Ledger.open(str(configured), create=True).close()
    (tmp_path / "leasehold.toml").write_text('db = "configured.db"\n')
    payload = {"session_id": "s1", "hook_event_name": "PreToolUse", "tool_name": "Agent",
               "cwd": str(tmp_path), "tool_input": {"prompt": "work on 99927", "description": "x"}}
    for args in (("hook", "--db", "", "pre-tool-use"), ("--db", " ", "hook", "pre-tool-use")):
        proc = run(base_env, tmp_path, *args, input=json.dumps(payload))
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)["hookSpecificOutput"]
        assert out["permissionDecision"] == "deny"
        assert "empty" in out["permissionDecisionReason"]
        assert "retrying will not help" in out["permissionDecisionReason"]
    proc = run(base_env, tmp_path, "hook", "--db", "", "session-start",
               input=json.dumps(dict(payload, hook_event_name="SessionStart")))
    assert proc.returncode == 0 and "empty" in proc.stdout and "will deny" in proc.stdout


@needs_git
def test_the_git_guard_takes_db_and_refuses_an_empty_one(base_env: dict[str, str],
                                                         tmp_path: Path) -> None:
    """``leasehold guard --db URL`` checks that ledger (it used to ignore --db and check
    leasehold.toml's); ``--db ""`` is a configuration error, and the commit is refused."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    Ledger.open(str(repo / "configured.db"), create=True).close()
    (repo / "leasehold.toml").write_text('db = "configured.db"\n')
    (repo / "a.txt").write_text("x")
    git(repo, "add", "a.txt")
    empty = run(base_env, repo, "guard", "pre-commit", "--db", "")
    assert empty.returncode == 1 and "empty" in empty.stderr, empty.stderr
    missing = run(base_env, repo, "guard", "pre-commit", "--db", str(tmp_path / "missing.db"))
    assert missing.returncode == 1 and "missing.db" in missing.stderr, missing.stderr
    assert run(base_env, repo, "guard", "pre-commit").returncode == 0


@needs_git
def test_a_separate_git_dir_shares_one_ledger_or_says_how(base_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    """``git init --separate-git-dir=G main`` then a linked worktree: git records the main
    checkout nowhere but in ``core.worktree``. Without it the worktree cannot be mapped to the
    main checkout, so a relative db is exit 78 naming the fix (never a second ledger under G);
    with it both resolve the same ledger."""
    main, gdir, linked = tmp_path / "main", tmp_path / "G", tmp_path / "wt"
    subprocess.run([GIT or "git", "init", "-q", f"--separate-git-dir={gdir}", str(main)],
                   check=True, capture_output=True)
    assert run(base_env, main, "init", "--no-hooks").returncode == 0
    git(main, "add", "-A")
    git(main, "commit", "-qm", "leasehold")
    git(main, "worktree", "add", "-q", str(linked))
    ledger = str(main / ".leasehold" / "ledger.db")
    env = dict(base_env, PATH=str(tmp_path / "no-bin"))  # resolved without running git
    assert json.loads(run(env, main, "whoami", "--json", "--actor", "a").stdout)["db"] == ledger
    refused = run(env, linked, "status", "T")
    assert refused.returncode == 78 and "core.worktree" in one_line(refused)
    assert not (gdir / ".leasehold").exists()
    # 78 is right: git itself does not know the main checkout (its worktree list names the git
    # dir), and the linked worktree's own folder is not it either
    listed = git(linked, "worktree", "list", "--porcelain").splitlines()
    assert listed[0] == f"worktree {gdir}"
    git(main, "config", "core.worktree", str(main))
    for folder in (main, linked):
        who = run(env, folder, "whoami", "--json", "--actor", "a")
        assert who.returncode == 0, who.stderr
        assert json.loads(who.stdout)["db"] == ledger
    assert run(env, main, "claim", "T", "--actor", "a", "--session", "s1").returncode == 0
    taken = run(env, linked, "claim", "T", "--actor", "b", "--session", "s2")
    assert taken.returncode == 1 and "held by a:s1" in taken.stderr
    assert git(linked, "rev-parse", "--show-toplevel").strip() == str(linked)  # git unaffected


@needs_git
def test_a_separate_git_dir_named_dot_git_honours_core_worktree(base_env: dict[str, str],
                                                                tmp_path: Path) -> None:
    """``git init --separate-git-dir=STORE/.git main``: the common dir is named ``.git`` but its
    folder is not the checkout. With ``core.worktree`` set (the fix leasehold names), a linked
    worktree resolves the main checkout's ledger, not one under STORE (two ledgers: two
    winners)."""
    main, store, linked = tmp_path / "main", tmp_path / "store", tmp_path / "wt"
    store.mkdir()
    subprocess.run([GIT or "git", "init", "-q", f"--separate-git-dir={store / '.git'}", str(main)],
                   check=True, capture_output=True)
    assert run(base_env, main, "init", "--no-hooks").returncode == 0
    git(main, "add", "-A")
    git(main, "commit", "-qm", "leasehold")
    git(main, "worktree", "add", "-q", str(linked))
    git(main, "config", "core.worktree", str(main))
    ledger = str(main / ".leasehold" / "ledger.db")
    env = dict(base_env, PATH=str(tmp_path / "no-bin"))  # resolved without running git
    for folder in (main, linked):
        who = run(env, folder, "whoami", "--json", "--actor", "a")
        assert who.returncode == 0, who.stderr
        assert json.loads(who.stdout)["db"] == ledger, folder
    assert run(env, main, "claim", "T", "--actor", "a", "--session", "s1").returncode == 0
    taken = run(env, linked, "claim", "T", "--actor", "b", "--session", "s2")
    assert taken.returncode == 1 and "held by a:s1" in taken.stderr
    assert not (store / ".leasehold").exists()


def test_the_main_worktree_of_a_common_dir_not_named_dot_git(tmp_path: Path) -> None:
    from leasehold.config import linked_worktree

    common = tmp_path / "store"
    (common / "worktrees" / "wt").mkdir(parents=True)
    (common / "worktrees" / "wt" / "commondir").write_text("../..\n")
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {common / 'worktrees' / 'wt'}\n")
    (common / "config").write_text("[core]\n\tbare = true\n")
    assert linked_worktree(str(wt)) == (str(wt), str(common))  # bare: the common dir itself
    (common / "config").write_text('[Core]\n\tBare = false\n\tworktree = "../checkout" # c\n')
    assert linked_worktree(str(wt)) == (str(wt), str(tmp_path / "checkout"))
    (common / "config").write_text("[core]\n\tbare = false\n[x]\n\tworktree = /no\n")
    with pytest.raises(ConfigError, match="core.worktree"):
        linked_worktree(str(wt))
    (common / "config.worktree").write_text(f"[core]\n\tworktree = {tmp_path / 'm'}\n")
    assert linked_worktree(str(wt)) == (str(wt), str(tmp_path / "m"))


@needs_git
def test_init_in_a_nested_repository_joins_the_ledger_that_governs_it(
        base_env: dict[str, str], tmp_path: Path) -> None:
    """A repository inside another (a submodule, a vendored checkout) whose leasehold.toml is
    above it: every command there already uses that ledger, so init must not split the fleet
    with a second ledger and a second leasehold.toml; it says which file governs, and
    ``--separate`` asks for a ledger of its own."""
    outer = tmp_path / "outer"
    outer.mkdir()
    git(outer, "init", "-q")
    assert run(base_env, outer, "init", "--no-hooks").returncode == 0
    inner = outer / "vendor" / "lib"
    inner.mkdir(parents=True)
    git(inner, "init", "-q")
    result = run(base_env, inner, "init", "--no-hooks", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    shared = str(outer / ".leasehold" / "ledger.db")
    assert data["db"] == shared and data["repository"] == str(inner)
    assert data["config"] == str(outer / "leasehold.toml")
    steps = {s["step"]: s for s in data["steps"]}
    assert steps["config"]["action"] == "unchanged" and "--separate" in steps["config"]["detail"]
    assert not (inner / "leasehold.toml").exists() and not (inner / ".leasehold").exists()
    text = run(base_env, inner, "init", "--no-hooks")
    assert "governs" in text.stdout and str(outer / "leasehold.toml") in text.stdout
    assert json.loads(run(base_env, inner, "whoami", "--json", "--actor", "a").stdout)["db"] == shared
    own = run(base_env, inner, "init", "--no-hooks", "--separate", "--json")
    assert own.returncode == 0, own.stderr
    assert json.loads(own.stdout)["db"] == str(inner / ".leasehold" / "ledger.db")
    assert (inner / "leasehold.toml").is_file()
    assert json.loads(run(base_env, inner, "whoami", "--json", "--actor", "a").stdout)["db"] == \
        str(inner / ".leasehold" / "ledger.db")


@needs_git
def test_init_in_a_linked_worktree_writes_the_main_worktrees_files_and_says_commit(
        base_env: dict[str, str], tmp_path: Path) -> None:
    main, linked = tmp_path / "main", tmp_path / "wt"
    main.mkdir()
    git(main, "init", "-q")
    git(main, "commit", "-q", "--allow-empty", "-m", "start")
    git(main, "worktree", "add", "-q", str(linked))
    result = run(base_env, linked, "init", "--no-hooks", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"db", "created", "applied", "repository", "config",
                         "db_shared_worktrees", "steps"}
    assert data["db"] == str(main / ".leasehold" / "ledger.db")
    assert data["config"] == str(main / "leasehold.toml")
    assert data["db_shared_worktrees"] == {"worktree": str(linked), "main_worktree": str(main)}
    assert (main / "leasehold.toml").is_file() and "/.leasehold/" in (main / ".gitignore").read_text()
    assert not (linked / "leasehold.toml").exists() and not (linked / ".gitignore").exists()
    again = run(base_env, linked, "init", "--no-hooks")
    assert again.returncode == 0 and "commit" not in again.stdout  # nothing new to commit
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q")
    text = run(base_env, fresh, "init", "--no-hooks").stdout
    assert "commit leasehold.toml" in text and "worktrees" in text


def test_a_ledger_replaced_under_an_open_store_is_refused_not_written(tmp_path: Path) -> None:
    """The ledger file replaced (a backup restored with `mv`) while a process (a server) has it
    open: its connection would go on reading and writing the old file, which no other process
    sees (two ledgers: two holders of one task). Its next call is refused with 78, applying
    nothing. (SQLite leaves the old file's -wal beside the new one: replace a ledger only with
    every program using it stopped.)"""
    target = tmp_path / "l.db"
    _ledger(target)
    restored = tmp_path / "restored.db"
    _ledger(restored)
    with Ledger.open(str(target)) as running:
        running.claim("T", "a:s", ttl=600)
        os.replace(restored, target)
        with pytest.raises(ConfigError, match="replaced or removed while this process had it open"):
            running.claim("U", "a:s", ttl=600)
        with pytest.raises(ConfigError, match="replaced"):
            running.status("T")
    with Ledger.open(str(target)) as after:
        assert after.status("U") is None  # the refused claim applied nowhere


@needs_git
def test_init_keeps_a_gitignore_that_is_not_utf8_byte_for_byte(base_env: dict[str, str], tmp_path: Path) -> None:
    """git reads .gitignore as bytes: a Latin-1 comment is fine there, and init adds its entry
    without a crash (was exit 70 after the config was written) and without touching those bytes."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").write_bytes(b"# caf\xe9\n*.o\n")
    first = run(base_env, repo, "init", "--no-hooks")
    assert first.returncode == 0, first.stderr
    assert (repo / ".gitignore").read_bytes().startswith(b"# caf\xe9\n*.o\n# the leasehold ledger")
    again = run(base_env, repo, "init", "--no-hooks", "--json")
    assert again.returncode == 0 and "gitignore" in again.stdout, again.stderr


@needs_git
def test_init_refuses_a_gitignore_that_is_a_symlink_to_dev_zero(base_env: dict[str, str], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").symlink_to("/dev/zero")
    proc = run(base_env, repo, "init", "--no-hooks")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert ".gitignore" in proc.stderr


def test_init_losing_a_race_for_the_settings_file_is_retryable(tmp_path: Path) -> None:
    # Two `leasehold init` at once: the one whose exclusive write of leasehold.toml loses is
    # told to run again, with the retryable code (75), not a configuration error (78).
    from leasehold.errors import StoreBusy
    from leasehold.init import _write_atomic

    target = tmp_path / "leasehold.toml"
    target.write_text('db = "a.db"\n')
    with pytest.raises(StoreBusy, match="run it again") as caught:
        _write_atomic(str(target), 'db = "b.db"\n', exclusive=True)
    assert caught.value.exit_code == 75
    assert target.read_text() == 'db = "a.db"\n' and list(tmp_path.iterdir()) == [target]
