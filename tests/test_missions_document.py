"""Mission files: frontmatter parsing and targeted edits (byte preservation), execution-log
appends, invalid frontmatter, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from leasehold.errors import Conflict
from leasehold.missions.document import Document, InvalidMission
from leasehold.missions.files import atomic_write, move
from tests.conftest import FIXTURES

MISSIONS = FIXTURES / "missions"

RICH = """\
---
# a comment line that must survive
mission_id: 2026-01-05-rich   # trailing comment
status: QUEUED  # set by tooling
assigned_to: 'Claude Code'
tags: [billing, "export", ünïcode]
objectives:
  - one
  - two: nested
created: 2026-01-05
claimed_at:
claimed_by:
notes: >
  folded text
  over two lines
---

# Rich mission ✓

Body with **markdown**, trailing spaces\x20\x20\x20
and a line without newline at the end"""


def test_set_fields_changes_only_the_lines_of_the_keys_set() -> None:
    doc = Document.parse(RICH, "rich.md")
    new = doc.set_fields({"status": "ACTIVE", "claimed_at": "2026-01-05T10:30:00+01:00",
                          "claimed_by": 'Session "A" \\ B'})
    old_lines, new_lines = RICH.splitlines(keepends=True), new.text.splitlines(keepends=True)
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert changed == [
        ("status: QUEUED  # set by tooling\n", "status: ACTIVE  # set by tooling\n"),
        ("claimed_at:\n", "claimed_at: 2026-01-05T10:30:00+01:00\n"),
        ("claimed_by:\n", 'claimed_by: "Session \\"A\\" \\\\ B"\n'),
    ]
    assert new.data["claimed_by"] == 'Session "A" \\ B'
    assert new.data["tags"] == ["billing", "export", "ünïcode"]
    assert list(new.data) == list(doc.data)  # key order kept
    assert new.body == doc.body  # the Markdown body byte for byte


def test_set_fields_adds_missing_keys_at_the_end_and_rewrites_multiline_values() -> None:
    doc = Document.parse(RICH, "rich.md")
    new = doc.set_fields({"notes": "short", "priority": "high"})
    assert "notes: short\npriority: high\n---\n" in new.text
    assert "folded text" not in new.text
    assert new.text.replace("notes: short\npriority: high\n", "") == RICH.replace(
        "notes: >\n  folded text\n  over two lines\n", "")


def test_crlf_files_keep_their_line_endings() -> None:
    text = (MISSIONS / "queue" / "2025-12-22-thaifa-migration-critical.md").read_text().replace("\n", "\r\n")
    doc = Document.parse(text, "crlf.md")
    new = doc.set_fields({"status": "ACTIVE", "claimed_by": "x", "extra": "y"}).append_log("2026-01-01", "09:00 - hi")
    assert "\n" not in new.text.replace("\r\n", "")
    assert "status: ACTIVE\r\n" in new.text and "extra: y\r\n---\r\n" in new.text
    assert new.text.endswith("## Execution Log\r\n\r\n### 2026-01-01\r\n\r\n- 09:00 - hi\r\n")


def test_values_that_would_not_round_trip_are_quoted_or_refused() -> None:
    doc = Document.parse(RICH, "rich.md")
    for value in ("YES", "null", "12", "a: b", "- x", "#x", "'q'", "line\nbreak"):
        assert doc.set_fields({"claimed_by": value}).data["claimed_by"] == value


def test_append_log_adds_the_day_heading_only_when_missing() -> None:
    text = (MISSIONS / "active" / "2025-12-21-billing-export.md").read_text()
    doc = Document.parse(text, "b.md")
    same_day = doc.append_log("2025-12-21", "10:00 - next step")
    assert same_day.text == text + "- 10:00 - next step\n"
    other_day = same_day.append_log("2025-12-22", "08:00 - **RESUMED** by session \"x\"")
    assert other_day.text == same_day.text + '\n### 2025-12-22\n\n- 08:00 - **RESUMED** by session "x"\n'
    assert other_day.log_lines()[-2:] == ["10:00 - next step", '08:00 - **RESUMED** by session "x"']


def test_append_log_keeps_sections_after_the_log_and_creates_a_missing_log() -> None:
    text = "---\nmission_id: a\n---\n\n# A\n\n## Execution Log\n\n### 2026-01-01\n\n- 09:00 - x\n\n\n## Notes\n\nkeep\n"
    new = Document.parse(text, "a.md").append_log("2026-01-01", "09:05 - y")
    assert new.text == text.replace("- 09:00 - x\n", "- 09:00 - x\n- 09:05 - y\n")
    bare = "---\nmission_id: a\n---\n\n# A\n\nno log yet"
    created = Document.parse(bare, "a.md").append_log("2026-01-02", "10:00 - z")
    assert created.text == bare + "\n\n## Execution Log\n\n### 2026-01-02\n\n- 10:00 - z\n"


@pytest.mark.parametrize("text,line,fragment", [
    ((MISSIONS / "queue" / "broken-frontmatter.md").read_text(), 4, "flow sequence"),
    ("no frontmatter\n", 1, "must start with a '---' line"),
    ("---\nmission_id: a\nstatus: QUEUED\n", 4, "not closed"),
    ("---\n- a\n- b\n---\n", 2, "must be a mapping"),
    ("---\nmission_id: a\nstatus: QUEUED\nstatus: ACTIVE\n---\n", 4, "duplicate key 'status'"),
    ("---\nmission_id: a\n  bad: indent\n---\n", 3, "mapping values are not allowed"),
    ("---\nmission_id: a\ttab: x: y\n---\n", 2, "mapping values"),
])
def test_invalid_frontmatter_is_one_line_naming_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(InvalidMission) as info:
        Document.parse(text, "dir/m.md")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"dir/m.md:{line}: invalid frontmatter: "), message
    assert fragment in message
    assert info.value.exit_code == 2


def test_atomic_write_replaces_keeps_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "m.md"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["m.md"]
    with pytest.raises(FileExistsError):
        atomic_write(str(target), b"x", exclusive=True)
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["m.md"]


def test_atomic_write_failure_leaves_the_old_file_and_no_temp_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.md"
    target.write_bytes(b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write(str(target), b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["m.md"]


def test_move_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "m.md").write_text("1")
    (tmp_path / "b" / "m.md").write_text("2")
    with pytest.raises(Conflict):
        move(str(tmp_path / "a" / "m.md"), str(tmp_path / "b" / "m.md"))
    assert (tmp_path / "a" / "m.md").read_text() == "1" and (tmp_path / "b" / "m.md").read_text() == "2"
