"""An answer that cannot be printed does not change the outcome: with standard output closed
(``>&-``) or on a full disk (``>/dev/full``), an applied change still exits 0 (never 70 or 1,
never a traceback), a refusal still exits 1, and one line on stderr says the answer was lost."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from leasehold import Ledger
from tests.conftest import CLI, LEASEHOLD


def run(cli: CLI, how: str, *args: str, session: str = "s1") -> subprocess.CompletedProcess[str]:
    env = dict(cli.env, LEASEHOLD_DB=cli.db, LEASEHOLD_ACTOR="a", LEASEHOLD_SESSION=session)
    if how == "full":
        with open("/dev/full", "w") as full:
            return subprocess.run([LEASEHOLD, *args], stdout=full, stderr=subprocess.PIPE, text=True,
                                  env=env, cwd=cli.cwd, timeout=60)
    return subprocess.run([LEASEHOLD, *args], stderr=subprocess.PIPE, text=True, env=env,
                          cwd=cli.cwd, timeout=60, preexec_fn=lambda: os.close(1))


@pytest.mark.parametrize("how", ["full", "closed"])
def test_an_unwritable_stdout_keeps_the_exit_code_of_the_outcome(sqlite_cli: CLI, how: str) -> None:
    cli = sqlite_cli
    for args, session, code in [(("claim", "T1", "--op-id", f"op-{how}"), "s1", 0),
                                (("claim", "T1", "--json"), "s2", 1),
                                (("status", "T1", "--json"), "s1", 0),
                                (("check", "T1"), "s2", 1),
                                (("check", "T1"), "s1", 0)]:
        proc = run(cli, how, *args, session=session)
        assert proc.returncode == code, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "could not write the answer to standard output" in proc.stderr, (args, proc.stderr)
    applied = cli("op", f"op-{how}", env={"LEASEHOLD_ACTOR": "a", "LEASEHOLD_SESSION": "s1"})
    assert applied.returncode == 0 and "applied: claim" in applied.stdout


def test_a_closed_pipe_is_quiet_and_keeps_the_exit_code(sqlite_cli: CLI) -> None:
    cli = sqlite_cli
    with Ledger.open(cli.db) as ledger:
        for i in range(400):  # far more than a pipe's buffer holds
            ledger.add(f"task-{i:04d}", title="x" * 200)
    env = dict(cli.env, LEASEHOLD_DB=cli.db)
    proc = subprocess.Popen([LEASEHOLD, "list", "--all"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=cli.cwd)
    assert proc.stdout is not None and proc.stdout.read(10)
    proc.stdout.close()  # the reader went away, as `| head -1` does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and err == b"", err


@pytest.mark.parametrize("command", [("log", "--follow"), ("watch",), ("feed", "tail", "--follow",
                                                                       "--interval", "0.1")])
def test_a_follow_stops_when_its_reader_goes_away(sqlite_cli: CLI, command: tuple[str, ...]) -> None:
    # `leasehold log --follow | head -1`: once head exits, the follower must end, not hold the
    # ledger until a timeout or a kill.
    cli = sqlite_cli
    env = dict(cli.env, LEASEHOLD_DB=cli.db, LEASEHOLD_ACTOR="a", LEASEHOLD_SESSION="s1")
    with Ledger.open(cli.db) as ledger:
        ledger.claim("seed", "a:s1", ttl=60)
    proc = subprocess.Popen([LEASEHOLD, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=cli.cwd)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the follower writes anything more
    with Ledger.open(cli.db) as ledger:
        # Events keep coming until the follower notices (it may start watching after the first
        # ones), for at most a minute.
        deadline = time.monotonic() + 60
        i = 0
        while proc.poll() is None and time.monotonic() < deadline:
            i += 1
            if command[0] == "feed":
                ledger.feed.post("info", f"post {i}", "a:s1", item=f"N-{i}")
            else:
                ledger.claim(f"t{i}", "a:s1", ttl=60)
                ledger.release(f"t{i}", "a:s1")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err


def test_a_closed_stdin_is_one_line_never_a_traceback(sqlite_cli: CLI, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Started with no standard input at all (``0<&-``: Python then has ``sys.stdin = None``),
    the hooks exit 1 with one line (as for any unreadable payload) and the session-start flow of
    missions takes its no-terminal path, never a traceback."""
    import shutil

    from tests.conftest import FIXTURES

    cli = sqlite_cli
    env = dict(cli.env, LEASEHOLD_DB=cli.db, LEASEHOLD_ACTOR="a", LEASEHOLD_SESSION="s1")
    missions = tmp_path / "missions"
    shutil.copytree(FIXTURES / "missions", missions)
    for path in [missions, *missions.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    for args, code, line in [(("hook", "pre-tool-use"), 1, "leasehold hook pre-tool-use: cannot read stdin: it is closed"),
                             (("hook", "codex"), 1, "leasehold hook codex: cannot read stdin: it is closed"),
                             (("hook", "gemini"), 1, "leasehold hook gemini: cannot read stdin: it is closed"),
                             (("missions", "--dir", str(missions), "start"), 0, None)]:
        proc = subprocess.run(["sh", "-c", 'exec "$@" 0<&-', "sh", LEASEHOLD, *args], capture_output=True,
                              text=True, env=env, cwd=cli.cwd, timeout=60)
        assert proc.returncode == code, (args, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        if line is not None:
            assert proc.stderr == line + "\n"
        else:
            assert "Active missions" in proc.stdout, proc.stdout
