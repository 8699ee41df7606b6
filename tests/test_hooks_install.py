"""``leasehold hooks install|uninstall|show`` on real settings files with foreign hooks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.conftest import CLI

FOREIGN = {
    "model": "sonnet",
    "permissions": {"allow": ["Bash(pytest:*)"], "deny": []},
    "hooks": {
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "~/bin/guard.sh", "timeout": 5}]},
            {"matcher": "Edit|Write", "hooks": [{"type": "command", "command": "fmt-check"}]},
        ],
        "PostToolUse": [
            {"matcher": "Edit|Write|MultiEdit|NotebookEdit",
             "hooks": [{"type": "command", "command": "interstat record"}]},
        ],
        "Stop": [{"hooks": [{"type": "command", "command": "auto-stop-actions.sh"}]}],
    },
    "env": {"FOO": "1"},
}


@pytest.fixture
def project(sqlite_cli: CLI) -> Path:
    root = sqlite_cli.cwd / "proj"
    (root / ".git").mkdir(parents=True)
    (root / "sub").mkdir()
    sqlite_cli.cwd = root / "sub"  # run from a sub-folder: the project root is found via .git
    return root


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def leasehold_commands(data: dict) -> dict[str, list[str]]:
    """leasehold's commands per event, the program's folder dropped (it is absolute)."""
    import os
    import shlex

    out = {}
    for event, groups in data.get("hooks", {}).items():
        found = []
        for h in (h for g in groups for h in g["hooks"]):
            words = shlex.split(h["command"])
            if os.path.basename(words[0]) == "leasehold":
                assert os.path.isabs(words[0]) and os.access(words[0], os.X_OK), h["command"]
                found.append(" ".join(["leasehold", *words[1:]]))
        out[event] = found
    return out


@pytest.mark.parametrize("scope, rel", [("project", "proj/.claude/settings.json"),
                                        ("local", "proj/.claude/settings.local.json")])
def test_install_keeps_foreign_hooks_and_uninstall_restores_the_file(
        sqlite_cli: CLI, project: Path, scope: str, rel: str) -> None:
    path = project.parent / rel
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(FOREIGN, indent=4))
    proc = sqlite_cli("hooks", "install", "--scope", scope)
    assert proc.returncode == 0, proc.stderr
    data = load(path)
    assert leasehold_commands(data) == {
        "PreToolUse": ["leasehold hook pre-tool-use"],
        "PostToolUse": ["leasehold hook post-tool-use"],
        "Stop": [],
        "SessionStart": ["leasehold hook session-start"],
        "SessionEnd": ["leasehold hook session-end"],
    }
    # foreign groups untouched and in their order, ours appended after them
    assert data["hooks"]["PreToolUse"][:2] == FOREIGN["hooks"]["PreToolUse"]
    assert data["hooks"]["PreToolUse"][2]["matcher"] == "^(Agent|Task|Edit|Write|MultiEdit|NotebookEdit)$"
    post = data["hooks"]["PostToolUse"][1]
    assert post["matcher"] == "^(Bash|PowerShell|Edit|Write|MultiEdit|NotebookEdit)$" and post["hooks"][0]["async"] is True
    assert {k: v for k, v in data.items() if k != "hooks"} == {k: v for k, v in FOREIGN.items() if k != "hooks"}
    # idempotent
    again = sqlite_cli("hooks", "install", "--scope", scope, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["events"] == []
    assert load(path) == data
    # uninstall: JSON-equal to the original, created event lists gone too
    out = sqlite_cli("hooks", "uninstall", "--scope", scope)
    assert out.returncode == 0, out.stderr
    assert load(path) == FOREIGN
    assert sqlite_cli("hooks", "uninstall", "--scope", scope).returncode == 0
    assert load(path) == FOREIGN


def test_foreign_hooks_added_after_install_survive_uninstall(sqlite_cli: CLI, project: Path) -> None:
    path = project / ".claude" / "settings.json"
    assert sqlite_cli("hooks", "install").returncode == 0
    data = load(path)
    mine = {"matcher": "Bash", "hooks": [{"type": "command", "command": "late-hook"}]}
    data["hooks"]["PreToolUse"].append(mine)
    data["hooks"]["SessionEnd"][0]["hooks"].append({"type": "command", "command": "sync.sh"})
    path.write_text(json.dumps(data))
    assert sqlite_cli("hooks", "uninstall").returncode == 0
    assert load(path) == {"hooks": {"PreToolUse": [mine],
                                    "SessionEnd": [{"hooks": [{"type": "command", "command": "sync.sh"}]}]}}


def test_install_into_a_missing_file_and_uninstall_removes_it(sqlite_cli: CLI, project: Path) -> None:
    path = project / ".claude" / "settings.json"
    assert sqlite_cli("hooks", "install").returncode == 0
    assert set(load(path)["hooks"]) == {"PreToolUse", "PostToolUse", "SessionStart", "SessionEnd"}
    assert sqlite_cli("hooks", "uninstall").returncode == 0
    assert not path.exists()


def test_user_scope_writes_to_home(sqlite_cli: CLI, project: Path) -> None:
    home = Path(sqlite_cli.env["HOME"])
    assert sqlite_cli("hooks", "install", "--scope", "user").returncode == 0
    assert "PreToolUse" in load(home / ".claude" / "settings.json")["hooks"]
    shown = json.loads(sqlite_cli("hooks", "show", "--json").stdout)
    by_scope = {s["scope"]: s for s in shown if s["runtime"] == "claude"}
    assert by_scope["user"]["installed"] == ["PreToolUse", "PostToolUse", "SessionStart", "SessionEnd"]
    assert by_scope["project"]["exists"] is False and by_scope["project"]["installed"] == []
    text = sqlite_cli("hooks", "show").stdout
    assert "installed: PreToolUse" in text


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"hooks": []}', '{"hooks": {"PreToolUse": {}}}',
                                     '{"hooks": null}'])
def test_invalid_settings_are_refused_untouched(sqlite_cli: CLI, project: Path, content: str) -> None:
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(content)
    for action in ("install", "uninstall"):
        proc = sqlite_cli("hooks", action)
        assert proc.returncode == 2, proc.stderr
        assert "nothing was changed" in proc.stderr and "Traceback" not in proc.stderr
        assert path.read_text() == content


def test_show_counts_foreign_handlers(sqlite_cli: CLI, project: Path) -> None:
    path = project / ".claude" / "settings.local.json"
    path.parent.mkdir()
    path.write_text(json.dumps(copy.deepcopy(FOREIGN)))
    assert sqlite_cli("hooks", "install", "--scope", "local").returncode == 0
    (local,) = [s for s in json.loads(sqlite_cli("hooks", "show", "--json").stdout) if s["scope"] == "local"]
    assert local["other_handlers"] == {"PreToolUse": 2, "PostToolUse": 1, "Stop": 1}
    assert local["installed"] == ["PreToolUse", "PostToolUse", "SessionStart", "SessionEnd"]


def test_symlinked_settings_file_is_updated_through_the_link(sqlite_cli: CLI, project: Path, tmp_path: Path) -> None:
    """~/.claude/settings.json is often a link into a dotfiles repository: the link stays."""
    target = tmp_path / "dotfiles" / "claude-settings.json"
    target.parent.mkdir()
    target.write_text(json.dumps({"model": "opus"}))
    link = Path(sqlite_cli.env["HOME"]) / ".claude" / "settings.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    assert sqlite_cli("hooks", "install", "--scope", "user").returncode == 0
    assert link.is_symlink()
    assert "PreToolUse" in load(target)["hooks"]
    assert sqlite_cli("hooks", "uninstall", "--scope", "user").returncode == 0
    assert link.is_symlink() and load(target) == {"model": "opus"}


def test_settings_file_keeps_its_permissions(sqlite_cli: CLI, project: Path) -> None:
    """settings.local.json may hold secrets in "env": a private file stays private."""
    path = project / ".claude" / "settings.local.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"env": {"API_TOKEN": "secret"}}))
    path.chmod(0o600)
    assert sqlite_cli("hooks", "install", "--scope", "local").returncode == 0
    assert path.stat().st_mode & 0o777 == 0o600


def test_read_only_settings_file_is_refused_untouched(sqlite_cli: CLI, project: Path) -> None:
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text('{"model": "opus"}')
    path.chmod(0o444)
    proc = sqlite_cli("hooks", "install")
    assert proc.returncode == 2, proc.stderr
    assert "read-only" in proc.stderr and "nothing was changed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert path.read_text() == '{"model": "opus"}' and path.stat().st_mode & 0o777 == 0o444
    assert list(path.parent.iterdir()) == [path]


# -- bytes kept: only leasehold's entries change -------------------------------------------------
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
#: Real-shaped files in the styles tools and people write: Claude Code's own 2-space layout with
#: non-ASCII text, a 4-space file with compact arrays, a tab-indented one, one with \u escapes.
CLAUDE_STYLES = [
    json.dumps(FOREIGN | {"statusLine": {"type": "command", "command": "echo ✓ déjà"}},
               indent=2, ensure_ascii=False) + "\n",
    json.dumps(FOREIGN, indent=4).replace('[\n                "Bash(pytest:*)"\n            ]',
                                          '["Bash(pytest:*)"]') + "\n",
    json.dumps(FOREIGN, indent="\t") + "\n",
    json.dumps(FOREIGN | {"note": "naïve ✓"}, indent=2) + "\n",  # ensure_ascii: \u00ef escapes
    '{"model": "sonnet", "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "x"}]}]}}',
]


def _without_leasehold_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("original", CLAUDE_STYLES)
def test_install_then_uninstall_gives_back_the_same_bytes(sqlite_cli: CLI, project: Path, original: str) -> None:
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(original)
    assert sqlite_cli("hooks", "install").returncode == 0
    installed = path.read_text()
    assert leasehold_commands(load(path))
    assert ("\\u00ef" in installed) == ("\\u00ef" in original)  # escapes stay escapes
    # every original line is still there, in order, byte for byte (indentation included)
    lines = iter(installed.splitlines())
    for line in original.splitlines() if "\n" in original.strip() else ():
        if line.rstrip().rstrip(",") in ("]", "}", "},", "],"):  # a closing line may gain a comma
            continue
        assert any(other == line or other == line + "," or other.rstrip(",") == line.rstrip(",")
                   for other in lines), (line, installed)
    if "\n" in original.strip():
        unit = "\t" if "\n\t" in original else "    " if original.split("\n", 2)[1].startswith("    ") else "  "
        for line in installed.splitlines():
            indent = line[:len(line) - len(line.lstrip())]
            assert indent == unit * (len(indent) // len(unit)), (repr(line), unit)
    before = path.stat().st_mtime_ns
    assert sqlite_cli("hooks", "install").returncode == 0  # nothing to do: not even rewritten
    assert path.read_text() == installed and path.stat().st_mtime_ns == before
    assert sqlite_cli("hooks", "uninstall").returncode == 0
    assert path.read_text() == original


@pytest.mark.parametrize("runtime,fixture,target", [
    ("gemini", SHARED / "gemini-cli" / "settings.json", Path(".gemini") / "settings.json"),
    ("codex", SHARED / "codex" / "hooks.json", Path(".codex") / "hooks.json"),
])
def test_fixture_files_change_only_in_leaseholds_commands(sqlite_cli: CLI, project: Path, runtime: str,
                                                          fixture: Path, target: Path) -> None:
    """The shared fixtures' files (with hooks of their own) gain leasehold's entries as pure
    additions, and uninstall gives the original bytes back."""
    import difflib

    if not fixture.exists():
        pytest.skip("shared fixtures not present")
    path = project / target
    path.parent.mkdir()
    original = fixture.read_text()
    path.write_text(original)
    assert sqlite_cli("hooks", "install", "--runtime", runtime).returncode == 0
    changed = [line for line in difflib.ndiff(original.splitlines(), path.read_text().splitlines())
               if line[:2] in ("- ", "+ ")]
    removed = [line for line in changed if line.startswith("- ")]
    # at most a closing bracket line gains its comma
    assert changed and all(line.rstrip().endswith(("}", "]")) for line in removed), removed
    assert sqlite_cli("hooks", "uninstall", "--runtime", runtime).returncode == 0
    assert path.read_text() == original


GEMINI_WITH_COMMENTS = """{
  // Gemini CLI reads this file through strip-json-comments
  "general": {
    "vimMode": true /* set by hand */
  },
  "hooks": {
    /* the team's formatter */
    "AfterTool": [
      {
        "matcher": "write_file",
        "hooks": [{"name": "fmt", "type": "command", "command": "prettier --write"}]
      }
    ]
  }
}
"""


def test_gemini_settings_with_comments_are_read_and_their_comments_kept(sqlite_cli: CLI, project: Path) -> None:
    path = project / ".gemini" / "settings.json"
    path.parent.mkdir()
    path.write_text(GEMINI_WITH_COMMENTS)
    proc = sqlite_cli("hooks", "install", "--runtime", "gemini")
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    for comment in ("// Gemini CLI reads this file through strip-json-comments", "/* set by hand */",
                    "/* the team's formatter */"):
        assert comment in text
    import json5

    data = json5.loads(text)
    assert [h["name"] for g in data["hooks"]["AfterTool"] for h in g["hooks"]] == ["fmt", "leasehold-after-tool"]
    assert {"SessionStart", "BeforeTool", "SessionEnd"} <= set(data["hooks"])
    shown = json.loads(sqlite_cli("hooks", "show", "--json").stdout)
    gemini = [r for r in shown if r["runtime"] == "gemini" and r["scope"] == "project"][0]
    assert gemini["error"] is None and len(gemini["installed"]) == 4
    assert sqlite_cli("hooks", "uninstall", "--runtime", "gemini").returncode == 0
    assert path.read_text() == GEMINI_WITH_COMMENTS
    # Claude Code's file must stay plain JSON: a comment there is refused, naming the file
    claude = project / ".claude" / "settings.json"
    claude.parent.mkdir()
    claude.write_text('{\n  // no\n  "model": "sonnet"\n}\n')
    refused = sqlite_cli("hooks", "install")
    assert refused.returncode == 2 and "not valid JSON" in refused.stderr


# -- awkward but valid files: comments near commas, escapes, CRLF, comment-only files ---------
@pytest.mark.parametrize("original", [
    # a comment holding a comma between the last group and its trailing comma
    '{\n  "hooks": {\n    "BeforeTool": [\n      {"hooks": [{"type": "command", "command": "echo"}]} // a, b\n'
    '      ,\n    ]\n  }\n}\n',
    # a file with nothing but a comment: the comment survives install and uninstall
    '{ // only a comment\n}\n',
    '{\n  "hooks": {\n    // nothing yet\n  }\n}\n',
])
def test_gemini_comments_are_never_dropped(sqlite_cli: CLI, project: Path, original: str) -> None:
    path = project / ".gemini" / "settings.json"
    path.parent.mkdir()
    path.write_text(original)
    proc = sqlite_cli("hooks", "install", "--runtime", "gemini")
    assert proc.returncode == 0, proc.stderr
    comment = original[original.index("//"):].split("\n", 1)[0]
    assert comment in path.read_text()
    assert sqlite_cli("hooks", "uninstall", "--runtime", "gemini").returncode == 0
    assert path.exists() and path.read_text() == original


def test_plain_json_gemini_file_keeps_its_surrogate_pair_escapes(sqlite_cli: CLI, project: Path) -> None:
    path = project / ".gemini" / "settings.json"
    path.parent.mkdir()
    original = '{"ui": {"theme": "\\u00e9 \\ud83d\\ude00"}}\n'
    path.write_text(original)
    assert sqlite_cli("hooks", "install", "--runtime", "gemini").returncode == 0
    assert path.read_text().startswith('{"ui": {"theme": "\\u00e9 \\ud83d\\ude00"}, "hooks": ')
    assert sqlite_cli("hooks", "uninstall", "--runtime", "gemini").returncode == 0
    assert path.read_text() == original


@pytest.mark.parametrize("runtime,target", [("claude", Path(".claude") / "settings.json"),
                                            ("gemini", Path(".gemini") / "settings.json")])
def test_crlf_file_gets_crlf_lines(sqlite_cli: CLI, project: Path, runtime: str, target: Path) -> None:
    path = project / target
    path.parent.mkdir()
    original = b'{\r\n  "model": "x",\r\n  "hooks": {\r\n    "Stop": [{"hooks": []}]\r\n  }\r\n}\r\n'
    path.write_bytes(original)
    assert sqlite_cli("hooks", "install", "--runtime", runtime).returncode == 0
    installed = path.read_bytes()
    assert installed.count(b"\n") == installed.count(b"\r\n") > 10, installed
    assert sqlite_cli("hooks", "uninstall", "--runtime", runtime).returncode == 0
    assert path.read_bytes() == original


@pytest.mark.parametrize("runtime,target,original", [
    ("claude", Path(".claude") / "settings.json",
     '{"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "mine"}]}]}, "hooks": {}}\n'),
    ("claude", Path(".claude") / "settings.json",
     '{"hooks": {"PreToolUse": [], "PreToolUse": [{"hooks": [{"type": "command", "command": "x"}]}]}}\n'),
    ("gemini", Path(".gemini") / "settings.json",
     '{\n  // c\n  "hooks": {"BeforeTool": []},\n  "hooks": {}\n}\n'),
])
def test_a_file_holding_a_key_leasehold_edits_twice_is_refused_untouched(
        sqlite_cli: CLI, project: Path, runtime: str, target: Path, original: str) -> None:
    """Which duplicate counts differs between JSON readers; editing one could silently drop or
    revive the other (an uninstall deleted such a file whole)."""
    path = project / target
    path.parent.mkdir()
    path.write_text(original)
    for action in ("install", "uninstall"):
        proc = sqlite_cli("hooks", action, "--runtime", runtime)
        assert proc.returncode == 2 and "twice" in proc.stderr, (action, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
        assert path.read_text() == original


@pytest.mark.parametrize("plant", ["dev-zero", "fifo", "huge"])
@pytest.mark.parametrize("runtime,target", [("claude", Path(".claude") / "settings.json"),
                                            ("gemini", Path(".gemini") / "settings.json")])
def test_a_settings_path_that_is_no_small_regular_file_is_refused_without_hanging(
        sqlite_cli: CLI, project: Path, runtime: str, target: Path, plant: str) -> None:
    """A repository can carry `.claude/settings.json -> /dev/zero` (a symlink) or a FIFO: reading
    it whole would exhaust memory or block forever."""
    import os

    path = project / target
    path.parent.mkdir()
    if plant == "dev-zero":
        path.symlink_to("/dev/zero")
    elif plant == "fifo":
        os.mkfifo(path)
    else:
        path.write_text('{"a": "' + "x" * (17 * 1024 * 1024) + '"}')
    proc = sqlite_cli("hooks", "install", "--runtime", runtime, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and str(path) in proc.stderr
    shown = sqlite_cli("hooks", "show", "--json", timeout=60)
    assert shown.returncode in (0, 1) and "Traceback" not in shown.stderr, shown.stderr
    doctor = sqlite_cli("doctor", "--json", timeout=60)
    assert doctor.returncode in (0, 1) and "internal error" not in doctor.stderr, doctor.stderr


@pytest.mark.parametrize("plant", ["fifo", "not-utf8"])
def test_a_codex_config_toml_that_cannot_be_read_does_not_hang_or_crash_show(
        sqlite_cli: CLI, project: Path, plant: str) -> None:
    import os

    assert sqlite_cli("hooks", "install", "--runtime", "codex").returncode == 0
    config = project / ".codex" / "config.toml"
    if plant == "fifo":
        os.mkfifo(config)
    else:
        config.write_bytes(b"[features]\nhooks = \xff\n")
    shown = sqlite_cli("hooks", "show", "--json", timeout=60)
    assert shown.returncode in (0, 1) and "internal error" not in shown.stderr, shown.stderr


@pytest.mark.parametrize("original", ['{"hooks": {"PreToolUse": []}}', '{"hooks": {}}', '{}'])
def test_a_file_written_on_one_line_stays_on_one_line(sqlite_cli: CLI, project: Path, original: str) -> None:
    path = project / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(original)
    assert sqlite_cli("hooks", "install").returncode == 0
    installed = path.read_text()
    assert "\n" not in installed.strip() and leasehold_commands(load(path)), installed
