"""The CLI as a real process: outputs, exit codes, JSON shapes, help, bad input."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import CLI

JOHN = ["--actor", "john", "--session", "abc123"]
PI = ["--actor", "pi-orch", "--session", "xyz456"]
TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
TASK_KEYS = {"id", "title", "status", "priority", "lease_holder", "lease_actor", "lease_session",
             "lease_until", "fence", "created_at", "updated_at"}


def test_claim_conflict_exact_stderr_and_exit_codes(cli: CLI) -> None:
    ok = cli("claim", "99927", *JOHN, "--ttl-minutes", "10")
    assert ok.returncode == 0, ok.stderr
    assert re.fullmatch(rf"claimed 99927 as john:abc123 until {TS} \(fence 1\)\n", ok.stdout)
    lost = cli("claim", "99927", *PI)
    assert lost.returncode == 1
    assert lost.stdout == ""
    assert re.fullmatch(rf"Task 99927 held by john:abc123 until {TS}\n", lost.stderr)
    until = re.search(TS, ok.stdout).group(0)  # type: ignore[union-attr]
    assert until in lost.stderr


def test_status_check_show_json_shapes(cli: CLI) -> None:
    assert cli("status", "99927").stdout == "available\n"
    cli("claim", "99927", *JOHN)
    status = cli("claim-status", "99927")
    assert re.fullmatch(rf"held by john:abc123 until {TS} \(fence 1\)\n", status.stdout)
    shown = json.loads(cli("show", "99927", "--json").stdout)
    assert TASK_KEYS <= set(shown)
    assert shown["lease_holder"] == "john:abc123" and shown["lease_actor"] == "john"
    assert shown["lease_session"] == "abc123" and shown["fence"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", shown["lease_until"])
    blocked = cli("check", "99927", *PI)
    assert blocked.returncode == 1
    assert re.fullmatch(rf"VERDICT: BLOCKED — held by john:abc123 until {TS}\n", blocked.stdout)
    assert cli("check", "99927", *JOHN).stdout == "VERDICT: CLEAR\n"
    off = cli("check", "99927", *PI, env={"LEASEHOLD_ENFORCE": "0"})
    assert off.returncode == 0 and off.stdout.endswith("(enforcement off)\n")
    assert "BLOCKED" in off.stdout
    verdict = json.loads(cli("check", "99927", *PI, "--json").stdout)
    assert verdict["verdict"] == "BLOCKED" and verdict["task"]["lease_holder"] == "john:abc123"


def test_extend_release_done_lifecycle(cli: CLI) -> None:
    cli("claim", "t1", *JOHN, "--ttl", "90s")
    ext = cli("claim-extend", "t1", *JOHN, "--json")
    assert ext.returncode == 0 and json.loads(ext.stdout)["ttl_seconds"] == 90
    refused = cli("extend", "t1", *PI)
    assert refused.returncode == 1 and "held by john:abc123" in refused.stderr
    stale = cli("extend", "t1", *JOHN, "--fence", "5")
    assert stale.returncode == 1 and "stale" in stale.stderr
    other = cli("release", "t1", *PI)
    assert other.returncode == 1
    kept = cli("release", "t1", *JOHN, "--keep-status", "--json")
    assert json.loads(kept.stdout)["status"] == "in_progress"
    nothing = cli("claim-release", "t1", *JOHN)
    assert nothing.returncode == 0 and "not held" in nothing.stdout
    cli("claim", "t1", *PI)
    done = cli("done", "t1", *PI)
    assert done.returncode == 0 and done.stdout == "done t1 (fence 2)\n"
    assert cli("status", "t1").stdout == "done\n"
    again = cli("claim", "t1", *JOHN)
    assert again.returncode == 1 and "is done" in again.stderr


def test_force_release_needs_a_reason(cli: CLI) -> None:
    cli("claim", "t1", *JOHN)
    no_reason = cli("release", "t1", *PI, "--force")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    assert no_reason.stderr.count("\n") == 1
    forced = cli("release", "t1", *PI, "--force", "--reason", "crashed session")
    assert forced.returncode == 0
    log = json.loads(cli("log", "t1", "--json").stdout)
    assert log[-1]["kind"] == "force_released" and log[-1]["details"]["reason"] == "crashed session"
    assert set(log[-1]) == {"id", "ts", "kind", "task_id", "holder", "fence", "details"}


def test_show_unknown_is_exit_3(cli: CLI) -> None:
    missing = cli("show", "nope")
    assert missing.returncode == 3 and missing.stderr == "Task nope not found\n"
    as_json = cli("show", "nope", "--json")
    assert as_json.returncode == 3 and json.loads(as_json.stdout)["error"]["exit_code"] == 3


def test_next_add_list_who_sweep_log(cli: CLI) -> None:
    assert cli("next", *JOHN).returncode == 1
    cli("add", "a", "--title", "first", "--priority", "1")
    cli("add", "b", "--priority", "5")
    got = cli("next", *JOHN, "--json")
    assert got.returncode == 0 and json.loads(got.stdout)["id"] == "b"
    batch = json.loads(cli("next", *PI, "--count", "5", "--json").stdout)
    assert [t["id"] for t in batch] == ["a"]
    listed = json.loads(cli("list", "--held", "--json").stdout)
    assert sorted(t["id"] for t in listed) == ["a", "b"]
    assert cli("list", "--available").stdout == "no tasks\n"
    who = json.loads(cli("who", "--json").stdout)
    assert {g["holder"] for g in who} == {"john:abc123", "pi-orch:xyz456"}
    assert "john:abc123" in cli("who").stdout
    assert cli("sweep").stdout == "no expired leases\n"
    assert json.loads(cli("claim-sweep", "--json").stdout) == []
    log = cli("log", "--limit", "2").stdout.splitlines()
    assert len(log) == 2 and "claimed" in log[-1]


@pytest.mark.parametrize(
    "args",
    [
        ["claim", "", *JOHN],
        ["claim", "has space", *JOHN],
        ["claim", "x" * 201, *JOHN],
        ["claim", "t1", "--ttl", "0", *JOHN],
        ["claim", "t1", "--ttl", "-5", *JOHN],
        ["claim", "t1", "--ttl", "abc", *JOHN],
        ["claim", "t1", "--ttl", "8d", *JOHN],
        ["claim", "t1", "--ttl-minutes", "0", *JOHN],
        ["claim", "t1", "--ttl-minutes", "x", *JOHN],
        ["claim", "t1", "--ttl", "5m", "--ttl-minutes", "5", *JOHN],
        ["claim", "t1", "--actor", "a:b", "--session", "s"],
        ["claim", "t1", "--actor", "john"],
        ["claim", *JOHN],
        ["extend", "t1", "--fence", "abc", *JOHN],
        ["next", "--count", "0", *JOHN],
        ["list", "--held", "--available"],
        ["log", "--limit", "0"],
        ["bogus-command"],
        ["release", "t1", "--reason", "why", *JOHN],
    ],
)
def test_bad_input_is_exit_2_one_line_no_traceback(cli: CLI, args: list[str]) -> None:
    result = cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_unopenable_store_is_a_configuration_error_not_retryable(cli: CLI, tmp_path) -> None:
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not a database" * 100)
    result = cli("status", "t1", env={"LEASEHOLD_DB": str(not_a_db)})
    assert result.returncode == 78 and "Traceback" not in result.stderr
    blocked_dir = tmp_path / "file-not-dir"
    blocked_dir.write_text("x")
    result = cli("claim", "t1", *JOHN, env={"LEASEHOLD_DB": str(blocked_dir / "sub" / "l.db")})
    assert result.returncode == 78 and result.stderr.count("\n") == 1


def test_sqlite_busy_past_timeout_is_exit_75_never_a_fallback(sqlite_cli: CLI, sqlite_url: str) -> None:
    import sqlite3

    assert sqlite_cli("add", "t1").returncode == 0
    locker = sqlite3.connect(sqlite_url, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # hold the write lock
    try:
        result = sqlite_cli("claim", "t1", *JOHN, env={"LEASEHOLD_BUSY_TIMEOUT": "0.2"})
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert result.returncode == 75, result.stderr
    assert "retry" in result.stderr and result.stderr.count("\n") == 1
    assert sqlite_cli("status", "t1").stdout == "available\n"  # nothing half-applied


def test_identity_from_environment(cli: CLI) -> None:
    env = {"LEASEHOLD_ACTOR": "bot", "CLAUDE_CODE_SESSION_ID": "sess-1"}
    assert cli("claim", "t1", env=env).stdout.startswith("claimed t1 as bot:sess-1 ")
    who = json.loads(cli("whoami", "--json", env=env).stdout)
    assert who["holder"] == "bot:sess-1" and who["session_source"] == "CLAUDE_CODE_SESSION_ID"
    env2 = dict(env, LEASEHOLD_SESSION="sess-2")
    assert json.loads(cli("whoami", "--json", env=env2).stdout)["session"] == "sess-2"
    no_actor_env = {"CLAUDE_CODE_SESSION_ID": "s"}
    assert cli("whoami", "--json", env=no_actor_env).returncode == 0  # falls back to $USER


def test_global_options_before_the_command(cli: CLI) -> None:
    result = cli("--json", "--actor", "john", "--session", "abc", "claim", "t1")
    assert result.returncode == 0 and json.loads(result.stdout)["lease_holder"] == "john:abc"


def test_every_command_has_help_with_an_example(cli: CLI) -> None:
    from leasehold.cli import ALIASES, COMMAND_MODULES

    for command in [*COMMAND_MODULES, *ALIASES]:
        result = cli(command, "--help", db=False)
        assert result.returncode == 0, (command, result.stderr)
        assert "examples:" in result.stdout and "leasehold " in result.stdout, command
        assert "exit codes:" in result.stdout, command  # documented in every help
        # hooks never exit 75 nor 78 (they deny or refuse); doctor reports an unreachable or
        # misconfigured ledger as a finding (exit 1)
        assert command in ("hook", "guard", "doctor") or "75" in result.stdout, command
        assert command in ("hook", "guard", "doctor") or "78" in result.stdout, command
    top = cli("--help", db=False)
    assert top.returncode == 0 and "exit codes:" in top.stdout
    for command in COMMAND_MODULES:
        assert command in top.stdout


def test_leasehold_toml_sets_db_and_default_ttl(cli: CLI, tmp_path) -> None:
    project = tmp_path / "proj"
    (project / "deep" / "er").mkdir(parents=True)
    (project / "leasehold.toml").write_text('db = "state/ledger.db"\ndefault_ttl = "90s"\n')
    import subprocess

    from tests.conftest import LEASEHOLD

    env = dict(cli.env)
    missing = subprocess.run([LEASEHOLD, "status", "t1"], capture_output=True, text=True, env=env,
                             cwd=project / "deep" / "er")
    assert missing.returncode == 78 and str(project / "state" / "ledger.db") in missing.stderr
    assert not (project / "state").exists()  # never created silently
    init = subprocess.run([LEASEHOLD, "init"], capture_output=True, text=True, env=env,
                          cwd=project / "deep" / "er")
    assert init.returncode == 0, init.stderr
    out = subprocess.run([LEASEHOLD, "claim", "t1", "--actor", "a", "--session", "s", "--json"],
                         capture_output=True, text=True, env=env, cwd=project / "deep" / "er")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ttl_seconds"] == 90
    assert (project / "state" / "ledger.db").exists()
    (project / "leasehold.toml").write_text('dbb = "x"\n')
    bad = subprocess.run([LEASEHOLD, "status", "t1"], capture_output=True, text=True, env=env,
                         cwd=project)
    assert bad.returncode == 78 and "unknown key" in bad.stderr


def test_done_with_several_ids(cli: CLI) -> None:
    for task_id in ("a", "b"):
        cli("claim", task_id, *JOHN)
    cli("claim", "c", *PI)
    result = cli("done", "a", "b", "c", "ghost", *JOHN, "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert sorted(t["id"] for t in data["done"]) == ["a", "b"]
    assert {r["id"] for r in data["refused"]} == {"c", "ghost"}
    assert "Task c held by pi-orch:xyz456 until" in result.stderr
    assert "Task ghost not found" in result.stderr
    assert cli("done", "a", "b", "--fence", "1", *JOHN).returncode == 2
