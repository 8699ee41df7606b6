"""``leasehold doctor`` on real repositories: healthy after set-up, and each broken piece
reported with its fix (exit 1)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLI


def checks(proc: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout)
    assert data["healthy"] == (proc.returncode == 0)
    return {c["name"]: c for c in data["checks"]}


@pytest.fixture
def project(cli: CLI, tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True, env=cli.env)
    (root / "README.md").write_text("x\n")
    subprocess.run([*git, "-C", str(root), "add", "."], check=True, env=cli.env)
    subprocess.run([*git, "-C", str(root), "commit", "-q", "-m", "init"], check=True, env=cli.env)
    assert cli("migrate").returncode == 0  # the ledger exists
    (root / "leasehold.toml").write_text(f"db = {json.dumps(cli.db)}\nactor = \"dev\"\n")
    cli.cwd = root
    return root


def test_a_set_up_repository_is_healthy_and_each_breakage_is_reported(cli: CLI, project: Path) -> None:
    before = checks(cli("doctor", "--json", db=False))
    assert before["hooks"]["ok"] is False and before["hooks"]["fix"] == "leasehold hooks install"
    assert cli("hooks", "install", db=False).returncode == 0
    proc = cli("doctor", "--json", db=False)
    found = checks(proc)
    assert proc.returncode == 0, found
    assert found["reachable"]["ok"] and found["schema"]["ok"] and found["identity"]["ok"]
    assert "actor dev" in found["identity"]["detail"]
    if cli.db.startswith("postgres"):
        assert found["clock"]["ok"] is True
    text = cli("doctor", db=False)
    assert text.returncode == 0 and text.stdout.strip().endswith("healthy")
    # hooks switched off
    settings = project / ".claude" / "settings.json"
    data = json.loads(settings.read_text())
    settings.write_text(json.dumps(dict(data, disableAllHooks=True)))
    proc = cli("doctor", "--json", db=False)
    bad = checks(proc)["hooks:claude:project"]
    assert proc.returncode == 1 and "disableAllHooks" in bad["detail"]
    assert "fix:" in cli("doctor", db=False).stdout
    settings.write_text(json.dumps(data))
    # a second worktree that resolves another ledger
    wt = project.parent / "wt"
    subprocess.run(["git", "-C", str(project), "worktree", "add", "-q", str(wt), "-b", "side"],
                   check=True, env=cli.env)
    # leasehold.toml is not committed: the linked worktree uses the main worktree's file
    assert checks(cli("doctor", "--json", db=False))["worktrees"]["ok"] is True
    (wt / "leasehold.toml").write_text((project / "leasehold.toml").read_text())
    assert checks(cli("doctor", "--json", db=False))["worktrees"]["ok"] is True
    (wt / "leasehold.toml").write_text('db = "other.db"\n')
    proc = cli("doctor", "--json", db=False)
    found = checks(proc)
    assert proc.returncode == 1 and found["worktrees"]["ok"] is False
    assert str(wt) in found["worktrees"]["detail"]


def test_a_missing_ledger_is_reported_not_created(cli: CLI, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ledger.db"
    proc = cli("doctor", "--json", env={"LEASEHOLD_DB": str(missing)}, db=False)
    found = checks(proc)
    assert proc.returncode == 1 and found["reachable"]["ok"] is False
    assert "leasehold init" in found["reachable"]["fix"]
    assert not missing.exists() and not missing.parent.exists()


def test_init_then_doctor_is_a_working_set_up_in_two_commands(cli: CLI, tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=cli.env)
    cli.cwd = root
    proc = cli("init", "--json", db=False)
    assert proc.returncode == 0, proc.stderr
    steps = {s["step"]: s for s in json.loads(proc.stdout)["steps"]}
    assert steps["hooks"]["action"] == "created"
    command = json.loads((root / ".claude" / "settings.json").read_text())[
        "hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    assert Path(command.split()[0]).is_absolute()
    proc = cli("doctor", "--json", db=False)
    assert proc.returncode == 0, proc.stdout
    again = json.loads(cli("init", "--json", db=False).stdout)
    assert {s["step"]: s["action"] for s in again["steps"]}["hooks"] == "unchanged"


def test_a_malformed_reference_setting_is_reported(cli: CLI, project: Path) -> None:
    """The gate denies every Agent call while reference_patterns does not compile, so doctor
    must not call that set-up healthy."""
    assert cli("hooks", "install", db=False).returncode == 0
    toml = project / "leasehold.toml"
    good = toml.read_text()
    toml.write_text(good + "reference_patterns = ['(unclosed']\n")
    proc = cli("doctor", "--json", db=False)
    bad = checks(proc)["config"]
    assert proc.returncode == 1 and bad["ok"] is False
    assert "reference_patterns" in bad["detail"] and "(unclosed" in bad["detail"]
    toml.write_text(good + "reference_keywords = 'proj'\n")
    proc = cli("doctor", "--json", db=False)
    assert proc.returncode == 1 and "reference_keywords" in checks(proc)["config"]["detail"]
    toml.write_text(good + "reference_patterns = ['\\\\bPROJ(?P<id>\\\\d+)\\\\b']\n")
    assert cli("doctor", db=False).returncode == 0


def test_a_remote_ledgers_token_is_checked_with_a_real_request(sqlite_cli: CLI, tmp_path: Path) -> None:
    cli = sqlite_cli
    from tests.server import ServerThread, make_token

    backing = str(tmp_path / "served.db")
    good = make_token(backing, "bob", "agent")
    server = ServerThread(backing)
    try:
        root = tmp_path / "remote-proj"
        root.mkdir()
        (root / "leasehold.toml").write_text(f'db = "{server.url}"\nactor = "bob"\n')
        cli.cwd = root

        def doctor(token: str | None) -> dict[str, dict]:
            env = {"LEASEHOLD_TOKEN": token} if token else {}
            if token is None:
                cli.env.pop("LEASEHOLD_TOKEN", None)
            return checks(cli("doctor", "--json", db=False, env=env))

        ok = doctor(good)
        assert ok["token"]["ok"] is True and "bob" in ok["token"]["detail"], ok["token"]
        assert ok["reachable"]["ok"] is True
        bad = doctor("lh_" + "0" * 40)
        assert bad["token"]["ok"] is False and "refused" in bad["token"]["detail"], bad["token"]
        assert bad["token"]["fix"]
        missing = doctor(None)
        assert missing["token"]["ok"] is False and "token" in missing["token"]["detail"], missing["token"]
    finally:
        server.stop()


def test_a_token_file_that_is_not_text_or_holds_control_characters_is_a_config_error(
        sqlite_cli: CLI, tmp_path: Path) -> None:
    """Every command reading it (doctor included) says so in one line, exit 78 (doctor: a
    failed token check), never an internal error."""
    cli = sqlite_cli
    from tests.server import ServerThread, make_token

    backing = str(tmp_path / "served.db")
    make_token(backing, "bob", "agent")  # creates the ledger
    server = ServerThread(backing)
    try:
        root = tmp_path / "remote-proj"
        root.mkdir()
        (root / "leasehold.toml").write_text(f'db = "{server.url}"\nactor = "bob"\ntoken_file = "tok"\n')
        cli.cwd = root
        cli.env.pop("LEASEHOLD_TOKEN", None)
        token = root / "tok"
        for content in (b"\xff\xfe lh_abc", b"lh_abc\ndef", b"lh_abc\x00def", b"lh_\x1b[31m"):
            token.write_bytes(content)
            token.chmod(0o600)
            listed = cli("list", db=False)
            assert listed.returncode == 78, (content, listed.stderr)
            assert len(listed.stderr.strip().splitlines()) == 1 and "token_file" in listed.stderr
            assert "\x1b" not in listed.stderr
            doctor = cli("doctor", "--json", db=False)
            assert doctor.returncode == 1, (content, doctor.stderr)
            assert checks(doctor)["token"]["ok"] is False, checks(doctor)
    finally:
        server.stop()


def test_doctor_never_prints_the_password_of_the_ledger_url(pg_url: str, base_env: dict[str, str],
                                                            tmp_path: Path) -> None:
    # The server trusts loopback, so the password is accepted and ignored: doctor reaches the
    # ledger, and must still show the URL redacted, in text and in --json.
    assert pg_url.startswith("postgresql://") and "@" in pg_url
    user, _, rest = pg_url[len("postgresql://"):].partition("@")
    secret = "s3cr3tPW9"
    forms = [f"postgresql://{user.split(':')[0]}:{secret}@{rest}",
             pg_url + ("&" if "?" in pg_url else "?") + f"password={secret}"]
    for url in forms:
        for extra in ([], ["--json"]):
            proc = CLI(url, base_env, tmp_path)("doctor", *extra)
            assert "Traceback" not in proc.stderr, proc.stderr
            assert secret not in proc.stdout + proc.stderr
            assert "***" in proc.stdout


def test_doctor_redacts_the_urls_other_worktrees_name(base_env: dict[str, str], tmp_path: Path) -> None:
    main, linked = tmp_path / "w1", tmp_path / "w2"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(main)], check=True, env=base_env)
    subprocess.run([*git, "-C", str(main), "commit", "-q", "--allow-empty", "-m", "x"], check=True,
                   env=base_env)
    subprocess.run([*git, "-C", str(main), "worktree", "add", "-q", str(linked)], check=True,
                   env=base_env)
    (main / "leasehold.toml").write_text('db = "postgresql://u:MainPw1234@127.0.0.1:1/db"\n')
    (linked / "leasehold.toml").write_text('db = "postgresql://u:OtherPw9876@127.0.0.1:1/db"\n')
    for extra in ([], ["--json"]):
        proc = CLI("unused", base_env, main)("doctor", *extra, db=False)
        assert "Traceback" not in proc.stderr, proc.stderr
        out = proc.stdout + proc.stderr
        assert "worktrees" in out and str(linked) in out
        assert "MainPw1234" not in out and "OtherPw9876" not in out
