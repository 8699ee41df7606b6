"""leasehold.toml discovery, validation and its parse cache."""

from __future__ import annotations

import os

import pytest

from leasehold.config import find_config, load_settings, read_config
from leasehold.errors import ConfigError, InvalidInput


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_found_walking_up_and_relative_db(tmp_path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "leasehold.toml").write_text('db = "state/l.db"\ndefault_ttl = "2h"\n')
    assert find_config(str(tmp_path / "a" / "b")) == str(tmp_path / "leasehold.toml")
    settings = load_settings(environ={}, cwd=str(tmp_path / "a" / "b"))
    assert settings.db == str(tmp_path / "state" / "l.db") and settings.default_ttl == 7200
    assert load_settings("x.db", environ={"LEASEHOLD_DB": "y.db"}, cwd=str(tmp_path)).db == "x.db"
    assert load_settings(None, environ={"LEASEHOLD_DB": "y.db"}, cwd=str(tmp_path)).db == "y.db"


def test_cached_parse_is_invalidated_by_any_edit(tmp_path) -> None:
    path = tmp_path / "leasehold.toml"
    path.write_text('actor = "ann"\n')
    assert read_config(str(path)) == {"actor": "ann"}
    cached = list((tmp_path / "cache" / "leasehold" / "config").iterdir())
    assert len(cached) == 1
    assert read_config(str(path)) == {"actor": "ann"}  # served from the cache
    path.write_text('actor = "bob"\n')  # same size, new content
    os.utime(path, ns=(1, 1))
    assert read_config(str(path)) == {"actor": "bob"}
    path.write_text('actr = "bob"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        read_config(str(path))
    path.write_text("actor = [unclosed\n")
    with pytest.raises(ConfigError):
        read_config(str(path))


def test_unwritable_cache_still_parses(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    path = tmp_path / "leasehold.toml"
    path.write_text('default_ttl = "5m"\n')
    assert read_config(str(path)) == {"default_ttl": "5m"}


def test_busy_timeout_from_environment_then_toml(tmp_path) -> None:
    (tmp_path / "leasehold.toml").write_text('busy_timeout = 3\n')
    assert load_settings(environ={}, cwd=str(tmp_path)).busy_timeout == 3
    env = {"LEASEHOLD_BUSY_TIMEOUT": "0.5"}
    assert load_settings(environ=env, cwd=str(tmp_path)).busy_timeout == 0.5
    with pytest.raises(InvalidInput, match="LEASEHOLD_BUSY_TIMEOUT"):
        load_settings(environ={"LEASEHOLD_BUSY_TIMEOUT": "soon"}, cwd=str(tmp_path))


def test_bad_busy_timeout_is_a_usage_error_not_an_internal_one(sqlite_cli) -> None:
    result = sqlite_cli("status", "t1", env={"LEASEHOLD_BUSY_TIMEOUT": "soon"})
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
