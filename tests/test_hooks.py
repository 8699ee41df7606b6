"""The Claude Code hook commands, end to end: real ``leasehold`` processes fed the shared
fixture payloads on stdin, against every backend."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, FIXTURES

PAYLOADS = FIXTURES / "claude-code"
SESSION = "9f1c2b7e-4d3a-4e55-9b1a-0c2d3e4f5a6b"  # session_id of the fixtures (but the legacy one)
LEGACY_SESSION = "2b8e6f10-77aa-4c1e-8d2f-3a4b5c6d7e8f"
LOCAL = Path(__file__).resolve().parent / "fixtures" / "claude-code"


@pytest.fixture(autouse=True)
def _cache_under_home(base_env: dict[str, str]) -> None:
    """Audit logs and heartbeat state go to $HOME/.cache (the test's HOME), whatever the machine
    sets. The hooks' wall-clock limits and busy timeouts are raised
    (:data:`tests.conftest.LOADED_MACHINE_HOOK_ENV`) so that a loaded machine cannot fail a test
    of what a hook does; the tests of the limits themselves pass ``LEASEHOLD_HOOK_DEADLINE=""``
    (the defaults) and their own busy timeouts, and ``benchmarks/bench_hooks.py`` times them."""
    from tests.conftest import LOADED_MACHINE_HOOK_ENV

    base_env.pop("XDG_CACHE_HOME", None)
    base_env.update(LOADED_MACHINE_HOOK_ENV)


DEFAULT_DEADLINES = {"LEASEHOLD_HOOK_DEADLINE": ""}


def payload(name: str, **changes: object) -> dict:
    data = json.loads((PAYLOADS / name).read_text())
    for key, value in changes.items():
        if key in ("prompt", "description", "file_path", "notebook_path"):
            data["tool_input"][key] = value
        else:
            data[key] = value
    return data


def hook(cli: CLI, event: str, data: dict | str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    text = data if isinstance(data, str) else json.dumps(data)
    return cli("hook", event, input=text, env=env)


def decision(proc: subprocess.CompletedProcess[str]) -> dict | None:
    """The one JSON object a PreToolUse hook printed, or None when it printed nothing."""
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    if not proc.stdout.strip():
        return None
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])["hookSpecificOutput"]


def denied(proc: subprocess.CompletedProcess[str]) -> str:
    out = decision(proc)
    assert out is not None, "expected a denial, the call was allowed"
    assert out["hookEventName"] == "PreToolUse"
    assert out["permissionDecision"] == "deny"
    return out["permissionDecisionReason"]


def events(cli: CLI, kind: str | None = None) -> list[dict]:
    proc = cli("log", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    return [e for e in rows if kind is None or e["kind"] == kind]


def audit_lines(cli: CLI) -> list[dict]:
    folder = Path(cli.env["HOME"]) / ".cache" / "leasehold"
    lines = []
    for log in sorted(folder.glob("bypass-audit-*.log")):
        lines += [json.loads(line) for line in log.read_text().splitlines()]
    return lines


def claim(cli: CLI, task: str, session: str, *extra: str) -> None:
    proc = cli("claim", task, "--actor", "bob", "--session", session, *extra)
    assert proc.returncode == 0, proc.stderr


# -- the dispatch gate: Agent / Task ----------------------------------------------------------
def test_agent_call_naming_a_task_held_by_another_session_is_denied(cli: CLI) -> None:
    claim(cli, "99927", "other-session")
    reason = denied(hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json")))
    assert "99927" in reason and "bob:other-session" in reason
    status = json.loads(cli("status", "99927", "--json").stdout)
    assert status["lease_until"][:19] in reason  # the expiry, to the second
    assert "Do not dispatch" in reason


def test_legacy_task_tool_is_gated_too(cli: CLI) -> None:
    claim(cli, "2025-12-22-thaifa-migration-critical", "other-session")
    reason = denied(hook(cli, "pre-tool-use", payload("pre_tool_use_task_legacy.json")))
    assert "2025-12-22-thaifa-migration-critical" in reason and "bob:other-session" in reason


@pytest.mark.parametrize("text, task", [
    ("Please look at MC #99927 today", "99927"),
    ("Reserve ticket CMB-0036, then file it", "CMB-0036"),
    ("bead iv-sz3sf: heartbeat placement", "iv-sz3sf"),
    ("(see #4711).", "4711"),
])
def test_task_ids_are_found_in_free_text(cli: CLI, text: str, task: str) -> None:
    claim(cli, task, "other-session")
    reason = denied(hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json", prompt=text,
                                                      description="work")))
    assert f"task {task} " in reason


def test_description_is_checked_as_well_as_prompt(cli: CLI) -> None:
    claim(cli, "CMB-0036", "other-session")
    data = payload("pre_tool_use_agent.json", prompt="do the thing", description="CMB-0036 follow-up")
    assert "CMB-0036" in denied(hook(cli, "pre-tool-use", data))


def test_every_held_task_is_named(cli: CLI) -> None:
    claim(cli, "99927", "s-a")
    claim(cli, "CMB-0036", "s-b")
    reason = denied(hook(cli, "pre-tool-use", payload(
        "pre_tool_use_agent.json", prompt="99927 and CMB-0036 and 12345")))
    assert "99927" in reason and "bob:s-a" in reason
    assert "CMB-0036" in reason and "bob:s-b" in reason
    assert "12345" not in reason


def test_own_free_and_released_tasks_are_allowed(cli: CLI) -> None:
    data = payload("pre_tool_use_agent.json")
    assert decision(hook(cli, "pre-tool-use", data)) is None  # nothing held
    claim(cli, "99927", SESSION)  # this session's own lease (any actor)
    assert decision(hook(cli, "pre-tool-use", data)) is None
    assert cli("release", "99927", "--actor", "bob", "--session", SESSION).returncode == 0
    claim(cli, "99927", "other-session")
    assert cli("release", "99927", "--actor", "bob", "--session", "other-session").returncode == 0
    assert decision(hook(cli, "pre-tool-use", data)) is None


def test_other_tools_are_not_gated(cli: CLI) -> None:
    claim(cli, "99927", "other-session")
    data = payload("pre_tool_use_agent.json", tool_name="Read")
    assert decision(hook(cli, "pre-tool-use", data)) is None


def test_bypass_token_allows_and_is_audited_in_file_and_ledger(cli: CLI) -> None:
    claim(cli, "99927", "other-session")
    data = payload("pre_tool_use_agent_bypass.json")
    assert decision(hook(cli, "pre-tool-use", data)) is None
    (line,) = audit_lines(cli)
    assert line["kind"] == "bypass" and line["via"] == "token"
    assert line["session"] == SESSION and line["tool"] == "Agent"
    assert [(t["id"], t["holder"]) for t in line["tasks"]] == [("99927", "bob:other-session")]
    assert line["prompt_sha256"] == hashlib.sha256(data["tool_input"]["prompt"].encode()).hexdigest()
    assert line["ts"].endswith("Z")
    (event,) = events(cli, "bypass")
    assert event["task_id"] == "99927" and event["holder"] == f"tester:{SESSION}"
    assert event["details"]["lease_holder"] == "bob:other-session"
    assert event["details"]["prompt_sha256"] == line["prompt_sha256"]


def test_bypass_token_and_audit_folder_are_configurable(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "leasehold.toml").write_text('bypass_token = "[OVERRIDE]"\naudit_dir = "audit"\n')
    claim(cli, "99927", "other-session")
    default = payload("pre_tool_use_agent_bypass.json")
    assert denied(hook(cli, "pre-tool-use", default))  # the default token no longer bypasses
    custom = payload("pre_tool_use_agent_bypass.json", prompt="[OVERRIDE] take 99927")
    assert decision(hook(cli, "pre-tool-use", custom)) is None
    logs = list((tmp_path / "audit").glob("bypass-audit-*.log"))
    assert len(logs) == 1 and len(logs[0].read_text().splitlines()) == 1


def test_enforcement_off_never_denies_but_tells_and_audits(cli: CLI) -> None:
    claim(cli, "99927", "other-session")
    out = decision(hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json"),
                        env={"LEASEHOLD_ENFORCE": "0"}))
    assert out is not None and "permissionDecision" not in out
    assert "would have been denied" in out["additionalContext"]
    assert "99927" in out["additionalContext"] and "bob:other-session" in out["additionalContext"]
    (line,) = audit_lines(cli)
    assert line["kind"] == "enforce_off" and line["tasks"][0]["id"] == "99927"
    (event,) = events(cli, "bypass")
    assert event["details"]["via"] == "LEASEHOLD_ENFORCE=0"


def test_unreachable_store_fails_closed(cli: CLI, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    env = {"LEASEHOLD_DB": str(blocker / "ledger.db")}
    reason = denied(hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json"), env=env))
    assert "cannot check this call" in reason and "LEASEHOLD_ENFORCE=0" in reason
    edit = payload("pre_tool_use_edit.json", cwd=str(tmp_path), file_path=str(tmp_path / "a.py"))
    assert "fails closed" in denied(hook(cli, "pre-tool-use", edit, env=env))
    # enforcement off: allowed, told, audited
    out = decision(hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json"),
                        env=dict(env, LEASEHOLD_ENFORCE="0")))
    assert out is not None and "could not check" in out["additionalContext"]
    assert [line["kind"] for line in audit_lines(cli)] == ["enforce_off"]


def test_malformed_leasehold_toml_fails_closed(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "leasehold.toml").write_text("this is = = not toml\n")
    reason = denied(hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json")))
    assert "leasehold.toml" in reason


def test_busy_store_fails_closed(sqlite_cli: CLI) -> None:
    cli = sqlite_cli
    claim(cli, "99927", "other-session")
    locker = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "c.execute('PRAGMA locking_mode=EXCLUSIVE')\n"
         "c.execute('BEGIN EXCLUSIVE')\n"
         "c.execute('UPDATE tasks SET title = title')\n"
         "print('locked', flush=True)\n"
         "sys.stdin.read()\n", cli.db],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        proc = hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json"),
                    env={"LEASEHOLD_BUSY_TIMEOUT": "0.2"})
        reason = denied(proc)
        assert "locked" in reason and "LEASEHOLD_ENFORCE=0" in reason
    finally:
        locker.communicate("")
    assert "bob:other-session" in denied(hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json")))


@pytest.mark.parametrize("event", ["pre-tool-use", "post-tool-use", "session-start", "session-end"])
@pytest.mark.parametrize("stdin", ["{nope", "[1, 2]", "", '{"session_id": 5}',
                                   '{"session_id": "a:b", "tool_name": "Agent", "tool_input": {}}',
                                   '{"tool_name": "Agent", "tool_input": "text"}'])
def test_malformed_payload_is_a_non_blocking_error(sqlite_cli: CLI, event: str, stdin: str) -> None:
    proc = hook(sqlite_cli, event, stdin, env={"CLAUDE_CODE_SESSION_ID": "s1"})
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"leasehold hook {event}: ")
    assert "Traceback" not in proc.stderr


def test_hook_via_argparse_path_behaves_the_same(cli: CLI) -> None:
    claim(cli, "99927", "other-session")
    proc = cli("hook", "pre-tool-use", "--db", cli.db, input=json.dumps(payload("pre_tool_use_agent.json")),
               db=False)
    assert "bob:other-session" in denied(proc)
    bad = cli("hook", "no-such-event", input="{}")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


# -- the Edit gate -----------------------------------------------------------------------------
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "src" / "api").mkdir(parents=True)
    return root


def edit_payload(repo: Path, rel: str, tool: str = "Edit") -> dict:
    if tool == "NotebookEdit":
        data = json.loads((LOCAL / "pre_tool_use_notebook_edit.json").read_text())
        data["tool_input"]["notebook_path"] = str(repo / rel)
    else:
        data = payload("pre_tool_use_edit.json", tool_name=tool)
        data["tool_input"]["file_path"] = str(repo / rel)
    data["cwd"] = str(repo)
    return data


def reserve(cli: CLI, session: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("reserve-path", *args, "--actor", "bob", "--session", session)


@pytest.mark.parametrize("tool", ["Edit", "Write", "MultiEdit", "NotebookEdit"])
def test_edit_under_another_sessions_reservation_is_denied(cli: CLI, repo: Path, tool: str) -> None:
    assert reserve(cli, "other-session", "src/api/**", "--reason", "router refactor").returncode == 0
    reason = denied(hook(cli, "pre-tool-use", edit_payload(repo, "src/api/routes.py", tool)))
    assert "src/api/routes.py" in reason and "bob:other-session" in reason
    assert "src/api/**" in reason and "router refactor" in reason and "Do not edit" in reason


def test_edit_allowed_outside_own_or_shared_reservations(cli: CLI, repo: Path) -> None:
    assert reserve(cli, "other-session", "src/api/**").returncode == 0
    assert decision(hook(cli, "pre-tool-use", edit_payload(repo, "src/db.py"))) is None
    assert decision(hook(cli, "pre-tool-use", edit_payload(repo, "../elsewhere.py"))) is None
    assert reserve(cli, "reader", "docs/**", "--shared").returncode == 0
    assert decision(hook(cli, "pre-tool-use", edit_payload(repo, "docs/guide.md"))) is None
    assert reserve(cli, SESSION, "lib/**").returncode == 0
    assert decision(hook(cli, "pre-tool-use", edit_payload(repo, "lib/x.py"))) is None
    assert cli("release-path", "src/api/**", "--actor", "bob", "--session", "other-session").returncode == 0
    assert decision(hook(cli, "pre-tool-use", edit_payload(repo, "src/api/routes.py"))) is None


def test_edit_with_enforcement_off_is_told_and_audited(cli: CLI, repo: Path) -> None:
    assert reserve(cli, "other-session", "src/api/").returncode == 0
    out = decision(hook(cli, "pre-tool-use", edit_payload(repo, "src/api/routes.py"),
                        env={"LEASEHOLD_ENFORCE": "off"}))
    assert out is not None and "would have been denied" in out["additionalContext"]
    (line,) = audit_lines(cli)
    assert line["file"] == "src/api/routes.py" and line["paths"][0]["pattern"] == "src/api/"


# -- heartbeat -----------------------------------------------------------------------------------
def test_heartbeat_extends_at_once_then_only_after_the_interval(cli: CLI, tmp_path: Path) -> None:
    """The first call of a session extends at once, the next ones only once the throttle file
    says the interval has passed. The interval is an hour, so no call of the test can outlive it
    however slow the machine; its passing is simulated by moving the due time into the past."""
    interval = 3600.0
    (tmp_path / "leasehold.toml").write_text(f'heartbeat_interval = "{interval:g}s"\n')
    claim(cli, "99927", SESSION, "--ttl", "10m")
    claim(cli, "other-task", "other-session", "--ttl", "10m")
    assert reserve(cli, SESSION, "src/**").returncode == 0
    data = payload("post_tool_use_bash.json")
    env = {"CLAUDE_CODE_SESSION_ID": SESSION}
    before = time.time()
    first = hook(cli, "post-tool-use", data, env=env)
    after = time.time()
    assert first.returncode == 0 and first.stdout == "", first.stderr
    extended = events(cli, "extended")
    assert [e["task_id"] for e in extended] == ["99927"]  # first call of the session: at once
    assert [e["details"]["pattern"] for e in events(cli, "path_extended")] == ["src/**"]
    state = Path(cli.env["HOME"]) / ".cache" / "leasehold" / "state" / f"heartbeat-{SESSION}"
    due = float(state.read_text().split()[0])
    assert before + interval <= due <= after + interval  # the next one is due one interval later
    # within the interval: throttled, even with the ledger unreachable (it is not opened)
    for extra in ({}, {"LEASEHOLD_DB": str(tmp_path / "missing" / "x" / "ledger.db"), "LEASEHOLD_ENFORCE": "1"}):
        proc = hook(cli, "post-tool-use", data, env=dict(env, **extra))
        assert proc.returncode == 0, proc.stderr
    assert len(events(cli, "extended")) == 1
    # without CLAUDE_CODE_SESSION_ID the slow path throttles the same way
    assert hook(cli, "post-tool-use", data).returncode == 0
    assert len(events(cli, "extended")) == 1
    # the interval has passed: the next call extends again and sets the next due time
    state.write_text(f"{time.time() - 1:.3f}\n")
    assert hook(cli, "post-tool-use", data, env=env).returncode == 0
    assert [e["task_id"] for e in events(cli, "extended")] == ["99927", "99927"]
    assert len(events(cli, "path_extended")) == 2
    assert float(state.read_text().split()[0]) > time.time() + interval / 2


def test_throttled_heartbeat_imports_no_database_driver(sqlite_cli: CLI, tmp_path: Path) -> None:
    cli = sqlite_cli
    data = json.dumps(payload("post_tool_use_bash.json"))
    env = dict(cli.env, LEASEHOLD_DB=cli.db, CLAUDE_CODE_SESSION_ID=SESSION)
    assert hook(cli, "post-tool-use", data, env=env).returncode == 0  # first: heartbeat, state written
    probe = ("import sys\nsys.argv = ['leasehold', 'hook', 'post-tool-use']\n"
             "from leasehold.cli import entry\n"
             "try:\n    entry()\nexcept SystemExit as exc:\n    code = exc.code\n"
             "print(code, sorted(m for m in ('sqlite3', 'psycopg', 'argparse', 'json', 'tomllib') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", probe], input=data, capture_output=True, text=True,
                          env=env, cwd=cli.cwd, timeout=60)
    assert proc.stdout.strip() == "0 []", proc.stdout + proc.stderr


def test_state_dir_setting_is_honoured(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "leasehold.toml").write_text('state_dir = "hb-state"\n')
    claim(cli, "99927", SESSION)
    env = {"CLAUDE_CODE_SESSION_ID": SESSION}
    assert hook(cli, "post-tool-use", payload("post_tool_use_bash.json"), env=env).returncode == 0
    assert (tmp_path / "hb-state" / f"heartbeat-{SESSION}").exists()
    assert hook(cli, "post-tool-use", payload("post_tool_use_bash.json"), env=env).returncode == 0
    assert len(events(cli, "extended")) == 1


def test_heartbeat_store_failure_is_non_blocking_and_retried(cli: CLI, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = hook(cli, "post-tool-use", payload("post_tool_use_bash.json"),
                env={"LEASEHOLD_DB": str(blocker / "x.db")})
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1
    claim(cli, "99927", SESSION)
    assert hook(cli, "post-tool-use", payload("post_tool_use_bash.json")).returncode == 0
    assert len(events(cli, "extended")) == 1  # no state was written by the failed attempt


# -- session start / end -------------------------------------------------------------------------
def test_session_start_lists_own_and_others_holdings(cli: CLI) -> None:
    claim(cli, "99927", SESSION)
    claim(cli, "CMB-0036", "other-session")
    assert reserve(cli, "other-session", "src/api/**").returncode == 0
    proc = hook(cli, "session-start", payload("session_start.json"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["hookSpecificOutput"]
    assert out["hookEventName"] == "SessionStart"
    text = out["additionalContext"]
    assert f"tester:{SESSION}" in text
    assert "You hold: 99927" in text
    assert "bob:other-session: CMB-0036" in text and "src/api/**" in text
    assert len(text) < 2000


def test_session_end_releases_only_that_sessions_holdings(cli: CLI) -> None:
    claim(cli, "99927", SESSION)
    claim(cli, "A-1", SESSION)
    claim(cli, "B-2", "other-session")
    assert reserve(cli, SESSION, "src/**").returncode == 0
    assert reserve(cli, "other-session", "docs/**").returncode == 0
    proc = hook(cli, "session-end", payload("session_end.json"))
    assert proc.returncode == 0, proc.stderr
    held = {t["id"]: t for t in json.loads(cli("list", "--json").stdout)}
    assert held["99927"]["lease_holder"] is None and held["99927"]["status"] == "open"
    assert held["A-1"]["lease_holder"] is None
    assert held["B-2"]["lease_holder"] == "bob:other-session"
    remaining = [r["pattern"] for r in json.loads(cli("paths", "--json").stdout)]
    assert remaining == ["docs/**"]
    released = events(cli, "released")
    assert sorted(e["task_id"] for e in released) == ["99927", "A-1"]
    assert all(e["details"]["via"] == "session-end" for e in released)
    assert [e["details"]["pattern"] for e in events(cli, "path_released")] == ["src/**"]


# -- identity ------------------------------------------------------------------------------------
def test_bash_claim_and_hook_agree_on_the_holder(cli: CLI) -> None:
    env = {"CLAUDE_CODE_SESSION_ID": SESSION}
    who = json.loads(cli("whoami", "--json", env=env).stdout)
    assert who["holder"] == f"tester:{SESSION}" and who["session_source"] == "CLAUDE_CODE_SESSION_ID"
    assert cli("claim", "99927", env=env).returncode == 0  # as the agent's Bash tool would
    assert decision(hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json"), env=env)) is None
    # the legacy fixture is another session: it is denied, naming the same holder
    reason = denied(hook(cli, "pre-tool-use", payload("pre_tool_use_task_legacy.json",
                                                      prompt="pick up 99927")))
    assert f"tester:{SESSION}" in reason


def test_local_fixtures_are_valid_payloads() -> None:
    for path in sorted(LOCAL.glob("*.json")):
        assert isinstance(json.loads(path.read_text()), dict), path


def test_candidate_ids_are_references_not_words() -> None:
    from leasehold.hooks.claude import candidate_ids

    ids = candidate_ids("Fix MC #99927 retry; CMB-0036, iv-sz3sf and "
                        "mission 2025-12-22-thaifa-migration-critical: admin/ folder.")
    for expected in ("99927", "CMB-0036", "iv-sz3sf", "2025-12-22-thaifa-migration-critical"):
        assert expected in ids
    for word in ("MC", "Fix", "admin", "retry"):
        assert word not in ids
    assert "" not in ids and len(ids) == len(set(ids))
    assert candidate_ids("") == []
    assert candidate_ids("ünïcode ✓") == []


@pytest.fixture
def hung_server():  # type: ignore[no-untyped-def]
    """A PostgreSQL address whose server accepts connections and never answers (an overloaded
    or half-dead host): connecting waits for libpq's connect_timeout."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"postgresql://postgres@127.0.0.1:{sock.getsockname()[1]}/test"
    finally:
        sock.close()


def test_hung_ledger_is_denied_before_the_hook_timeout(sqlite_cli: CLI, hung_server: str) -> None:
    """The installed PreToolUse timeout is 10 s and a hook that times out lets the call through:
    the gate must answer (deny, fail closed) well before that. The reason names the hook's own
    deadline (busy timeout + 2 s), so the answer came from it, not from libpq's 10 s connect
    timeout; how long the whole process takes is measured in benchmarks/bench_hooks.py."""
    env = dict(DEFAULT_DEADLINES, LEASEHOLD_DB=hung_server, LEASEHOLD_BUSY_TIMEOUT="0.5")
    reason = denied(hook(sqlite_cli, "pre-tool-use", payload("pre_tool_use_agent.json"), env=env))
    assert "cannot check this call" in reason and "did not answer within 2.5s" in reason, reason
    # the bypass token still allows (audited) when the ledger hangs
    out = decision(hook(sqlite_cli, "pre-tool-use", payload("pre_tool_use_agent_bypass.json"), env=env))
    assert out is not None and "bypass token" in out["additionalContext"]


def test_hung_ledger_session_end_stays_inside_the_budget(sqlite_cli: CLI, hung_server: str) -> None:
    """SessionEnd hooks share a 1.5 s budget: against a ledger that never answers, session-end
    gives up on its own deadline, below that budget, with one line (not libpq's 10 s connect
    timeout, nor Claude Code's kill). The whole process's wall time is a benchmark figure
    (benchmarks/bench_hooks.py), not asserted here."""
    from leasehold.hooks.claude import DEADLINES

    assert DEADLINES["session-end"] < 1.5
    proc = hook(sqlite_cli, "session-end", payload("session_end.json"),
                env=dict(DEFAULT_DEADLINES, LEASEHOLD_DB=hung_server))
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"did not answer within {DEADLINES['session-end']:g}s" in proc.stderr, proc.stderr
    # LEASEHOLD_HOOK_DEADLINE replaces the limit (a slow but live ledger); nonsense is ignored;
    # 0.01 s expires while the hook is still importing.
    default = f"{DEADLINES['session-end']:g}"
    for value, shown in (("0.3", "0.3"), ("0.01", "0.01"), ("soon", default), ("-1", default)):
        proc = hook(sqlite_cli, "session-end", payload("session_end.json"),
                    env={"LEASEHOLD_DB": hung_server, "LEASEHOLD_HOOK_DEADLINE": value})
        assert proc.returncode == 1 and f"did not answer within {shown}s" in proc.stderr, (value, proc.stderr)


def test_a_swallowed_deadline_fires_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Code that catches every Exception (psycopg probing its implementations while it is
    imported) can swallow the deadline's exception: it is raised again until disarmed, and not
    while the first one is still being handled."""
    import signal

    from leasehold.errors import StoreUnavailable
    from leasehold.hooks import claude

    monkeypatch.setenv("LEASEHOLD_HOOK_DEADLINE", "0.05")
    swallowed: list[BaseException] = []
    handled = False
    previous = signal.getsignal(signal.SIGALRM)
    claude._arm_deadline("session-end")
    try:
        with pytest.raises(StoreUnavailable, match="did not answer within 0.05s"):
            try:
                while True:
                    time.sleep(0.01)
            except Exception as exc:  # the swallowing library
                swallowed.append(exc)
                time.sleep(0.6)  # several repeats pass while it is being handled
                handled = True
            stop = time.monotonic() + 60
            while time.monotonic() < stop:
                time.sleep(0.01)
    finally:
        claude._disarm_deadline()
        signal.signal(signal.SIGALRM, previous)
    assert handled and len(swallowed) == 1 and isinstance(swallowed[0], StoreUnavailable)


def test_lone_utf16_surrogates_in_the_payload_are_handled(sqlite_cli: CLI, repo: Path) -> None:
    """JSON.stringify writes a string cut inside a surrogate pair as a lone "\\ud83d" escape:
    the bypass still allows (audited), an edit under a reservation is denied for that reason."""
    cli = sqlite_cli
    claim(cli, "99927", "other-session")
    data = payload("pre_tool_use_agent_bypass.json")
    raw = json.dumps(data).replace("stuck.", "stuck \\ud83d")
    assert decision(hook(cli, "pre-tool-use", raw)) is None
    (line,) = audit_lines(cli)
    assert line["kind"] == "bypass" and [t["id"] for t in line["tasks"]] == ["99927"]
    plain = hook(cli, "pre-tool-use", json.dumps(payload("pre_tool_use_agent.json")).replace(
        "backs off.", "backs off \\ud83d"))
    assert "bob:other-session" in denied(plain)

    assert reserve(cli, "other-session", "src/api/**").returncode == 0
    raw = json.dumps(edit_payload(repo, "src/api/x.py")).replace("x.py", "\\ud83d.py")
    reason = denied(hook(cli, "pre-tool-use", raw))
    assert "bob:other-session" in reason and "internal error" not in reason


def test_heartbeat_in_a_deleted_working_directory_is_one_line(sqlite_cli: CLI, tmp_path: Path) -> None:
    """A session whose folder was removed (a git worktree removed under it): no traceback."""
    gone = tmp_path / "gone"
    gone.mkdir()
    code = ("import os, subprocess, sys\n"
            "os.chdir(sys.argv[1]); os.rmdir(sys.argv[1])\n"
            "p = subprocess.run([sys.argv[2], 'hook', 'post-tool-use'], input=sys.stdin.read(),\n"
            "                   capture_output=True, text=True)\n"
            "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr); sys.exit(p.returncode)\n")
    from tests.conftest import LEASEHOLD
    env = dict(sqlite_cli.env, LEASEHOLD_DB=sqlite_cli.db, CLAUDE_CODE_SESSION_ID=SESSION)
    proc = subprocess.run([sys.executable, "-c", code, str(gone), str(LEASEHOLD)], env=env, text=True,
                          input=(PAYLOADS / "post_tool_use_bash.json").read_text(), capture_output=True,
                          timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1) and len(proc.stderr.strip().splitlines()) <= 1, proc.stderr


def test_hook_help_gives_the_exit_codes_hooks_use(sqlite_cli: CLI, tmp_path: Path) -> None:
    """A hook exits 0 (a denial is on stdout) or 1 (a non-blocking error); a ledger it cannot
    reach is 1, never the 75 the other commands use."""
    text = sqlite_cli("hook", "--help").stdout
    codes = text.split("exit codes:")[1]
    assert "75" not in codes and "non-blocking" in codes and "deny" in codes
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    unreachable = hook(sqlite_cli, "post-tool-use", payload("post_tool_use_bash.json"),
                       env={"LEASEHOLD_DB": str(blocker / "ledger.db")})
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
