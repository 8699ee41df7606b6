"""Missions end to end on copies of the fixture tree: racing real processes, the start flow on
and off a terminal, crash recovery, staleness with an injected clock, byte preservation."""

from __future__ import annotations

import json
import os
import select
import shutil
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from leasehold import Ledger
from leasehold.errors import Conflict, LeaseHeld
from leasehold.missions import Document, Missions
from leasehold.missions.board import iso_local, to_timestamp
from tests.conftest import CLI, FIXTURES, LEASEHOLD, REPO
from tests.test_races import RACERS, start_racers

MISSIONS = FIXTURES / "missions"
THAIFA = "2025-12-22-thaifa-migration-critical"
DOCS = "2025-12-23-docs-standards-refresh"
BILLING = "2025-12-21-billing-export"
BROKEN = "broken-frontmatter.md"
#: A fixed POSIX time zone (no tz database needed): claimed_at must carry its offset.
TZ = "XST-3"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A writable copy of the fixture tree (the originals are read-only)."""
    root = tmp_path / "missions"
    shutil.copytree(MISSIONS, root)
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_no_temp_files(root: Path) -> None:
    leftovers = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def run(cli: CLI, tree: Path, *args: str, who: str | None = None, **kw) -> subprocess.CompletedProcess[str]:
    """``leasehold missions --dir TREE ARGS`` as a real process (stdin not a terminal)."""
    ident = []
    if who:
        actor, _, session = who.partition(":")
        ident = ["--actor", actor, "--session", session]
    env = dict(kw.pop("env", None) or {}, TZ=TZ)
    return cli("missions", "--dir", str(tree), *args, *ident, input=kw.pop("input", ""), env=env, **kw)


def read(tree: Path, folder: str, mission_id: str) -> Document:
    path = tree / folder / f"{mission_id}.md"
    return Document.parse(path.read_text(encoding="utf-8"), str(path))


def claimed_lines(doc: Document) -> list[str]:
    return [line for line in doc.log_lines() if "**CLAIMED**" in line]


def add_queued(tree: Path, count: int) -> list[str]:
    board = Missions(str(tree), None)
    priorities = ["high", None, "low", 3, "P1", None, "medium", "critical"]
    return [board.new(f"Extra mission number {i}", priority=priorities[i % len(priorities)]).id
            for i in range(count)]


# -- racing real processes ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["cli", "exec"])
def test_sixteen_processes_claim_next_over_ten_queued_missions(cli: CLI, tmp_path: Path, tree: Path,
                                                               mode: str) -> None:
    broken = (tree / "queue" / BROKEN).read_bytes()
    billing = (tree / "active" / f"{BILLING}.md").read_bytes()
    queued = sorted([THAIFA, DOCS, *add_queued(tree, 8)])
    assert len(queued) == 10
    cli.env["TZ"] = TZ
    procs, _ = start_racers(cli, tmp_path, mode, f"missions-{mode}", lambda i: [
        "missions", "--dir", str(tree), "claim", "--next", "--actor", f"racer{i}", "--session", f"s{i}", "--json"])
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]

    winners: dict[str, str] = {}
    for i, (code, out, err) in enumerate(results):
        assert f"{BROKEN}:4: invalid frontmatter" in err, err  # reported by every process
        if code == 0:
            data = json.loads(out)
            assert data["action"] == "claimed" and not data["recovered"]
            mission_id = data["mission"]["id"]
            assert mission_id not in winners, f"{mission_id} claimed twice"
            winners[mission_id] = f"racer{i}:s{i}"
            assert data["mission"]["lease_holder"] == winners[mission_id]
        else:
            assert code == 1, err
            assert "no mission available to claim" in err
    assert sorted(winners) == queued
    assert sum(1 for code, _, _ in results if code == 1) == RACERS - 10

    assert sorted(os.listdir(tree / "queue")) == [BROKEN]
    assert (tree / "queue" / BROKEN).read_bytes() == broken  # reported, never rewritten
    assert sorted(os.listdir(tree / "active")) == sorted([f"{m}.md" for m in queued] + [f"{BILLING}.md"])
    assert (tree / "active" / f"{BILLING}.md").read_bytes() == billing
    assert os.listdir(tree / "done") == [".keep"]
    assert_no_temp_files(tree)
    with Ledger.open(cli.db) as ledger:
        for mission_id, holder in winners.items():
            doc = read(tree, "active", mission_id)
            assert doc.data["status"] == "ACTIVE"
            assert doc.data["claimed_by"] == holder
            task = ledger.show(mission_id)
            assert task.lease_holder == holder and task.fence == 1
            claimed_at = doc.data["claimed_at"]
            assert claimed_at.utcoffset().total_seconds() == 3 * 3600  # ISO with the local offset
            assert abs(to_timestamp(claimed_at) - task.lease_acquired_at) < 1
            assert claimed_lines(doc) == [f'{claimed_at:%H:%M} - **CLAIMED** by session "{holder}"']
            assert f"\n### {claimed_at:%Y-%m-%d}\n\n- {claimed_at:%H:%M} - **CLAIMED**" in doc.text
        grants = Counter(e.task_id for e in ledger.events()
                         if e.kind == "claimed" and not e.details.get("renewed"))
        assert grants == dict.fromkeys(queued, 1)


def test_claim_next_order_is_priority_then_created_then_file_name(cli: CLI, tree: Path) -> None:
    board = Missions(str(tree), None)
    low = board.new("Low one", mission_id="a-low", priority="low")
    crit = board.new("Critical one", mission_id="z-critical", priority="critical")
    num = board.new("Numbered", mission_id="m-five", priority=5)
    order = []
    for _ in range(5):
        r = run(cli, tree, "claim", "--next", "--json", who="w:one")
        assert r.returncode == 0, r.stderr
        order.append(json.loads(r.stdout)["mission"]["id"])
    # 5 > critical (3) > no priority (normal) > low; equal ranks by created date, then file name
    assert order == [num.id, crit.id, THAIFA, DOCS, low.id]
    r = run(cli, tree, "claim", "--next", who="w:one")
    assert r.returncode == 1 and "no mission available to claim" in r.stderr


# -- the start-of-session flow -----------------------------------------------------------------
def test_start_without_a_terminal_prints_and_changes_nothing(cli: CLI, tree: Path) -> None:
    before = snapshot(tree)
    r = run(cli, tree, "start")
    assert r.returncode == 0, r.stderr
    assert "Active missions (1):" in r.stdout
    assert f'{BILLING}  "Billing export"  claimed 2025-12-21T09:15:00+01:00 by "Billing export session"' in r.stdout
    assert "STALE" in r.stdout
    assert r.stdout.index(THAIFA) < r.stdout.index(DOCS)  # queue in claim order
    assert f"{BROKEN}:4: invalid frontmatter" in r.stderr
    r = run(cli, tree, "start", "--json", who="a:s1")
    data = json.loads(r.stdout)
    assert [m["id"] for m in data["active"]] == [BILLING]
    assert data["active"][0]["stale"] is True and data["active"][0]["state"] == "stale"
    assert [m["id"] for m in data["queue"]] == [THAIFA, DOCS]
    assert data["invalid"] == [{"file": str(tree / "queue" / BROKEN), "line": 4,
                                "error": data["invalid"][0]["error"]}]
    assert data["action"] is None
    assert snapshot(tree) == before


def test_start_with_a_flag_acts_without_a_terminal(cli: CLI, tree: Path) -> None:
    r = run(cli, tree, "start", "--next", "--as", "Thaifa P0 migration", "--json", who="a:s1")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["action"]["action"] == "claimed" and data["action"]["mission"]["id"] == THAIFA
    assert read(tree, "active", THAIFA).data["claimed_by"] == "Thaifa P0 migration"
    r = run(cli, tree, "start", "--resume", BILLING, "--json", who="b:s2")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["action"]["action"] == "resumed"
    r = run(cli, tree, "start", "--resume", BILLING, who="c:s3")
    assert r.returncode == 1 and "held by b:s2" in r.stderr


class Terminal:
    """A process on a pseudo-terminal, driven like a person would."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        import pty

        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     close_fds=True, start_new_session=True)
        os.close(slave)
        self.output = b""
        self.seen = 0

    def _read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: the process closed the terminal
            chunk = b""
        if not chunk:
            raise EOFError
        self.output += chunk
        return chunk

    def expect(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output[self.seen:]:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"never saw {text!r} in {self.output.decode(errors='replace')!r}"
            try:
                self._read(remaining)
            except EOFError:
                raise AssertionError(f"the process ended before {text!r}: {self.output.decode()!r}") from None
        self.seen = self.output.index(text.encode(), self.seen) + len(text)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._read(0.2)
            except EOFError:
                break
            if self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                break
        code = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        os.close(self.master)
        return code, self.output.decode(errors="replace").replace("\r\n", "\n")


def terminal(cli: CLI, tree: Path, *args: str) -> Terminal:
    env = dict(cli.env, LEASEHOLD_DB=cli.db, TZ=TZ)
    return Terminal([LEASEHOLD, "missions", "--dir", str(tree), "start", *args], env, cli.cwd)


def test_start_on_a_terminal_asks_then_claims_from_the_queue(cli: CLI, tree: Path) -> None:
    term = terminal(cli, tree, "--actor", "ann", "--session", "t1", "--as", "Thaifa P0 migration")
    term.expect("Active missions (1):")
    term.expect("STALE")
    term.expect("Resume an active mission (1-1), start a new one from the queue (n), or quit (q)? ")
    term.send("maybe\n")
    term.expect("Please answer one of")
    term.expect("or quit (q)? ")
    term.send("n\n")
    term.expect("Claim a mission (1-2, Enter for the next in order, q to quit)? ")
    term.send("\n")
    code, output = term.finish()
    assert code == 0, output
    assert f"claimed {THAIFA} as ann:t1" in output
    doc = read(tree, "active", THAIFA)
    assert doc.data["claimed_by"] == "Thaifa P0 migration"
    assert claimed_lines(doc) == [f'{doc.data["claimed_at"]:%H:%M} - **CLAIMED** by session "Thaifa P0 migration"']
    assert_no_temp_files(tree)


def test_start_on_a_terminal_resumes_the_stale_mission(cli: CLI, tree: Path) -> None:
    term = terminal(cli, tree, "--actor", "ann", "--session", "t2")
    term.expect("or quit (q)? ")
    term.send("1\n")
    code, output = term.finish()
    assert code == 0, output
    assert f"resumed {BILLING} as ann:t2" in output
    doc = read(tree, "active", BILLING)
    assert doc.data["claimed_by"] == "ann:t2" and doc.data["status"] == "ACTIVE"
    assert doc.log_lines()[-1].endswith(
        '**RESUMED** by session "ann:t2" (was claimed by "Billing export session" at 2025-12-21T09:15:00+01:00)')
    r = run(cli, tree, "list", "--json")
    billing = next(m for m in json.loads(r.stdout)["missions"] if m["id"] == BILLING)
    assert billing["state"] == "held" and billing["lease_holder"] == "ann:t2" and billing["stale"] is False


def test_start_on_a_terminal_quit_changes_nothing(cli: CLI, tree: Path) -> None:
    before = snapshot(tree)
    term = terminal(cli, tree)  # no session needed just to look
    term.expect("or quit (q)? ")
    term.send("q\n")
    code, _ = term.finish()
    assert code == 0
    assert snapshot(tree) == before


# -- crash recovery ----------------------------------------------------------------------------
CRASH = ("import os, sys\n"
         "import leasehold.missions.files as files\n"
         "setattr(files, sys.argv[1], lambda *a, **k: os._exit(9))\n"
         "from leasehold.cli import main\n"
         "sys.exit(main(sys.argv[2:]))\n")


def crash_at(cli: CLI, tree: Path, point: str, *args: str) -> None:
    """Run ``leasehold missions ARGS`` in a process that dies (exit 9) when it reaches
    ``files.<point>``."""
    env = dict(cli.env, LEASEHOLD_DB=cli.db, PYTHONPATH=str(REPO), TZ=TZ)
    proc = subprocess.run([sys.executable, "-c", CRASH, point, "missions", "--dir", str(tree), *args],
                          env=env, cwd=cli.cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr


def wait_until_expired(db: str, mission_id: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    with Ledger.open(db) as ledger:
        while ledger.show(mission_id).lease_valid(ledger.now()):
            assert time.monotonic() < deadline, "the lease never expired"
            time.sleep(0.05)


def test_crash_between_lease_and_move_recovers(cli: CLI, tree: Path) -> None:
    original = (tree / "queue" / f"{THAIFA}.md").read_bytes()
    crash_at(cli, tree, "move", "claim", "--next", "--actor", "a", "--session", "crashed")
    assert (tree / "queue" / f"{THAIFA}.md").read_bytes() == original  # leased, not moved

    r = run(cli, tree, "claim", THAIFA, who="b:other")
    assert r.returncode == 1 and f"{THAIFA} held by a:crashed until" in r.stderr
    r = run(cli, tree, "claim", "--next", "--json", who="b:other")  # skips it, takes the next
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["mission"]["id"] == DOCS and data["skipped"] == [{"id": THAIFA, "holder": "a:crashed"}]
    listing = json.loads(run(cli, tree, "list", "--json").stdout)["missions"]
    assert next(m for m in listing if m["id"] == THAIFA)["state"] == "leased"

    r = run(cli, tree, "claim", "--next", "--json", who="a:crashed")  # the holder finishes its claim
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["mission"]["id"] == THAIFA and data["recovered"] is True
    assert sorted(os.listdir(tree / "queue")) == [BROKEN]
    doc = read(tree, "active", THAIFA)
    assert doc.data["claimed_by"] == "a:crashed" and len(claimed_lines(doc)) == 1
    with Ledger.open(cli.db) as ledger:
        assert ledger.show(THAIFA).fence == 1  # one grant, renewed: no second claim
    assert_no_temp_files(tree)


def test_mission_commands_with_an_op_id_apply_their_ledger_steps_once(cli: CLI, tree: Path) -> None:
    """--op-id on claim, log, done: each ledger step carries ID/KIND-N, so rerunning a command
    (after a crash, a 75 or a 76) replays what applied; the id reused with other arguments is
    exit 2 naming it."""
    crash_at(cli, tree, "move", "claim", THAIFA, "--actor", "a", "--session", "s", "--op-id", "m-1")
    r = run(cli, tree, "claim", THAIFA, "--op-id", "m-1", "--json", who="a:s")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["mission"]["id"] == THAIFA
    again = run(cli, tree, "claim", THAIFA, "--op-id", "m-1", "--json", who="a:s")
    assert again.returncode == 0 and json.loads(again.stdout)["action"] == "unchanged"
    for _ in range(2):
        assert run(cli, tree, "log", THAIFA, "step one", "--op-id", "m-2", who="a:s").returncode == 0
    for _ in range(2):
        done = run(cli, tree, "done", THAIFA, "--op-id", "m-3", "--json", who="a:s")
        assert done.returncode == 0, done.stderr
    misuse = run(cli, tree, "claim", DOCS, "--op-id", "m-1", who="a:s")
    assert misuse.returncode == 2 and "operation id m-1/claim-1 was already used" in misuse.stderr
    with Ledger.open(cli.db) as ledger:
        events = [e.kind for e in ledger.events(THAIFA)]
        assert events.count("claimed") == 1 and events.count("completed") == 1
        assert ledger.show(THAIFA).status == "done" and ledger.show(THAIFA).fence == 1
        assert ledger.lookup_op("m-1/claim-1") is not None
        assert ledger.lookup_op("m-3/complete-1") is not None
        assert ledger.status(DOCS) is None  # the misused id applied nothing
    logged = read(tree, "done", THAIFA).log_lines()
    assert sum("step one" in line for line in logged) == 2  # the file step is not an op: twice
    assert sum("**DONE**" in line for line in logged) == 1
    too_long = run(cli, tree, "claim", DOCS, "--op-id", "x" * 190, who="a:s")
    assert too_long.returncode == 2 and "180" in too_long.stderr


@pytest.mark.parametrize("db_url", ["sqlite", "postgres", "remote"], indirect=True)
def test_a_mission_rerun_with_an_op_id_never_acts_on_a_lease_taken_over_since(cli: CLI, tree: Path) -> None:
    """A rerun with --op-id replays the ledger steps that applied; a replayed lease is the first
    run's: when another session has taken the mission over since, the rerun is refused (exit 1)
    and leaves the mission file alone, as the same command without --op-id is."""
    assert run(cli, tree, "claim", THAIFA, who="a:s").returncode == 0
    assert run(cli, tree, "log", THAIFA, "first", "--op-id", "L1", who="a:s").returncode == 0
    # the first `done` proved (extended) the lease, then died before moving the file
    crash_at(cli, tree, "move", "done", THAIFA, "--actor", "a", "--session", "s", "--op-id", "D1")
    taken = run(cli, tree, "requeue", THAIFA, "--force", "--reason", "a:s is gone", who="b:t")
    assert taken.returncode == 0, taken.stderr
    assert run(cli, tree, "claim", THAIFA, who="b:t").returncode == 0
    before = (tree / "active" / f"{THAIFA}.md").read_bytes()
    for args in (("done", THAIFA, "--op-id", "D1"), ("log", THAIFA, "first", "--op-id", "L1")):
        r = run(cli, tree, *args, who="a:s")
        assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
        assert "held by b:t" in r.stderr, r.stderr
        assert (tree / "active" / f"{THAIFA}.md").read_bytes() == before, args
    with Ledger.open(cli.db) as ledger:
        task = ledger.show(THAIFA)
        assert task.status != "done" and task.lease_actor == "b" and task.fence == 3


def test_crash_between_move_and_rewrite_is_finished_by_the_holder(cli: CLI, tree: Path) -> None:
    original = (tree / "queue" / f"{THAIFA}.md").read_bytes()
    crash_at(cli, tree, "atomic_write", "claim", THAIFA, "--actor", "a", "--session", "crashed")
    assert not (tree / "queue" / f"{THAIFA}.md").exists()
    assert (tree / "active" / f"{THAIFA}.md").read_bytes() == original  # moved, not yet rewritten
    r = run(cli, tree, "claim", THAIFA, "--json", who="a:crashed")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["recovered"] is True
    doc = read(tree, "active", THAIFA)
    assert doc.data["status"] == "ACTIVE" and len(claimed_lines(doc)) == 1
    r = run(cli, tree, "claim", THAIFA, "--json", who="a:crashed")  # idempotent
    assert json.loads(r.stdout)["action"] == "unchanged"
    assert (tree / "active" / f"{THAIFA}.md").read_bytes() == doc.text.encode()


def test_half_claimed_mission_with_expired_lease_is_stale_and_resumable(cli: CLI, tree: Path) -> None:
    crash_at(cli, tree, "atomic_write", "claim", THAIFA, "--ttl", "1s", "--actor", "a", "--session", "crashed")
    wait_until_expired(cli.db, THAIFA)
    stale = json.loads(run(cli, tree, "list", "--stale", "--json").stdout)["missions"]
    assert sorted(m["id"] for m in stale) == [BILLING, THAIFA]
    r = run(cli, tree, "claim", THAIFA, who="b:s2")
    assert r.returncode == 1 and "resume" in r.stderr
    r = run(cli, tree, "resume", THAIFA, "--json", who="b:s2")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["action"] == "resumed" and data["mission"]["fence"] == 2
    doc = read(tree, "active", THAIFA)
    assert doc.data["status"] == "ACTIVE" and doc.data["claimed_by"] == "b:s2"
    assert '**RESUMED** by session "b:s2"' in doc.log_lines()[-1]


def test_crash_in_done_between_move_and_rewrite_is_finished_by_a_rerun(cli: CLI, tree: Path) -> None:
    assert run(cli, tree, "claim", THAIFA, who="a:s1").returncode == 0
    crash_at(cli, tree, "atomic_write", "done", THAIFA, "--actor", "a", "--session", "s1")
    assert read(tree, "done", THAIFA).data["status"] == "ACTIVE"
    r = run(cli, tree, "done", THAIFA, "--json", who="a:s1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["recovered"] is True
    doc = read(tree, "done", THAIFA)
    assert doc.data["status"] == "DONE" and doc.log_lines()[-1].endswith('**DONE** by session "a:s1"')
    with Ledger.open(cli.db) as ledger:
        task = ledger.show(THAIFA)
        assert task.status == "done" and task.lease_holder is None


# -- staleness with an injected clock ----------------------------------------------------------
def test_stale_detection_with_an_injected_clock(sqlite_url: str, tree: Path, clock) -> None:
    claimed = to_timestamp("2025-12-21T09:15:00+01:00")
    clock.now = claimed + 3600
    with Ledger.open(sqlite_url, clock=clock) as ledger:
        board = Missions(str(tree), ledger)

        def state(mission_id: str) -> tuple[str, bool]:
            views, _ = board.overview()
            view = next(v for v in views if v.mission.id == mission_id)
            return view.state, view.stale

        assert state(BILLING) == ("unleased", False)  # an hour old, no lease: not stale yet
        clock.now = claimed + 24 * 3600 + 1
        assert state(BILLING) == ("stale", True)
        assert Missions(str(tree), ledger, stale_after=48 * 3600).view(board.find(BILLING)).stale is False

        outcome = board.claim(THAIFA, "a:s1", ttl=600)
        assert read(tree, "active", THAIFA).data["claimed_at"].isoformat() == iso_local(clock.now)
        assert state(THAIFA) == ("held", False)
        clock.advance(601)
        assert state(THAIFA) == ("expired", False)  # lease gone, claim recent: resumable, not stale
        with pytest.raises(Conflict, match="not stale"):
            board.requeue(THAIFA, "b:s2")
        clock.advance(24 * 3600)
        assert state(THAIFA) == ("stale", True)
        board.requeue(THAIFA, "b:s2", reason="abandoned")
        doc = read(tree, "queue", THAIFA)
        assert doc.data["status"] == "QUEUED" and doc.data["claimed_at"] is None and doc.data["claimed_by"] is None
        assert doc.log_lines()[-1].endswith('**REQUEUED** by session "b:s2": abandoned')
        assert ledger.show(THAIFA).lease_holder is None and outcome.lease.fence == 1


def test_log_extends_the_lease_and_starts_a_new_day_heading(sqlite_url: str, tree: Path, clock) -> None:
    clock.now = to_timestamp("2026-03-01T22:00:00+00:00")
    with Ledger.open(sqlite_url, clock=clock) as ledger:
        board = Missions(str(tree), ledger)
        board.claim(THAIFA, "a:s1", ttl=600)
        clock.advance(500)
        until = board.log(THAIFA, "a:s1", "Starting objective 1").lease.expires_at
        assert until == clock.now + 600
        clock.advance(4 * 3600)  # the lease expired meanwhile; nobody took it: granted again
        lease = board.log(THAIFA, "a:s1", "Objective 1 done").lease
        assert lease.fence == 2
        with pytest.raises(LeaseHeld):
            board.log(THAIFA, "b:s2", "not mine")
        days = [line for line in read(tree, "active", THAIFA).text.splitlines() if line.startswith("### ")]
        first, second = (iso_local(t)[:10] for t in (clock.now - 4 * 3600, clock.now))
        assert days == ([f"### {first}", f"### {second}"] if first != second else [f"### {first}"])


# -- byte preservation, invalid files, the rest of the CLI ------------------------------------
def test_claim_log_done_change_only_the_lines_they_own(cli: CLI, tree: Path) -> None:
    original = (tree / "queue" / f"{THAIFA}.md").read_text()
    assert run(cli, tree, "claim", THAIFA, "--as", "Thaifa P0 migration", who="a:s1").returncode == 0
    doc = read(tree, "active", THAIFA)
    at = doc.data["claimed_at"]
    expected = (original.replace("status: QUEUED\n", "status: ACTIVE\n")
                .replace("claimed_at:\n", f"claimed_at: {at.isoformat()}\n")
                .replace("claimed_by:\n", 'claimed_by: "Thaifa P0 migration"\n')
                + f'\n### {at:%Y-%m-%d}\n\n- {at:%H:%M} - **CLAIMED** by session "Thaifa P0 migration"\n')
    assert doc.text == expected
    assert run(cli, tree, "log", THAIFA, "Starting objective 1: migrate admin/", who="a:s1").returncode == 0
    logged = read(tree, "active", THAIFA).text
    assert logged.startswith(expected) and logged[len(expected):].endswith(" - Starting objective 1: migrate admin/\n")
    r = run(cli, tree, "done", THAIFA, "--note", "all three", "--json", who="a:s1")
    assert r.returncode == 0, r.stderr
    done = (tree / "done" / f"{THAIFA}.md").read_text()
    assert done.startswith(logged.replace("status: ACTIVE\n", "status: DONE\n"))
    assert done.endswith(' - **DONE** by session "Thaifa P0 migration": all three\n')
    assert not (tree / "active" / f"{THAIFA}.md").exists()
    assert json.loads(r.stdout)["mission"]["folder"] == "done"
    assert_no_temp_files(tree)


def test_invalid_frontmatter_is_reported_and_never_rewritten(cli: CLI, tree: Path) -> None:
    broken = (tree / "queue" / BROKEN).read_bytes()
    r = run(cli, tree, "claim", "broken-frontmatter", who="a:s1")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and f"{BROKEN}:4: invalid frontmatter" in r.stderr
    r = run(cli, tree, "list")
    assert r.returncode == 0 and THAIFA in r.stdout and BILLING in r.stdout
    assert f"{BROKEN}:4" in r.stderr
    assert (tree / "queue" / BROKEN).read_bytes() == broken


def test_exit_codes_of_misuse(cli: CLI, tree: Path) -> None:
    assert run(cli, tree, "claim", "no-such-mission", who="a:s1").returncode == 3
    assert run(cli, tree, "claim", who="a:s1").returncode == 2
    assert run(cli, tree, "claim", THAIFA).returncode == 2  # no session
    assert run(cli, tree, "log", THAIFA, "x", who="a:s1").returncode == 1  # queued, not active
    assert run(cli, tree, "claim", THAIFA, who="a:s1").returncode == 0
    r = run(cli, tree, "log", THAIFA, "x", who="b:s2")
    assert r.returncode == 1 and "held by a:s1" in r.stderr
    assert run(cli, tree, "done", THAIFA, who="b:s2").returncode == 1
    assert run(cli, tree, "resume", THAIFA, who="b:s2").returncode == 1
    assert run(cli, tree, "requeue", THAIFA, who="b:s2").returncode == 1
    assert run(cli, tree, "requeue", THAIFA, "--force", who="b:s2").returncode == 2  # no --reason
    r = run(cli, tree, "requeue", THAIFA, "--force", "--reason", "session died", "--json", who="b:s2")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["mission"]["folder"] == "queue"
    with Ledger.open(cli.db) as ledger:
        assert [e.kind for e in ledger.events(THAIFA)][-3:] == ["force_released", "claimed", "released"]
    assert run(cli, tree, "claim", BILLING, who="a:s1").returncode == 1  # active: resume it
    r = cli("missions", "--dir", str(tree / "nowhere"), "list")
    assert r.returncode == 3 and "missions init" in r.stderr


def test_init_new_and_the_missions_dir_setting(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "leasehold.toml").write_text('missions_dir = "work/missions"\nstale_after = "3650d"\n')
    r = cli("missions", "init", "--json")
    assert r.returncode == 0, r.stderr
    root = tmp_path / "work" / "missions"
    assert sorted(os.listdir(root)) == ["TEMPLATE.md", "active", "done", "queue"]
    template = Document.parse((root / "TEMPLATE.md").read_text())
    assert list(template.data) == ["mission_id", "status", "assigned_to", "created", "claimed_at", "claimed_by"]
    assert cli("missions", "init").stdout.strip().endswith("is already set up")
    r = cli("missions", "new", "Thaifa migration (critical)", "--priority", "high", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["id"].endswith("-thaifa-migration-critical") and data["status"] == "QUEUED"
    doc = read(root, "queue", data["id"])
    assert doc.title == "Thaifa migration (critical)" and doc.data["priority"] == "high"
    assert cli("missions", "new", "Thaifa migration (critical)").returncode == 1  # the id exists
    r = cli("missions", "new", "Other", "--id", "m-2", env={"LEASEHOLD_MISSIONS_DIR": str(tmp_path / "elsewhere")})
    assert r.returncode == 3  # that folder is not set up
    shutil.copytree(MISSIONS / "active", root / "active", dirs_exist_ok=True)
    listing = json.loads(cli("missions", "list", "--json").stdout)["missions"]
    billing = next(m for m in listing if m["id"] == BILLING)
    assert billing["stale"] is False and billing["state"] == "unleased"  # stale_after = 3650d


def test_list_json_shape(cli: CLI, tree: Path) -> None:
    assert run(cli, tree, "claim", THAIFA, who="a:s1").returncode == 0
    data = json.loads(run(cli, tree, "list", "--all", "--json").stdout)
    assert set(data) == {"missions", "invalid"}
    mission = next(m for m in data["missions"] if m["id"] == THAIFA)
    assert set(mission) == {"id", "title", "folder", "file", "status", "priority", "created", "claimed_at",
                            "claimed_by", "lease_holder", "lease_until", "lease_valid", "fence", "state",
                            "stale", "age_seconds"}
    assert mission["lease_holder"] == "a:s1" and mission["lease_valid"] is True and mission["state"] == "held"
    assert data["invalid"][0]["line"] == 4


def test_every_missions_command_has_help_with_examples(cli: CLI) -> None:
    for command in ("init", "new", "list", "start", "claim", "log", "done", "requeue", "resume"):
        r = cli("missions", command, "--help", db=False)
        assert r.returncode == 0 and "examples:\n  leasehold missions" in r.stdout and "exit codes:" in r.stdout


def test_a_mission_that_cannot_be_edited_in_place_is_skipped_and_its_lease_released(
        cli: CLI, tree: Path) -> None:
    """Valid YAML that the in-place edit cannot extend (a flow mapping): claim fails with exit 2
    and a clear line, nothing is moved, the lease it took is released, and claim --next goes on
    to the next mission instead of failing."""
    flow = tree / "queue" / "flow-1.md"
    flow.write_text("---\n{mission_id: flow-1, status: QUEUED, priority: critical}\n---\n# Flow\n")
    before = flow.read_bytes()
    proc = run(cli, tree, "claim", "flow-1", who="ann:s1")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "flow-1.md" in proc.stderr
    assert flow.read_bytes() == before
    status = cli("status", "flow-1", "--json")
    assert status.returncode in (0, 3), status.stderr
    assert status.returncode == 3 or json.loads(status.stdout).get("lease_holder") is None, status.stdout

    proc = run(cli, tree, "claim", "--next", "--json", who="bob:s2")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["mission"]["id"] != "flow-1"
    assert [s["id"] for s in data["skipped"]] == ["flow-1"]
    assert flow.read_bytes() == before
    status = cli("status", "flow-1", "--json")
    assert status.returncode == 3 or json.loads(status.stdout).get("lease_holder") is None, status.stdout
    assert_no_temp_files(tree)

    # alone in the queue: the reason is given, not "leased by other sessions"
    for other in (tree / "queue").glob("*.md"):
        if other.name not in ("flow-1.md", BROKEN):
            assert run(cli, tree, "claim", other.stem, who="bob:s2").returncode == 0
    proc = run(cli, tree, "claim", "--next", who="bob:s2")
    assert proc.returncode == 1
    assert "cannot set status" in proc.stderr and "leased by other sessions" not in proc.stderr


def test_requeue_refusal_names_the_stale_threshold(cli: CLI, tree: Path) -> None:
    assert run(cli, tree, "claim", THAIFA, who="ann:s1").returncode == 0
    assert cli("release", THAIFA, "--actor", "ann", "--session", "s1").returncode == 0
    proc = run(cli, tree, "requeue", THAIFA, who="bob:s2")
    assert proc.returncode == 1
    assert "not stale" in proc.stderr and "stale after 1d " in proc.stderr, proc.stderr
