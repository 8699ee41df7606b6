"""Codex CLI and Gemini CLI hooks end to end: real ``leasehold hook codex|gemini`` processes
fed the shared fixture payloads (the shapes those runtimes send), and the installer writing
their hook files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLI, FIXTURES

CODEX = FIXTURES / "codex"
GEMINI = FIXTURES / "gemini-cli"
CODEX_SESSION = "019e4fff-4afa-7291-98cd-c310411e7ec2"
GEMINI_SESSION = "4462ebfc-5f91-4ef0-9cfb-ac6e7687a66e"


@pytest.fixture(autouse=True)
def _cache_under_home(base_env: dict[str, str]) -> None:
    """Hook caches under the test's HOME; hook limits raised for a loaded machine (see
    :data:`tests.conftest.LOADED_MACHINE_HOOK_ENV`)."""
    from tests.conftest import LOADED_MACHINE_HOOK_ENV

    base_env.pop("XDG_CACHE_HOME", None)
    base_env.update(LOADED_MACHINE_HOOK_ENV)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "src" / "api").mkdir(parents=True)
    return root


def load(folder: Path, name: str, **changes: object) -> dict:
    data = json.loads((folder / name).read_text())
    for key, value in changes.items():
        if key in ("command", "file_path", "prompt", "message"):
            data.setdefault("tool_input", {})[key] = value
        else:
            data[key] = value
    return data


def run(cli: CLI, runtime: str, data: dict, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    proc = cli("hook", runtime, input=json.dumps(data), env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def answer(proc: subprocess.CompletedProcess[str]) -> dict | None:
    assert proc.returncode == 0, proc.stderr
    if not proc.stdout.strip():
        return None
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def codex_denial(proc: subprocess.CompletedProcess[str]) -> str:
    out = answer(proc)
    assert out is not None, "expected a denial"
    spec = out["hookSpecificOutput"]
    assert spec["hookEventName"] == "PreToolUse" and spec["permissionDecision"] == "deny"
    return spec["permissionDecisionReason"]


def gemini_denial(proc: subprocess.CompletedProcess[str]) -> str:
    out = answer(proc)
    assert out is not None and out["decision"] == "deny", out
    assert set(out) == {"decision", "reason"}
    return out["reason"]


def reserve(cli: CLI, session: str, pattern: str, cwd: Path) -> None:
    saved, cli.cwd = cli.cwd, cwd
    try:
        proc = cli("reserve-path", pattern, "--actor", "bob", "--session", session)
    finally:
        cli.cwd = saved
    assert proc.returncode == 0, proc.stderr


def claim(cli: CLI, task: str, session: str) -> None:
    proc = cli("claim", task, "--actor", "bob", "--session", session)
    assert proc.returncode == 0, proc.stderr


def kinds(cli: CLI, kind: str) -> list[dict]:
    return [e for e in json.loads(cli("log", "--json").stdout) if e["kind"] == kind]


# -- Codex ---------------------------------------------------------------------------------
def test_patch_files_parses_every_file_header() -> None:
    from leasehold.hooks.codex import patch_files

    patch = ("*** Begin Patch\n*** Add File: docs/new.md\n+hello\n*** Update File: src/a.py\n"
             "*** Move to: src/b.py\n@@\n-x\n+y\n*** Delete File: old/c.py\n"
             "*** Update File: src/a.py\n*** End Patch")
    assert patch_files(patch) == ["docs/new.md", "src/a.py", "src/b.py", "old/c.py"]
    assert patch_files("") == [] and patch_files("*** Begin Patch\n*** End Patch") == []


def test_patch_files_sees_headers_with_padding() -> None:
    """Codex's apply_patch parser trims each hunk header line (``lines[0].trim()`` in
    codex-rs/apply-patch/src/parser.rs), so an indented header still edits its file."""
    from leasehold.hooks.codex import patch_files

    patch = ("*** Begin Patch\n  *** Update File: src/api/routes.py\n@@\n-x\n+y\n"
             "\t*** Delete File: src/api/old.py  \n *** Add File: src/api/new.py\n+z\n*** End Patch")
    assert patch_files(patch) == ["src/api/routes.py", "src/api/old.py", "src/api/new.py"]


def test_codex_apply_patch_on_a_reserved_file_is_denied(cli: CLI, repo: Path) -> None:
    reserve(cli, "other-session", "src/api/**", repo)
    data = load(CODEX, "pre_tool_use_apply_patch.json", cwd=str(repo))
    reason = codex_denial(run(cli, "codex", data))
    assert "src/api/routes.py" in reason and "bob:other-session" in reason
    # one patch, several files: every blocked file is named, the free one is not
    patch = ("*** Begin Patch\n*** Add File: docs/x.md\n+x\n*** Update File: src/api/a.py\n@@\n-1\n+2\n"
             "*** Delete File: src/api/b.py\n*** End Patch")
    reason = codex_denial(run(cli, "codex", dict(data, tool_input={"command": patch})))
    assert "src/api/a.py" in reason and "src/api/b.py" in reason and "docs/x.md" not in reason
    # the holder's own session edits freely; a patch of free files is allowed
    assert answer(run(cli, "codex", dict(data, session_id="other-session"))) is None
    free = "*** Begin Patch\n*** Update File: docs/x.md\n@@\n-1\n+2\n*** End Patch"
    assert answer(run(cli, "codex", dict(data, tool_input={"command": free}))) is None


def test_codex_spawn_agent_is_gated_like_agent_and_bash_is_not(sqlite_cli: CLI, repo: Path) -> None:
    claim(sqlite_cli, "99927", "other-session")
    base = load(CODEX, "pre_tool_use_bash.json", cwd=str(repo))
    spawn = dict(base, tool_name="spawn_agent",
                 tool_input={"message": "Work on MC #99927: fix the retry loop", "agent_type": "worker"})
    reason = codex_denial(run(sqlite_cli, "codex", spawn))
    assert "task 99927 " in reason and "bob:other-session" in reason
    spawn["tool_input"] = {"message": "Fix the lint warning on line 99927 of utils.py"}
    assert answer(run(sqlite_cli, "codex", spawn)) is None
    bash = dict(base, tool_input={"command": "leasehold release 99927"})
    assert answer(run(sqlite_cli, "codex", bash)) is None


def test_codex_thread_id_makes_the_agents_claims_match_its_hooks(sqlite_cli: CLI, repo: Path) -> None:
    proc = sqlite_cli("claim", "99927", "--actor", "codex", env={"CODEX_THREAD_ID": CODEX_SESSION})
    assert proc.returncode == 0, proc.stderr
    status = json.loads(sqlite_cli("status", "99927", "--json").stdout)
    assert status["lease_holder"] == f"codex:{CODEX_SESSION}"
    spawn = dict(load(CODEX, "pre_tool_use_bash.json", cwd=str(repo)), tool_name="spawn_agent",
                 tool_input={"message": "Continue task 99927"})
    assert answer(run(sqlite_cli, "codex", spawn)) is None  # its own lease
    assert "99927" in codex_denial(run(sqlite_cli, "codex", dict(spawn, session_id="another-thread")))


def test_codex_stop_and_post_tool_use_heartbeat_and_session_start_explains_expiry(
        sqlite_cli: CLI, repo: Path) -> None:
    claim(sqlite_cli, "99927", CODEX_SESSION)
    stop = run(sqlite_cli, "codex", load(CODEX, "stop.json", cwd=str(repo)))
    assert stop.returncode == 0 and stop.stdout == ""  # Stop: empty stdout is success
    assert [e["task_id"] for e in kinds(sqlite_cli, "extended")] == ["99927"]
    post = run(sqlite_cli, "codex", load(CODEX, "post_tool_use_bash.json", cwd=str(repo)))
    assert post.returncode == 0 and post.stdout == ""
    out = answer(run(sqlite_cli, "codex", load(CODEX, "session_start.json", cwd=str(repo))))
    spec = out["hookSpecificOutput"]
    assert spec["hookEventName"] == "SessionStart"
    assert "released when the session ends" in spec["additionalContext"]
    assert "99927" in spec["additionalContext"]


def test_an_older_codex_install_without_session_end_is_reported(sqlite_cli: CLI, repo: Path) -> None:
    sqlite_cli.cwd = repo
    assert sqlite_cli("hooks", "install", "--runtime", "codex").returncode == 0
    path = repo / ".codex" / "hooks.json"
    data = json.loads(path.read_text())
    del data["hooks"]["SessionEnd"]
    path.write_text(json.dumps(data))
    shown = [i for i in json.loads(sqlite_cli("hooks", "show", "--json").stdout)
             if i["runtime"] == "codex" and i["scope"] == "project"][0]
    # the hooks it has can run: reported as incomplete, never as "cannot run"
    assert shown["missing"] == ["SessionEnd"], shown
    assert not any("SessionEnd" in p for p in shown["problems"]), shown
    text = sqlite_cli("hooks", "show", "--runtime", "codex")
    assert text.returncode == 1 and "INCOMPLETE: SessionEnd not installed" in text.stdout, text.stdout
    assert "CANNOT RUN: SessionEnd" not in text.stdout, text.stdout
    doctor = json.loads(sqlite_cli("doctor", "--json").stdout)
    check = [c for c in doctor["checks"] if c["name"] == "hooks:codex:project"][0]
    assert check["ok"] is False and "SessionEnd not installed" in check["detail"], check
    assert sqlite_cli("hooks", "install", "--runtime", "codex").returncode == 0
    assert "SessionEnd" in json.loads(path.read_text())["hooks"]


def test_codex_session_end_releases_this_sessions_leases_only(sqlite_cli: CLI, repo: Path) -> None:
    claim(sqlite_cli, "99927", CODEX_SESSION)
    claim(sqlite_cli, "sync", "another-thread")
    # Codex's SessionEnd payload: the Stop fields without the turn's, plus a reason
    end = load(CODEX, "stop.json", cwd=str(repo), hook_event_name="SessionEnd", reason="other")
    for key in ("turn_id", "stop_hook_active", "last_assistant_message"):
        end.pop(key)
    proc = run(sqlite_cli, "codex", end)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    assert json.loads(sqlite_cli("status", "99927", "--json").stdout)["lease_holder"] is None
    assert json.loads(sqlite_cli("status", "sync", "--json").stdout)["lease_holder"] is not None


def test_codex_bad_payload_is_a_non_blocking_error(sqlite_cli: CLI) -> None:
    proc = sqlite_cli("hook", "codex", input="not json")
    assert proc.returncode == 1 and proc.stdout == "" and "not JSON" in proc.stderr


@pytest.mark.parametrize("runtime,name,change,field", [
    ("codex", "pre_tool_use_apply_patch.json", {"command": 5}, "tool_input.command"),
    ("codex", "pre_tool_use_apply_patch.json", {"command": ["*** Update File: src/api/routes.py"]},
     "tool_input.command"),
    ("codex", "pre_tool_use_apply_patch.json", {"hook_event_name": 5}, "hook_event_name"),
    ("codex", "pre_tool_use_apply_patch.json", {"tool_input": {}}, "tool_input.command"),
    ("codex", "pre_tool_use_apply_patch.json", {"tool_name": ["apply_patch"]}, "tool_name"),
    ("gemini", "before_tool_write_file.json", {"file_path": ["src/api/routes.py"]}, "tool_input.file_path"),
    ("gemini", "before_tool_replace.json", {"file_path": 7}, "tool_input.file_path"),
    ("gemini", "before_tool_replace.json", {"tool_input": {"old_string": "a"}}, "tool_input.file_path"),
    ("gemini", "before_tool_write_file.json", {"hook_event_name": 5}, "hook_event_name"),
    ("gemini", "before_tool_write_file.json", {"hook_event_name": None}, "hook_event_name"),
    ("gemini", "before_tool_write_file.json", {"tool_name": "invoke_agent", "tool_input": {"prompt": 5}},
     "tool_input.prompt"),
])
def test_wrong_field_types_are_an_error_never_a_silent_allow(
        sqlite_cli: CLI, repo: Path, runtime: str, name: str, change: dict, field: str) -> None:
    """A payload the gate cannot read is the README's non-blocking error: exit 1 and one line
    naming the field (the runtime shows it), never exit 0 as if the call had been checked."""
    reserve(sqlite_cli, "other-session", "src/api/**", repo)
    data = load(CODEX if runtime == "codex" else GEMINI, name, cwd=str(repo), **change)
    proc = run(sqlite_cli, runtime, data)
    assert proc.returncode == 1 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and field in proc.stderr, proc.stderr


def test_a_huge_prompt_is_denied_as_too_long_to_read_not_as_a_ledger_timeout(sqlite_cli: CLI, repo: Path) -> None:
    claim(sqlite_cli, "CMB-0036", "other-session")
    filler = "Summarise the logs below without touching anything. " * 24_000  # 1.2 MB, no reference
    data = load(GEMINI, "before_tool_write_file.json", cwd=str(repo))
    data.update(tool_name="invoke_agent", tool_input={"agent_name": "x", "prompt": filler})
    reason = gemini_denial(run(sqlite_cli, "gemini", data))
    assert "characters long" in reason and "cannot tell" in reason and "ledger" not in reason, reason
    data["tool_input"]["prompt"] = filler[:100_000] + " Then fix CMB-0036."
    assert "CMB-0036" in gemini_denial(run(sqlite_cli, "gemini", data))  # a long one is still read


# -- Gemini CLI ----------------------------------------------------------------------------
def test_gemini_write_file_and_replace_on_reserved_files_are_denied(cli: CLI, repo: Path) -> None:
    reserve(cli, "other-session", "src/api/**", repo)
    for name in ("before_tool_write_file.json", "before_tool_replace.json"):
        data = load(GEMINI, name, cwd=str(repo))
        rel = data["tool_input"]["file_path"].replace("/home/dev/repo/", "")
        data["tool_input"]["file_path"] = rel  # the model may send a relative path
        reason = gemini_denial(run(cli, "gemini", data))
        assert rel in reason and "bob:other-session" in reason
        data["tool_input"]["file_path"] = str(repo / rel)  # and an absolute one
        assert rel in gemini_denial(run(cli, "gemini", data))
        assert answer(run(cli, "gemini", dict(data, session_id="other-session"))) is None
    free = load(GEMINI, "before_tool_write_file.json", cwd=str(repo), file_path="docs/new.md")
    assert answer(run(cli, "gemini", free)) is None


def test_gemini_invoke_agent_is_gated(sqlite_cli: CLI, repo: Path) -> None:
    claim(sqlite_cli, "CMB-0036", "other-session")
    data = load(GEMINI, "before_tool_write_file.json", cwd=str(repo))
    data.update(tool_name="invoke_agent",
                tool_input={"agent_name": "codebase_investigator", "prompt": "Fix CMB-0036 drift"})
    assert "CMB-0036" in gemini_denial(run(sqlite_cli, "gemini", data))
    data["tool_input"]["prompt"] = "Summarise the drift check"
    assert answer(run(sqlite_cli, "gemini", data)) is None


def test_gemini_enforcement_off_allows_with_a_system_message(sqlite_cli: CLI, repo: Path) -> None:
    reserve(sqlite_cli, "other-session", "src/api/**", repo)
    data = load(GEMINI, "before_tool_replace.json", cwd=str(repo), file_path="src/api/routes.py")
    out = answer(run(sqlite_cli, "gemini", data, env={"LEASEHOLD_ENFORCE": "0"}))
    assert set(out) == {"systemMessage"} and "would have been denied" in out["systemMessage"]


def test_gemini_session_lifecycle(sqlite_cli: CLI, repo: Path) -> None:
    proc = sqlite_cli("claim", "42", "--actor", "gem", "--session", GEMINI_SESSION)
    assert proc.returncode == 0
    run(sqlite_cli, "gemini", load(GEMINI, "after_tool_shell.json", cwd=str(repo)))
    assert [e["task_id"] for e in kinds(sqlite_cli, "extended")] == ["42"]
    out = answer(run(sqlite_cli, "gemini", load(GEMINI, "session_start.json", cwd=str(repo))))
    context = out["hookSpecificOutput"]["additionalContext"]
    assert f"--session {GEMINI_SESSION}" in context and "42" in context
    # /clear: SessionEnd (clear) releases, then SessionStart (clear) with a new id tells
    end = run(sqlite_cli, "gemini", load(GEMINI, "session_end.json", cwd=str(repo), reason="clear"))
    assert end.returncode == 0 and end.stdout == ""
    assert json.loads(sqlite_cli("status", "42", "--json").stdout)["lease_holder"] is None
    start = load(GEMINI, "session_start.json", cwd=str(repo), source="clear",
                 session_id="5a1b0c2d-0000-4000-8000-000000000001")
    context = answer(run(sqlite_cli, "gemini", start))["hookSpecificOutput"]["additionalContext"]
    assert "task 42" in context and "claim them again" in context and "leasehold claim 42" in context
    # told once
    context = answer(run(sqlite_cli, "gemini", start))["hookSpecificOutput"]["additionalContext"]
    assert "claim them again" not in context


def test_gemini_session_id_from_the_environment(sqlite_cli: CLI) -> None:
    proc = sqlite_cli("claim", "sync", "--actor", "gem", env={"GEMINI_SESSION_ID": GEMINI_SESSION})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(sqlite_cli("status", "sync", "--json").stdout)["lease_holder"] == f"gem:{GEMINI_SESSION}"


# -- the installer -------------------------------------------------------------------------
def _commands(data: dict) -> set[str]:
    return {h["command"] for groups in data["hooks"].values() for g in groups for h in g["hooks"]}


def test_install_codex_and_gemini_keep_foreign_entries(sqlite_cli: CLI, repo: Path) -> None:
    sqlite_cli.cwd = repo / "src"
    codex_file = repo / ".codex" / "hooks.json"
    codex_file.parent.mkdir()
    foreign = json.loads((CODEX / "hooks.json").read_text())
    foreign["hooks"]["PreToolUse"][0]["hooks"][0]["command"] = "/opt/policy/check.sh"
    del foreign["hooks"]["SessionStart"], foreign["hooks"]["PostToolUse"], foreign["hooks"]["Stop"]
    codex_file.write_text(json.dumps(foreign))
    proc = sqlite_cli("hooks", "install", "--runtime", "codex")
    assert proc.returncode == 0, proc.stderr
    assert "/hooks" in proc.stdout  # the trust step is said
    data = json.loads(codex_file.read_text())
    assert data["hooks"]["PreToolUse"][0] == foreign["hooks"]["PreToolUse"][0]
    ours = data["hooks"]["PreToolUse"][1]
    assert ours["matcher"] == "apply_patch|spawn_agent"
    cmd = ours["hooks"][0]["command"]
    exe, _, rest = cmd.partition(" ")
    assert Path(exe).is_absolute() and Path(exe).name == "leasehold" and rest == "hook codex"
    assert set(data["hooks"]) == {"SessionStart", "PreToolUse", "PostToolUse", "Stop", "SessionEnd"}
    assert all(h["timeout"] == (3 if event == "SessionEnd" else 10)
               for event, groups in data["hooks"].items() for g in groups for h in g["hooks"]
               if h["command"] == cmd)
    again = sqlite_cli("hooks", "install", "--runtime", "codex")
    assert "already installed" in again.stdout
    assert sqlite_cli("hooks", "uninstall", "--runtime", "codex").returncode == 0
    assert json.loads(codex_file.read_text()) == foreign

    gemini_file = repo / ".gemini" / "settings.json"
    gemini_file.parent.mkdir()
    sample = json.loads((GEMINI / "settings.json").read_text())
    sample["hooks"] = {"BeforeTool": [{"matcher": "run_shell_command", "hooks": [
        {"name": "shell-guard", "type": "command", "command": "/opt/guard.sh", "timeout": 3000}]}]}
    sample["theme"] = "Dracula"
    gemini_file.write_text(json.dumps(sample))
    assert sqlite_cli("hooks", "install", "--runtime", "gemini").returncode == 0
    data = json.loads(gemini_file.read_text())
    assert data["theme"] == "Dracula" and data["hooks"]["BeforeTool"][0] == sample["hooks"]["BeforeTool"][0]
    ours = data["hooks"]["BeforeTool"][1]
    assert ours["matcher"] == "^(write_file|replace|invoke_agent|delegate_to_agent)$"
    assert ours["hooks"][0]["timeout"] >= 1000  # milliseconds
    assert ours["hooks"][0]["command"].endswith("leasehold hook gemini")
    assert set(data["hooks"]) == {"SessionStart", "BeforeTool", "AfterTool", "SessionEnd"}
    assert sqlite_cli("hooks", "uninstall", "--runtime", "gemini").returncode == 0
    assert json.loads(gemini_file.read_text()) == sample


def test_install_upgrades_a_bare_command_and_show_reports_what_cannot_run(
        sqlite_cli: CLI, repo: Path) -> None:
    sqlite_cli.cwd = repo
    settings = repo / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"hooks": {"SessionEnd": [{"hooks": [
        {"type": "command", "command": "leasehold hook session-end", "timeout": 2}]}]}}))
    # a bare 'leasehold' that is not on the runtime's PATH cannot run
    env = {"PATH": "/usr/bin:/bin"}
    shown = sqlite_cli("hooks", "show", "--runtime", "claude", env=env)
    assert shown.returncode == 1 and "CANNOT RUN" in shown.stdout and "not on PATH" in shown.stdout
    proc = sqlite_cli("hooks", "install")
    assert proc.returncode == 0 and "SessionEnd" in proc.stdout
    data = json.loads(settings.read_text())
    assert len(data["hooks"]["SessionEnd"][0]["hooks"]) == 1
    assert Path(data["hooks"]["SessionEnd"][0]["hooks"][0]["command"].split()[0]).is_absolute()
    assert sqlite_cli("hooks", "show", "--runtime", "claude", env=env).returncode == 0
    # disabled hooks
    data["disableAllHooks"] = True
    settings.write_text(json.dumps(data))
    shown = sqlite_cli("hooks", "show", "--runtime", "claude", "--json")
    assert shown.returncode == 1
    (project,) = [i for i in json.loads(shown.stdout) if i["scope"] == "project"]
    assert any("disableAllHooks" in p for p in project["problems"])
    # a program that does not exist any more
    del data["disableAllHooks"]
    for groups in data["hooks"].values():
        for h in groups[0]["hooks"]:
            h["command"] = h["command"].replace(h["command"].split()[0], "/nonexistent/leasehold")
    settings.write_text(json.dumps(data))
    shown = sqlite_cli("hooks", "show", "--runtime", "claude")
    assert shown.returncode == 1 and "/nonexistent/leasehold does not exist" in shown.stdout


def test_show_reports_codex_and_gemini_switches(sqlite_cli: CLI, repo: Path) -> None:
    sqlite_cli.cwd = repo
    home = Path(sqlite_cli.env["HOME"])
    for runtime in ("codex", "gemini"):
        assert sqlite_cli("hooks", "install", "--runtime", runtime, "--scope", "user").returncode == 0
    (home / ".codex" / "config.toml").write_text("[features]\nhooks = false\n")
    settings = home / ".gemini" / "settings.json"
    data = json.loads(settings.read_text())
    data["hooksConfig"] = {"enabled": False, "disabled": ["leasehold-before-tool"]}
    settings.write_text(json.dumps(data))
    shown = sqlite_cli("hooks", "show", "--json")
    assert shown.returncode == 1
    info = {(i["runtime"], i["scope"]): i for i in json.loads(shown.stdout)}
    assert any("[features] hooks = false" in p for p in info["codex", "user"]["problems"])
    problems = " ".join(info["gemini", "user"]["problems"])
    assert "hooksConfig.enabled = false" in problems and "leasehold-before-tool" in problems


# -- Claude Code: SessionStart after /clear or /resume ------------------------------------
CLAUDE = FIXTURES / "claude-code"


@pytest.mark.parametrize("source", ["clear", "resume"])
def test_claude_session_start_after_clear_or_resume_names_the_released_leases(
        sqlite_cli: CLI, repo: Path, source: str) -> None:
    ended = json.loads((CLAUDE / "session_end.json").read_text())
    ended.update(cwd=str(repo), reason=source)
    old = ended["session_id"]
    claim(sqlite_cli, "99927", old)
    reserve(sqlite_cli, old, "src/api/**", repo)
    proc = sqlite_cli("hook", "session-end", input=json.dumps(ended))
    assert proc.returncode == 0 and "released 1 lease(s)" in proc.stderr
    start = json.loads((CLAUDE / "session_start.json").read_text())
    start.update(cwd=str(repo), source=source,
                 session_id=old if source == "resume" else "11111111-2222-4333-8444-555555555555")
    out = answer(sqlite_cli("hook", "session-start", input=json.dumps(start)))
    context = out["hookSpecificOutput"]["additionalContext"]
    assert "task 99927" in context and "path 'src/api/**'" in context
    assert "leasehold claim 99927" in context and "claim them again" in context
    # a plain start says nothing of it
    start["source"] = "startup"
    claim(sqlite_cli, "42", old)
    sqlite_cli("hook", "session-end", input=json.dumps(ended))
    out = answer(sqlite_cli("hook", "session-start", input=json.dumps(start)))
    assert "claim them again" not in out["hookSpecificOutput"]["additionalContext"]


def test_show_reports_an_untrusted_codex_project_until_it_is_trusted(sqlite_cli: CLI, repo: Path) -> None:
    sqlite_cli.cwd = repo
    assert sqlite_cli("hooks", "install", "--runtime", "codex").returncode == 0
    shown = sqlite_cli("hooks", "show", "--runtime", "codex")
    assert shown.returncode == 1 and "is not trusted by Codex" in shown.stdout
    config = Path(sqlite_cli.env["HOME"]) / ".codex" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[projects."{repo}/"]\ntrust_level = "trusted"\n')
    shown = sqlite_cli("hooks", "show", "--runtime", "codex")
    assert shown.returncode == 0 and "trust it" in shown.stdout  # the per-hook trust reminder stays
