"""The dispatch gate end to end with the reference rule: real ``leasehold hook`` processes on
the shared Claude Code fixture, every backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CLI
from tests.test_hooks import claim, decision, denied, hook, payload


@pytest.fixture(autouse=True)
def _cache_under_home(base_env: dict[str, str]) -> None:
    """Hook caches under the test's HOME; hook limits raised for a loaded machine (see
    :data:`tests.conftest.LOADED_MACHINE_HOOK_ENV`)."""
    from tests.conftest import LOADED_MACHINE_HOOK_ENV

    base_env.pop("XDG_CACHE_HOME", None)
    base_env.update(LOADED_MACHINE_HOOK_ENV)


def test_words_equal_to_short_held_ids_are_allowed_references_denied(cli: CLI) -> None:
    claim(cli, "42", "session-a")
    claim(cli, "sync", "session-a")
    for prompt in ("Fix the lint warning on line 42 of utils.py.",
                   "Read the sync module and summarize it.",
                   "See owner/repo#42 upstream before you start."):
        assert decision(hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json", prompt=prompt,
                                                           description="Lint"))) is None, prompt
    reason = denied(hook(cli, "pre-tool-use", payload(
        "pre_tool_use_agent.json", prompt="Continue task #42 (the sync module is fine).",
        description="Fix lint")))
    assert "task 42 " in reason and "task sync" not in reason
    reason = denied(hook(cli, "pre-tool-use", payload(
        "pre_tool_use_agent.json", prompt="Work on tasks sync and 42.", description="Sync")))
    assert "task 42 " in reason and "task sync " in reason


@pytest.mark.parametrize("prompt", ["Fix ＃９９９２７ now", "Fix task 999\u200b27 now",
                                    "Fix #9992\n7 now"])
def test_unicode_and_invisible_tricks_do_not_slip_through(cli: CLI, prompt: str) -> None:
    claim(cli, "99927", "session-a")
    reason = denied(hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json", prompt=prompt,
                                                       description="x")))
    assert "task 99927 " in reason


@pytest.mark.parametrize("prompt", ["Fix ticket bd-7f3\u0430 now",  # Cyrillic а
                                    "Fix \u0431d-7f3a now".replace("\u0431", "b"),
                                    "Fix task b\u0501-7f3\u03b1 now"])  # Cyrillic ԁ, Greek α
def test_cyrillic_and_greek_look_alike_letters_in_a_task_id_are_matched(cli: CLI, prompt: str) -> None:
    claim(cli, "bd-7f3a", "session-a")
    reason = denied(hook(cli, "pre-tool-use", payload("pre_tool_use_agent.json", prompt=prompt,
                                                       description="x")))
    assert "task bd-7f3a " in reason


def test_configured_reference_patterns(cli: CLI, tmp_path: Path) -> None:
    claim(cli, "4711", "session-a")
    (tmp_path / "leasehold.toml").write_text(
        'reference_patterns = ["\\\\bPROJ(?P<id>\\\\d+)\\\\b"]\nreference_keywords = ["card"]\n')
    assert "4711" in denied(hook(cli, "pre-tool-use", payload(
        "pre_tool_use_agent.json", prompt="Do PROJ4711.", description="x")))
    assert "4711" in denied(hook(cli, "pre-tool-use", payload(
        "pre_tool_use_agent.json", prompt="Do card 4711.", description="x")))
    assert decision(hook(cli, "pre-tool-use", payload(
        "pre_tool_use_agent.json", prompt="Do PROJ 4711x.", description="x"))) is None
    (tmp_path / "leasehold.toml").write_text('reference_patterns = ["(unclosed"]\n')
    reason = denied(hook(cli, "pre-tool-use", payload(
        "pre_tool_use_agent.json", prompt="anything", description="x")))
    assert "reference_patterns" in reason  # a bad pattern fails closed, naming the setting


def test_a_shared_lease_lets_named_teammates_through_and_no_one_else(cli: CLI) -> None:
    proc = cli("claim", "99927", "--actor", "lead", "--session", "lead-session",
               "--share-with", "mate-1", "mate-2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["shared_with"] == ["mate-1", "mate-2"]
    prompt = payload("pre_tool_use_agent.json")
    for mate in ("mate-1", "mate-2"):
        assert decision(hook(cli, "pre-tool-use", dict(prompt, session_id=mate))) is None
    assert "lead:lead-session" in denied(hook(cli, "pre-tool-use", dict(prompt, session_id="stranger")))
    shared = [e for e in json.loads(cli("log", "--json").stdout) if e["kind"] == "shared"]
    assert len(shared) == 1 and shared[0]["details"]["sessions"] == ["mate-1", "mate-2"]
    # only the holder can share
    proc = cli("share", "99927", "stranger", "--actor", "x", "--session", "stranger")
    assert proc.returncode == 1 and "held by lead:lead-session" in proc.stderr
    # a new grant (release, claim again: new fence) does not carry the share over
    assert cli("release", "99927", "--actor", "lead", "--session", "lead-session").returncode == 0
    assert cli("claim", "99927", "--actor", "lead", "--session", "lead-session").returncode == 0
    assert "99927" in denied(hook(cli, "pre-tool-use", dict(prompt, session_id="mate-1")))
    assert cli("share", "99927", "mate-1", "--actor", "lead", "--session", "lead-session").returncode == 0
    assert decision(hook(cli, "pre-tool-use", dict(prompt, session_id="mate-1"))) is None


def test_claim_share_with_is_one_transaction(cli: CLI) -> None:
    """The grant and its shares commit together: a share that cannot be made leaves no claim
    behind, and a successful one is one transaction (the claim's event and the share's event
    are written with the same instant, read once under the row lock)."""
    lead = ("--actor", "lead", "--session", "lead-session")
    bad = cli("claim", "99927", *lead, "--share-with", "mate-1", "bad:name")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    shown = json.loads(cli("show", "99927", "--json").stdout) if cli("show", "99927").returncode == 0 else None
    assert shown is None or not shown["lease_valid"], shown  # nothing was claimed
    assert cli("claim", "99927", *lead, "--share-with", "mate-1", "--json").returncode == 0
    events = [e for e in json.loads(cli("log", "--json").stdout) if e["task_id"] == "99927"]
    claimed = [e for e in events if e["kind"] == "claimed"]
    shared = [e for e in events if e["kind"] == "shared"]
    assert len(claimed) == 1 and len(shared) == 1
    assert claimed[0]["ts"] == shared[0]["ts"], (claimed, shared)  # one transaction, one clock read
    assert claimed[0]["fence"] == shared[0]["fence"]
