"""Values the database cannot hold (integers past its range, NUL characters in text) are bad
input on every backend: exit 2 with one line, never exit 70 (SQLite's OverflowError) or exit 75
(PostgreSQL's DataError read as a store outage), and nothing is written."""

from __future__ import annotations

import json

from tests.conftest import CLI

ME = ("--actor", "ann", "--session", "s1")
HUGE = str(10**23)


def test_out_of_range_numbers_are_exit_2_on_every_backend(cli: CLI) -> None:
    assert cli("claim", "T1", *ME).returncode == 0
    assert cli("feed", "post", "--kind", "info", "--subject", "hello", *ME).returncode == 0
    for args in (
        ["add", "T2", "--priority", "3000000000"],  # past PostgreSQL's INTEGER: refused on both
        ["add", "T2", "--priority", "-" + HUGE],
        ["claim", "T3", "--priority", HUGE, *ME],
        ["add", "T4", "--blocked-by", "T1", "--priority", HUGE],
        ["extend", "T1", "--fence", HUGE, *ME],
        ["ready", "--limit", HUGE],
        ["next", "--count", HUGE, *ME],
        ["feed", "tail", "-n", HUGE],
        ["feed", "amend", HUGE, "--subject", "x", *ME],
    ):
        result = cli(*args)
        assert result.returncode in (2, 3), (args, result.returncode, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    listed = json.loads(cli("list", "--json").stdout)
    assert [t["id"] for t in listed] == ["T1"]
    assert json.loads(cli("show", "T1", "--json").stdout)["lease_holder"] == "ann:s1"


def test_a_nul_character_in_an_imported_post_names_the_line(cli: CLI, tmp_path) -> None:
    path = tmp_path / "posts.jsonl"
    good = {"ts": "2026-04-16T20:04:22Z", "seat": "S1", "kind": "info", "subject": "fine"}
    bad = dict(good, subject="nul\u0000here")
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    result = cli("feed", "import", str(path), *ME)
    assert result.returncode == 2, result.stderr
    assert "line 2" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert json.loads(cli("feed", "list", "--json").stdout) == []
