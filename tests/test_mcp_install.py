"""``leasehold mcp install|uninstall|show`` on sample configuration files of each runtime, with
other servers, other settings and comments: install adds only our entry (every other byte
stays: the original is what is left once the inserted characters are taken out), a second
install changes nothing, uninstall gives the original back byte for byte, and a file that does
not parse is refused with exit 2 and left untouched. Run through the real console script."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests import conftest

pytest.importorskip("tomlkit")

CLAUDE_PROJECT = """{
    "mcpServers": {
        "github": {
            "type": "http",
            "url": "https://api.example.com/mcp",
            "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"}
        },
        "files": {"command": "npx", "args": ["-y", "@scope/server-files", "/srv"], "env": {}}
    }
}
"""

CLAUDE_USER = """{
  "numStartups": 42,
  "theme": "dark",
  "projects": {
    "/home/me/app": {"allowedTools": [], "mcpServers": {"local-only": {"command": "x"}}}
  },
  "userID": "abc\\u00e9"
}"""

CODEX = """# Codex configuration — comments must survive
model = "gpt-5-codex"   # the default model
approval_policy = "on-request"

[mcp_servers.docs]
# a documentation server
command = "npx"
args = ["-y", "docs-mcp"]  # pinned below
startup_timeout_sec = 20

[mcp_servers.docs.env]
DOCS_TOKEN = "x"

