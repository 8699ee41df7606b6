"""``leasehold run``: a command under a heartbeated lease."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import CLI, wait_for

JOHN = ["--actor", "john", "--session", "abc123"]
PI = ["--actor", "pi-orch", "--session", "xyz456"]

OUTLIVES_TTL = """
import json, os, subprocess, sys, time
task = os.environ["LEASEHOLD_TASK"]
assert os.environ["LEASEHOLD_FENCE"] == "1" and os.environ["LEASEHOLD_HOLDER"] == "john:abc123"
def show():
    out = subprocess.run(["leasehold", "show", task, "--json"], capture_output=True, text=True)
    return json.loads(out.stdout)
first = show()["lease_until"]
deadline = time.monotonic() + 60
while True:  # wait until the lease has been extended past its first expiry
    now = show()
    if now["lease_until"] > first and time.time() > time.mktime(time.strptime(first[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + 1.5:
        break
    if time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.1)
sys.exit(0 if now["lease_valid"] and now["lease_holder"] == "john:abc123" else 4)
"""

WAITS_FOR_SIGTERM = """
import signal, sys, time, pathlib
marker = pathlib.Path(sys.argv[1])
def on_term(signum, frame):
    marker.write_text("terminated")
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
pathlib.Path(sys.argv[1] + ".started").write_text("yes")
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    time.sleep(0.05)
sys.exit(5)
"""


def env_with_path(cli: CLI) -> dict[str, str]:
    return {"PATH": str(Path(sys.executable).parent) + ":" + cli.env.get("PATH", "")}


def test_lease_is_held_past_its_ttl_while_the_command_runs(cli: CLI) -> None:
    # TTL 3 s, heartbeat every 1 s: a loaded machine may delay a beat, not three in a row
    result = cli("run", "t1", "--ttl", "3s", *JOHN, "--", sys.executable, "-c", OUTLIVES_TTL,
                 env=env_with_path(cli))
    assert result.returncode == 0, result.stderr
    shown = json.loads(cli("show", "t1", "--json").stdout)
    assert shown["lease_holder"] is None and shown["status"] == "open"
    kinds = [e["kind"] for e in json.loads(cli("log", "t1", "--json").stdout)]
    assert kinds.count("extended") >= 2 and kinds[-1] == "released"


def test_exit_code_passes_through_and_done_only_on_success(cli: CLI) -> None:
    failed = cli("run", "t1", "--done", *JOHN, "--", sys.executable, "-c", "raise SystemExit(7)")
    assert failed.returncode == 7
    assert json.loads(cli("show", "t1", "--json").stdout)["status"] == "open"
    ok = cli("run", "t1", "--done", *JOHN, "--", sys.executable, "-c", "pass")
    assert ok.returncode == 0
    assert json.loads(cli("show", "t1", "--json").stdout)["status"] == "done"


def test_claim_failure_means_the_command_never_starts(cli: CLI, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cli("claim", "t1", *PI)
    result = cli("run", "t1", *JOHN, "--", sys.executable, "-c",
                 f"open({str(marker)!r}, 'w').write('x')")
    assert result.returncode == 1 and "held by pi-orch:xyz456" in result.stderr
    assert not marker.exists()


def test_lost_lease_terminates_the_command(cli: CLI, tmp_path: Path) -> None:
    """A takeover after the lease expired unheartbeated (``run`` was stopped: a paused host, a
    long GC) makes ``run``'s next heartbeat fail: CMD gets SIGTERM, ``run`` names the new holder
    and exits 1. Deterministic: ``run`` is frozen with SIGSTOP while the lease expires and is
    taken over, so no heartbeat can land in between."""
    marker = tmp_path / "marker"
    proc = cli.popen("run", "t1", "--ttl", "2s", *JOHN, "--", sys.executable, "-c",
                     WAITS_FOR_SIGTERM, str(marker), stdout=-1, stderr=-1)
    started = Path(str(marker) + ".started")
    try:
        wait_for(lambda: started.exists() or proc.poll() is not None, what="the command to start")
        assert proc.poll() is None, proc.communicate()

        def show() -> dict:
            return json.loads(cli("show", "t1", "--json").stdout)

        while True:
            os.kill(proc.pid, signal.SIGSTOP)  # no heartbeat from here on
            wait_for(lambda: not show()["lease_valid"], what="the unheartbeated lease to expire")
            taken = cli("claim", "t1", *PI, env={"LEASEHOLD_BUSY_TIMEOUT": "2"})
            if taken.returncode == 0:
                break
            # frozen inside a heartbeat's transaction (the ledger is busy): let it finish, retry
            assert taken.returncode == 75, taken.stderr
            os.kill(proc.pid, signal.SIGCONT)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert marker.read_text() == "terminated"
    assert "lost the lease on t1" in err and "pi-orch:xyz456" in err, err
    shown = show()
    assert shown["lease_holder"] == "pi-orch:xyz456" and shown["fence"] == 2, shown


def test_run_without_a_command_is_usage_error(cli: CLI) -> None:
    result = cli("run", "t1", *JOHN)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    missing = cli("run", "t1", *JOHN, "--", "/nonexistent/program")
    assert missing.returncode == 2 and "cannot run" in missing.stderr
    assert cli("show", "t1", "--json").returncode == 3  # checked before the claim: nothing written


WAITS_FOR = """
import signal, sys, time, pathlib
marker = pathlib.Path(sys.argv[1])
def on_signal(signum, frame):
    marker.write_text(signal.Signals(signum).name)
    sys.exit(0)
for name in ("SIGTERM", "SIGINT", "SIGHUP"):
    signal.signal(getattr(signal, name), on_signal)
pathlib.Path(sys.argv[1] + ".started").write_text("yes")
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    time.sleep(0.05)
sys.exit(5)
"""





@pytest.mark.parametrize("name", ["SIGHUP", "SIGINT", "SIGTERM"])
def test_a_signal_to_run_reaches_the_command_and_the_lease_is_released(cli: CLI, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "marker"
    proc = cli.popen("run", "t1", *JOHN, "--", sys.executable, "-c", WAITS_FOR, str(marker),
                     stdout=-1, stderr=-1, start_new_session=True)  # no terminal sends it too
    started = Path(str(marker) + ".started")
    try:
        wait_for(lambda: started.exists() or proc.poll() is not None, what="the command to start")
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, getattr(signal, name))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert marker.read_text() == name, err
    assert proc.returncode == 0, err
    shown = json.loads(cli("show", "t1", "--json").stdout)
    assert not shown["lease_valid"] and shown["lease_holder"] is None, shown


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_failed_pdeathsig_request_is_reported_not_ignored(tmp_path: Path) -> None:
    """prctl(PR_SET_PDEATHSIG) refusing (here: a signal number the kernel rejects, EINVAL) is
    said on stderr; the command still runs."""
    import subprocess

    from leasehold.cli.run import child_argv

    out = subprocess.run(child_argv([sys.executable, "-c", "print('ran')"], deathsig=999),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "ran\n", out
    assert "prctl(PR_SET_PDEATHSIG) failed (Invalid argument)" in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1
    fine = subprocess.run(child_argv([sys.executable, "-c", "print('ran')"]),
                          capture_output=True, text=True, timeout=60)
    assert fine.returncode == 0 and fine.stdout == "ran\n" and fine.stderr == "", fine


#: ``leasehold run`` in a real process that sends itself ``argv[1]`` at the moment it starts
#: CMD (the lease is claimed, CMD not yet running): the signal must still end in a release.
_SIGNAL_AT_START = r"""
import os, signal, sys
sig = getattr(signal, sys.argv[1])
fired = []

def at_start(event, args):
    if event == "subprocess.Popen" and not fired:
        fired.append(1)
        os.kill(os.getpid(), sig)

sys.addaudithook(at_start)
from leasehold.cli import entry
sys.argv = ["leasehold", *sys.argv[2:]]
entry()
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_while_run_starts_its_command_still_releases_the_lease(cli: CLI, tmp_path: Path, name: str) -> None:
    import subprocess

    marker = tmp_path / "marker"
    env = dict(cli.env, LEASEHOLD_DB=cli.db)
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_AT_START, name, "run", "t1", *JOHN, "--",
                           sys.executable, "-c", WAITS_FOR, str(marker)],
                          env=env, cwd=cli.cwd, capture_output=True, text=True, timeout=60,
                          start_new_session=True)
    assert proc.returncode != 5 and "Traceback" not in proc.stderr, proc.stderr
    shown = json.loads(cli("show", "t1", "--json").stdout)
    assert not shown["lease_valid"] and shown["lease_holder"] is None, (shown, proc.stderr)
