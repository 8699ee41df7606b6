"""File reservations: the overlap rule, the CLI, expiry and fences, and a race of real
processes reserving overlapping patterns."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from leasehold.paths import literal_prefix, matches, normalize_pattern, overlaps
from tests.conftest import CLI


@pytest.mark.parametrize("a, b, expected", [
    ("src/**", "src/api/routes.py", True),
    ("src/api/**", "src/api/*.py", True),
    ("src/api/routes.py", "src/api/routes.py", True),
    ("src", "src/api/*.py", True),             # a plain directory holds what the other names
    ("src/api", "src/*/x.py", True),           # below the other's wildcard: unsure -> overlap
    ("*.py", "docs/**", True),                 # unanchored: any depth
    ("routes.py", "src/api/other.py", True),
    ("src/api/routes.py", "src/api/other.py", False),
    ("src/api/*.py", "src/api/routes.md", False),
    ("docs/**", "src/**", False),
    ("/Makefile", "src/**", False),
    ("docs/*.md", "docs/*.txt", True),         # conservative: same literal prefix
    ("src/*/routes.py", "src/api/routes.py", True),
])
def test_overlap_rule(a: str, b: str, expected: bool) -> None:
    assert overlaps(a, b) is expected
    assert overlaps(b, a) is expected


@pytest.mark.parametrize("a, b", [
    ("src/**", "src/api/routes.py"), ("src/api/*.py", "src/api/**"), ("*.py", "src/a.py"),
    ("src/*/x.py", "src/api"), ("docs/", "docs/a/b.md"),
])
def test_overlap_is_never_missed_for_a_common_path(a: str, b: str) -> None:
    common = {"src/api/routes.py", "src/a.py", "src/api/x.py", "docs/a/b.md"}
    if any(matches(a, p) and matches(b, p) for p in common):
        assert overlaps(a, b)


def test_matching_uses_gitignore_rules() -> None:
    assert matches("src/api/", "src/api/routes.py")
    assert matches("src/api", "src/api/routes.py")
    assert matches("*.md", "docs/deep/guide.md")
    assert matches("/Makefile", "Makefile") and not matches("/Makefile", "sub/Makefile")
    assert not matches("src/*.py", "src/api/x.py")
    assert literal_prefix("src/api/*.py") == ["src", "api"] and literal_prefix("*.py") == []


@pytest.mark.parametrize("bad", ["", "   ", "!src/**", "#notes", "../outside/**", "src/../../x", "/"])
def test_bad_patterns_are_refused(bad: str) -> None:
    from leasehold.errors import InvalidInput

    with pytest.raises(InvalidInput):
        normalize_pattern(bad)


def test_patterns_are_normalised() -> None:
    assert normalize_pattern("  ./src//api/** ") == "src/api/**"


def reserve(cli: CLI, actor: str, session: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("reserve-path", *args, "--actor", actor, "--session", session)


def test_exclusive_conflict_names_the_holder(cli: CLI) -> None:
    first = reserve(cli, "ann", "s1", "src/api/**", "--reason", "router", "--json")
    assert first.returncode == 0, first.stderr
    (res,) = json.loads(first.stdout)
    assert res["pattern"] == "src/api/**" and res["holder"] == "ann:s1" and res["exclusive"]
    assert res["reason"] == "router" and res["fence"] >= 1 and res["valid"]
    clash = reserve(cli, "bob", "s2", "src/api/routes.py")
    assert clash.returncode == 1
    assert "ann:s1" in clash.stderr and "src/api/**" in clash.stderr
    assert len(clash.stderr.strip().splitlines()) == 1
    # all or none: a free pattern listed with a conflicting one is not reserved either
    assert reserve(cli, "bob", "s2", "lib/**", "src/**").returncode == 1
    assert [r["pattern"] for r in json.loads(cli("paths", "--json").stdout)] == ["src/api/**"]
    assert reserve(cli, "bob", "s2", "lib/**").returncode == 0


def test_shared_reservations_coexist_but_not_with_exclusive(cli: CLI) -> None:
    assert reserve(cli, "ann", "s1", "docs/**", "--shared").returncode == 0
    assert reserve(cli, "bob", "s2", "docs/guide.md", "--shared").returncode == 0
    clash = reserve(cli, "cat", "s3", "docs/**")
    assert clash.returncode == 1 and "shared" in clash.stderr
    assert reserve(cli, "ann", "s1", "src/**").returncode == 0
    assert reserve(cli, "bob", "s2", "src/x.py", "--shared").returncode == 1
    holders = sorted(r["holder"] for r in json.loads(cli("paths", "--json").stdout))
    assert holders == ["ann:s1", "ann:s1", "bob:s2"]


def test_renewal_keeps_the_fence_and_a_new_grant_increases_it(cli: CLI) -> None:
    (a,) = json.loads(reserve(cli, "ann", "s1", "src/**", "--ttl", "1m", "--json").stdout)
    (again,) = json.loads(reserve(cli, "ann", "s1", "src/**", "--ttl", "5m", "--json").stdout)
    assert again["fence"] == a["fence"] and again["expires_at"] > a["expires_at"]
    assert cli("release-path", "src/**", "--actor", "ann", "--session", "s1").returncode == 0
    (b,) = json.loads(reserve(cli, "bob", "s2", "src/**", "--json").stdout)
    assert b["fence"] > a["fence"]
    kinds = [e["kind"] for e in json.loads(cli("log", "--json").stdout)]
    assert kinds == ["path_reserved", "path_reserved", "path_released", "path_reserved"]


def test_expired_reservation_no_longer_blocks(cli: CLI) -> None:
    assert reserve(cli, "ann", "s1", "src/**", "--ttl", "1s").returncode == 0
    deadline = time.monotonic() + 30
    while json.loads(cli("paths", "--json").stdout):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert reserve(cli, "bob", "s2", "src/api/**").returncode == 0
    kinds = [e["kind"] for e in json.loads(cli("log", "--json").stdout)]
    assert kinds == ["path_reserved", "path_expired", "path_reserved"]


def test_release_path_reports_what_it_did(cli: CLI) -> None:
    assert reserve(cli, "ann", "s1", "src/**").returncode == 0
    other = cli("release-path", "src/**", "--actor", "bob", "--session", "s2", "--json")
    assert other.returncode == 0 and json.loads(other.stdout) == [
        {"pattern": "src/**", "released": False, "fence": None}]
    mine = cli("release-path", "src/**", "--actor", "ann", "--session", "s1")
    assert mine.returncode == 0 and "released src/**" in mine.stdout
    assert cli("paths").stdout.strip() == "no file reservations"


def test_invalid_input_exits_2(cli: CLI) -> None:
    for args in (["!src"], ["../x"], ["src/**", "--ttl", "0s"]):
        proc = reserve(cli, "ann", "s1", *args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    proc = cli("reserve-path", "src/**")
    assert proc.returncode == 2 and "session" in proc.stderr


@pytest.mark.slow
def test_racing_processes_never_both_hold_overlapping_patterns(cli: CLI, tmp_path) -> None:
    from tests.test_races import start_racers

    patterns = ["src/**", "src/api/**", "src/api/routes.py", "*.py", "src/api/*.py", "src", "src/*/routes.py",
                "src/api/"]
    procs, _ = start_racers(cli, tmp_path, "exec", "paths", lambda i: [
        "reserve-path", patterns[i], "--actor", f"w{i}", "--session", f"race{i}"],
        count=len(patterns), extra_env={"LEASEHOLD_BUSY_TIMEOUT": "30"})
    codes = [p.wait(timeout=120) for p in procs]
    for p in procs:
        p.communicate()
    assert sorted(codes) == [0] + [1] * (len(patterns) - 1), codes
    (held,) = json.loads(cli("paths", "--json").stdout)
    assert held["holder"] == f"w{codes.index(0)}:race{codes.index(0)}"