[profiles.fast]
model = "gpt-5-mini"
"""

CODEX_NO_SERVERS = """# no MCP servers yet
model = "o3"
[features]
hooks = true
"""

GEMINI = """// Gemini CLI settings (comments are allowed here)
{
  "theme": "GitHub", /* the colour theme */
  "mcpServers": {
    "pythonTools": {
      "command": "python",
      "args": ["-m", "my_mcp_server"],  // a trailing comment
      "env": {"API_KEY": "$MY_API_TOKEN"},
      "timeout": 15000
    }
  },
  "hooks": {"AfterTool": []}
}
"""

GEMINI_NO_SERVERS = """{
  "general": {"vimMode": true}
}
"""


def _run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([conftest.LEASEHOLD, "mcp", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=60)


def _only_inserted(before: str, after: str) -> str:
    """What ``after`` adds to ``before``, asserting that nothing of ``before`` was changed or
    removed (every edit is an insertion)."""
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    added = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        assert op in ("equal", "insert"), (op, before[i1:i2], after[j1:j2])
        if op == "insert":
            added.append(after[j1:j2])
    return "".join(added)


@pytest.fixture
def repo(tmp_path: Path, base_env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "sub").mkdir()
    env = dict(base_env, CODEX_HOME=str(tmp_path / "home" / ".codex"))
    return root, env


CASES = [
    ("claude-code", "project", ".mcp.json", CLAUDE_PROJECT),
    ("claude-code", "user", "~/.claude.json", CLAUDE_USER),
    ("codex", "project", ".codex/config.toml", CODEX),
    ("codex", "user", "~/.codex/config.toml", CODEX_NO_SERVERS),
    ("gemini", "project", ".gemini/settings.json", GEMINI),
    ("gemini", "user", "~/.gemini/settings.json", GEMINI_NO_SERVERS),
]


@pytest.mark.parametrize(("client", "scope", "where", "sample"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_install_round_trips_every_other_byte(repo, client: str, scope: str, where: str, sample: str) -> None:
    root, env = repo
    path = Path(where.replace("~", env["HOME"], 1)) if where.startswith("~") else root / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sample.encode("utf-8"))

    run = _run(env, root / "sub", "install", "--client", client, "--scope", scope, "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["changed"] is True and result["path"] == str(path)
    installed = path.read_text("utf-8")
    added = _only_inserted(sample, installed)
    assert "leasehold" in added and "mcp" in added

    exe = result["entry"]["command"]
    assert os.path.isabs(exe) and os.path.basename(exe) == "leasehold" and os.access(exe, os.X_OK)
    if client == "codex":
        import tomlkit

        entry = tomlkit.parse(installed)["mcp_servers"]["leasehold"]
        assert entry["command"] == exe and list(entry["args"]) == ["mcp"]
        assert "LEASEHOLD_DB" in list(entry["env_vars"])
        if "docs" in sample:
            assert tomlkit.parse(installed)["mcp_servers"]["docs"]["env"]["DOCS_TOKEN"] == "x"
    else:
        text = installed
        if client == "gemini":  # what Gemini CLI strips before parsing
            import re

            text = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)
        entry = json.loads(text)["mcpServers"]["leasehold"]
        assert entry["command"] == exe and entry["args"] == ["mcp"]

    again = _run(env, root, "install", "--client", client, "--scope", scope)
    assert again.returncode == 0 and "already installed" in again.stdout
    assert path.read_text("utf-8") == installed

    show = _run(env, root, "show", "--client", client, "--json")
    rows = {row["scope"]: row for row in json.loads(show.stdout)}
    assert rows[scope]["installed"] is True and rows[scope]["entry"]["command"] == exe

    gone = _run(env, root, "uninstall", "--client", client, "--scope", scope)
    assert gone.returncode == 0, gone.stderr
    assert path.read_bytes() == sample.encode("utf-8")
    assert "nothing to remove" in _run(env, root, "uninstall", "--client", client, "--scope", scope).stdout


@pytest.mark.parametrize("client", ["claude-code", "codex", "gemini"])
def test_install_creates_a_missing_file_and_uninstall_removes_it(repo, client: str) -> None:
    root, env = repo
    run = _run(env, root, "install", "--client", client, "--json")
    assert run.returncode == 0, run.stderr
    path = Path(json.loads(run.stdout)["path"])
    assert path.exists() and str(path).startswith(str(root))
    assert _run(env, root, "uninstall", "--client", client).returncode == 0
    assert not path.exists()


@pytest.mark.parametrize(("client", "name", "bad"), [
    ("claude-code", ".mcp.json", '{"mcpServers": {"a": {"command": "x"},}}'),
    ("claude-code", ".mcp.json", '// comments are not JSON\n{"mcpServers": {}}'),
    ("claude-code", ".mcp.json", '{"mcpServers": ["not", "an", "object"]}'),
    ("claude-code", ".mcp.json", '{"mcpServers": null}'),
    ("claude-code", ".mcp.json", '{"mcpServers": {}, "mcpServers": {"a": {}}}'),
    ("codex", ".codex/config.toml", '[mcp_servers.docs\ncommand = "x"\n'),
    ("codex", ".codex/config.toml", 'mcp_servers = "nope"\n'),
    ("gemini", ".gemini/settings.json", '{"mcpServers": {"a": 1 /* unterminated }'),
    ("gemini", ".gemini/settings.json", "[1, 2]"),
])
def test_unparsable_files_are_refused_untouched(repo, client: str, name: str, bad: str) -> None:
    root, env = repo
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bad)
    for action in ("install", "uninstall"):
        run = _run(env, root, action, "--client", client)
        assert run.returncode == 2, (action, run.stdout, run.stderr)
        assert str(path) in run.stderr and "nothing was changed" in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert path.read_text() == bad
    show = json.loads(_run(env, root, "show", "--client", client, "--json").stdout)
    assert next(r for r in show if r["scope"] == "project")["error"]
    doctor = subprocess.run([conftest.LEASEHOLD, "doctor", "--json"], capture_output=True, text=True,
                            env=env, cwd=root, timeout=60)
    found = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == f"mcp:{client}:project"]
    assert found and found[0]["ok"] is None and str(path) in found[0]["detail"], doctor.stdout


def test_a_stale_entry_is_replaced_in_place(repo) -> None:
    root, env = repo
    path = root / ".mcp.json"
    stale = ('{\n  "mcpServers": {\n    "leasehold": {"command": "leasehold", "args": ["mcp"]},\n'
             '    "other": {"command": "y"}\n  }\n}\n')
    path.write_text(stale)
    shown = _run(env, root, "show", "--client", "claude-code")
    assert "problem: the entry runs 'leasehold'" in shown.stdout
    run = _run(env, root, "install", "--client", "claude-code")
    assert run.returncode == 0 and "installed" in run.stdout
    data = json.loads(path.read_text())
    assert os.path.isabs(data["mcpServers"]["leasehold"]["command"])
    assert next(r for r in json.loads(_run(env, root, "show", "--json").stdout)
                if r["client"] == "claude-code" and r["scope"] == "project")["problems"] == []
    assert list(data["mcpServers"]) == ["leasehold", "other"]
    assert path.read_text().endswith('    "other": {"command": "y"}\n  }\n}\n')


def test_a_toml_file_without_a_final_newline_only_gains_one(repo) -> None:
    root, env = repo
    path = root / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text('model = "o3"  # no newline at the end')
    assert _run(env, root, "install", "--client", "codex").returncode == 0
    assert path.read_text().startswith('model = "o3"  # no newline at the end\n\n[mcp_servers.leasehold]\n')
    assert _run(env, root, "uninstall", "--client", "codex").returncode == 0
    assert path.read_text() == 'model = "o3"  # no newline at the end\n'


def test_any_json_file_round_trips(tmp_path: Path) -> None:
    """Property: whatever JSON object a Claude Code or Gemini file holds, in whatever layout,
    install leaves every other byte as it was and uninstall restores the file exactly."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from leasehold.hooks import mcp_install

    (tmp_path / ".git").mkdir(exist_ok=True)
    keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
    scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(keys, inner, max_size=3), max_leaves=8)
    servers = st.dictionaries(keys.filter(lambda k: k != "leasehold"),
                              st.fixed_dictionaries({"command": st.text(min_size=1, max_size=8)}), max_size=3)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.dictionaries(keys.filter(lambda k: k != "mcpServers"), values, max_size=4),
           st.none() | servers, st.sampled_from([None, 1, 2, 4, "\t"]), st.booleans(),
           st.sampled_from(["claude-code", "gemini"]))
    def check(other: dict, found: dict | None, indent, newline: bool, client: str) -> None:
        data = dict(other)
        if found is not None:
            data["mcpServers"] = found
        text = json.dumps(data, indent=indent, ensure_ascii=False) + ("\n" if newline else "")
        path = Path(mcp_install.config_path(client, "project", str(tmp_path)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
        mcp_install.install(client, "project", str(tmp_path), exe="/opt/lh/bin/leasehold")
        installed = path.read_text("utf-8")
        _only_inserted(text, installed)
        assert json.loads(installed)["mcpServers"]["leasehold"]["command"] == "/opt/lh/bin/leasehold"
        assert {k: v for k, v in json.loads(installed).items() if k != "mcpServers"} == other
        mcp_install.uninstall(client, "project", str(tmp_path))
        if not other and not found:  # a file left holding only {} is removed (documented)
            assert not path.exists()
        elif found == {}:  # an emptied mcpServers is taken out (documented)
            assert json.loads(path.read_text("utf-8")) == other
        else:
            assert path.read_text("utf-8") == text

    check()


@pytest.mark.parametrize("sample", ['[mcp_servers]\nleasehold = "x"\n', 'mcp_servers = { leasehold = [] }\n'],
                         ids=["string", "inline-array"])
def test_a_codex_leasehold_key_that_is_not_a_table_is_replaced_validly(repo, sample: str) -> None:
    """``leasehold = "x"`` under mcp_servers: install replaces it (it used to append a second
    [mcp_servers.leasehold], a file Codex could not read and uninstall refused)."""
    import tomlkit

    root, env = repo
    path = root / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text(sample)
    assert _run(env, root, "install", "--client", "codex").returncode == 0
    assert tomlkit.parse(path.read_text())["mcp_servers"]["leasehold"]["args"] == ["mcp"]
    assert "already installed" in _run(env, root, "install", "--client", "codex").stdout
    assert _run(env, root, "uninstall", "--client", "codex").returncode == 0
    assert "leasehold" not in tomlkit.parse(path.read_text() if path.exists() else "").get("mcp_servers", {})


@pytest.mark.parametrize(("name", "sample"), [
    ("inline", 'mcp_servers = { docs = { command = "x" } }\n'),
    ("dotted", '# servers as dotted keys\nmcp_servers.docs.command = "x"\n'),
    ("super-table", '[mcp_servers]\n# servers\n[mcp_servers.docs]\ncommand = "x"\n[x]\ny = 1\n'),
    ("crlf", 'model = "o3"\r\n[mcp_servers.docs]\r\ncommand = "x"\r\n'),
], ids=["inline", "dotted", "super-table", "crlf"])
def test_codex_files_in_every_toml_layout_round_trip(repo, name: str, sample: str) -> None:
    """mcp_servers as an inline table, as dotted keys, as an explicit super-table, or in a file
    with CRLF line breaks: install adds only our entry (a CRLF file gets CRLF lines), and
    uninstall gives the file back byte for byte (no internal error, no stray blank line)."""
    import tomlkit

    root, env = repo
    path = root / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_bytes(sample.encode())
    run = _run(env, root, "install", "--client", "codex", "--json")
    assert run.returncode == 0, run.stderr
    installed = path.read_bytes().decode()
    _only_inserted(sample, installed)
    doc = tomlkit.parse(installed)
    assert doc["mcp_servers"]["leasehold"]["args"] == ["mcp"] and doc["mcp_servers"]["docs"]["command"] == "x"
    if "\r\n" in sample:
        assert "\n" not in installed.replace("\r\n", "")
    assert "already installed" in _run(env, root, "install", "--client", "codex").stdout
    assert _run(env, root, "uninstall", "--client", "codex").returncode == 0
    assert path.read_bytes() == sample.encode()


def test_a_crlf_json_file_gets_crlf_lines(repo) -> None:
    root, env = repo
    sample = '{\r\n  "mcpServers": {\r\n    "a": {"command": "x"}\r\n  }\r\n}\r\n'
    path = root / ".mcp.json"
    path.write_bytes(sample.encode())
    assert _run(env, root, "install", "--client", "claude-code").returncode == 0
    installed = path.read_bytes().decode()
    assert "\n" not in installed.replace("\r\n", "") and json.loads(installed)["mcpServers"]["leasehold"]
    assert _run(env, root, "uninstall", "--client", "claude-code").returncode == 0
    assert path.read_bytes() == sample.encode()


def test_reinstall_keeps_the_entrys_own_settings_and_replaces_a_remote_one(repo) -> None:
    """An entry written by hand or by an older install, with env and a timeout: install
    rewrites command and args and keeps the rest (the user's LEASEHOLD_DB stays). A remote
    entry (the README's HTTP form) is reported as installed, not as a problem, and install
    turns it into the stdio entry without its URL and headers."""
    import tomlkit

    root, env = repo
    codex = root / ".codex" / "config.toml"
    codex.parent.mkdir()
    codex.write_text('[mcp_servers.leasehold]\n# mine\ncommand = "leasehold"\nargs = ["mcp"]\n'
                     'startup_timeout_sec = 30\n\n[mcp_servers.leasehold.env]\nLEASEHOLD_DB = "postgresql://db/x"\n')
    claude = root / ".mcp.json"
    claude.write_text('{"mcpServers": {"leasehold": {"command": "leasehold", "args": ["mcp"], '
                      '"env": {"LEASEHOLD_DB": "postgresql://db/x"}, "timeout": 5}}}\n')
    for client in ("codex", "claude-code"):
        assert _run(env, root, "install", "--client", client).returncode == 0
    entry = tomlkit.parse(codex.read_text())["mcp_servers"]["leasehold"]
    assert os.path.isabs(entry["command"]) and entry["startup_timeout_sec"] == 30
    assert entry["env"]["LEASEHOLD_DB"] == "postgresql://db/x" and "# mine" in codex.read_text()
    data = json.loads(claude.read_text())["mcpServers"]["leasehold"]
    assert os.path.isabs(data["command"]) and data["env"] == {"LEASEHOLD_DB": "postgresql://db/x"}
    assert data["timeout"] == 5 and data["type"] == "stdio"
    for client in ("codex", "claude-code"):
        assert "already installed" in _run(env, root, "install", "--client", client).stdout

    gemini = root / ".gemini" / "settings.json"
    gemini.parent.mkdir()
    gemini.write_text('{"mcpServers": {"leasehold": {"httpUrl": "https://ledger:7432/mcp", '
                      '"headers": {"Authorization": "Bearer $LEASEHOLD_TOKEN"}, "timeout": 9}}}\n')
    codex.write_text('[mcp_servers.leasehold]\nurl = "https://ledger:7432/mcp"\nbearer_token_env_var = "LEASEHOLD_TOKEN"\n')
    shown = json.loads(_run(env, root, "show", "--json").stdout)
    for client in ("gemini", "codex"):
        row = next(r for r in shown if r["client"] == client and r["scope"] == "project")
        assert row["installed"] and row["problems"] == [], row
    assert "https://ledger:7432/mcp (remote)" in _run(env, root, "show", "--client", "gemini").stdout
    doctor = subprocess.run([conftest.LEASEHOLD, "doctor", "--json"], capture_output=True, text=True,
                            env=env, cwd=root, timeout=60)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["mcp:gemini:project"]["ok"] is True and checks["mcp:codex:project"]["ok"] is True
    for client in ("gemini", "codex"):
        assert _run(env, root, "install", "--client", client).returncode == 0
    data = json.loads(gemini.read_text())["mcpServers"]["leasehold"]
    assert set(data) == {"command", "args", "timeout"} and data["timeout"] == 9
    assert set(tomlkit.parse(codex.read_text())["mcp_servers"]["leasehold"]) == {"command", "args", "env_vars"}


@pytest.mark.parametrize("sample", [
    '{\n  "mcpServers": { /* none yet */ }\n}\n',
    '{\n  "theme": "x",\n  "mcpServers": {\n    // servers go here\n  }\n}\n',
    '{"mcpServers": {/* a */}}',
], ids=["block-comment", "line-comment", "compact"])
def test_a_gemini_mcp_servers_holding_only_a_comment_survives_uninstall(repo, sample: str) -> None:
    """An mcpServers with nothing but a comment in it: uninstall takes out our entry only (the
    comment, the object and the file stay), not everything between the braces."""
    root, env = repo
    path = root / ".gemini" / "settings.json"
    path.parent.mkdir()
    path.write_text(sample)
    assert _run(env, root, "install", "--client", "gemini").returncode == 0
    _only_inserted(sample, path.read_text())
    assert _run(env, root, "uninstall", "--client", "gemini").returncode == 0
    assert path.exists() and path.read_text() == sample


@pytest.mark.parametrize("client", ["claude-code", "codex", "gemini"])
def test_the_installed_entry_starts_a_server_that_claims_extends_and_releases(
        repo, client: str, tmp_path: Path) -> None:
    """What a runtime does with our entry: read ``command`` and ``args`` from the file ``mcp
    install`` wrote (its own format), start that process over stdio with the SDK's client, and
    claim, extend (the heartbeat) and release a task through the tools; the ledger then holds
    the history of that holder, from the actor and session the runtime's environment gives."""
    import anyio
    import tomlkit
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from leasehold import Ledger

    root, env = repo
    db = str(tmp_path / "ledger.db")
    Ledger.open(db, create=True).close()
    run = _run(env, root, "install", "--client", client, "--json")
    assert run.returncode == 0, run.stderr
    path = Path(json.loads(run.stdout)["path"])
    text = path.read_text()
    if client == "codex":
        entry = tomlkit.parse(text)["mcp_servers"]["leasehold"]
    else:
        entry = json.loads("\n".join(line for line in text.splitlines()
                                     if not line.lstrip().startswith("//")))["mcpServers"]["leasehold"]
    assert os.path.isabs(entry["command"]) and os.access(entry["command"], os.X_OK)
    runtime_env = dict(env, LEASEHOLD_DB=db, LEASEHOLD_ACTOR="agent7", LEASEHOLD_SESSION="sess-1")

    async def main() -> None:
        params = StdioServerParameters(command=str(entry["command"]), args=[str(a) for a in entry["args"]],
                                       env=runtime_env, cwd=str(root))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                claimed = await session.call_tool("claim", {"task": "T-42", "ttl": "5m"})
                assert not claimed.is_error, claimed
                fence = claimed.structured_content["fence"]
                extended = await session.call_tool("extend", {"task": "T-42", "ttl": "10m"})
                assert not extended.is_error and extended.structured_content["fence"] == fence, extended
                released = await session.call_tool("release", {"task": "T-42"})
                assert not released.is_error, released

    anyio.run(main)
    with Ledger.open(db) as ledger:
        kinds = [(e.kind, f"{e.actor}:{e.session}") for e in ledger.events("T-42")]
    assert [k for k, _ in kinds] == ["created", "claimed", "extended", "released"], kinds
    assert {who for _, who in kinds} == {"agent7:sess-1"}
