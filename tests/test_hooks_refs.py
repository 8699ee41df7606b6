"""The dispatch gate end to end with the reference rule: real ``leasehold hook`` processes on
the shared Claude Code fixture, every backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CLI, FIXTURES
from tests.test_hooks import claim, decision, denied, hook, payload


@pytest.fixture(autouse=True)
def _cache_under_home(base_env: dict[str, str]) -> None:
    base_env.pop("XDG_CACHE_HOME", None)


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
