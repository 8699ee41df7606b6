"""A hypothesis state machine: the SQLite ledger against a simple reference model, with an
injected clock so expiry is exercised exactly at and around its boundary."""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from leasehold import (
    Holder,
    LeaseExpired,
    LeaseHeld,
    Ledger,
    NotFound,
    NotHolder,
    TaskDone,
)
from leasehold.invariants import check_invariants
from tests.conftest import FakeClock

TASKS = st.sampled_from(["a", "b", "c"])
HOLDERS = st.sampled_from([Holder("ann", "s1"), Holder("ann", "s2"), Holder("bob", "s1")])
TTLS = st.sampled_from([1, 5, 30])


class Model:
    def __init__(self) -> None:
        self.tasks: dict[str, dict] = {}

    def valid(self, t: dict, now: float) -> bool:
        return t["holder"] is not None and now < t["until"]


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="leasehold-hyp-")
        self.clock = FakeClock()
        self.ledger = Ledger.open(f"{self.dir}/l.db", create=True, clock=self.clock)
        self.model = Model()

    def teardown(self) -> None:
        self.ledger.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(task=TASKS, who=HOLDERS, ttl=TTLS)
    def claim(self, task: str, who: Holder, ttl: int) -> None:
        now = self.clock.now
        t = self.model.tasks.setdefault(task, {"status": "open", "holder": None, "until": None,
                                                "ttl": None, "fence": 0})
        try:
            lease = self.ledger.claim(task, who, ttl)
        except TaskDone:
            assert t["status"] == "done"
            return
        except LeaseHeld as e:
            assert self.model.valid(t, now) and t["holder"] != who
            assert e.holder == str(t["holder"]) and e.fence == t["fence"]
            return
        assert t["status"] != "done"
        assert not (self.model.valid(t, now) and t["holder"] != who)
        if not (self.model.valid(t, now) and t["holder"] == who):
            t["fence"] += 1
        t.update(status="in_progress", holder=who, until=now + ttl, ttl=ttl)
        assert lease.fence == t["fence"]
        assert lease.expires_at == now + ttl

    @rule(task=TASKS, who=HOLDERS)
    def extend(self, task: str, who: Holder) -> None:
        now = self.clock.now
        t = self.model.tasks.get(task)
        try:
            lease = self.ledger.extend(task, who)
        except NotFound:
            assert t is None
            return
        except (LeaseHeld, NotHolder, LeaseExpired):
            assert t is not None and not (self.model.valid(t, now) and t["holder"] == who)
            return
        assert t is not None and self.model.valid(t, now) and t["holder"] == who
        t["until"] = now + t["ttl"]
        assert lease.expires_at == t["until"] and lease.fence == t["fence"]

    @rule(task=TASKS, who=HOLDERS, keep=st.booleans())
    def release(self, task: str, who: Holder, keep: bool) -> None:
        now = self.clock.now
        t = self.model.tasks.get(task)
        try:
            result = self.ledger.release(task, who, keep_status=keep)
        except NotFound:
            assert t is None
            return
        except LeaseHeld:
            assert t is not None and self.model.valid(t, now) and t["holder"] != who
            return
        assert t is not None
        if t["holder"] == who:
            assert result.released
            t.update(holder=None, until=None, ttl=None)
            if not keep:
                t["status"] = "open"
        else:
            assert not result.released

    @rule(task=TASKS, who=HOLDERS)
    def complete(self, task: str, who: Holder) -> None:
        now = self.clock.now
        t = self.model.tasks.get(task)
        try:
            self.ledger.complete(task, who)
        except NotFound:
            assert t is None
            return
        except (LeaseHeld, NotHolder):
            assert t is not None and t["holder"] != who
            if self.model.valid(t, now):
                pass
            return
        assert t is not None and t["holder"] == who
        t.update(status="done", holder=None, until=None, ttl=None)

    @rule(who=HOLDERS, ttl=TTLS)
    def next(self, who: Holder, ttl: int) -> None:
        now = self.clock.now
        leases = self.ledger.next(who, ttl)
        ready = sorted(k for k, t in self.model.tasks.items()
                       if t["status"] != "done" and not self.model.valid(t, now))
        if not ready:
            assert leases == []
            return
        assert len(leases) == 1 and leases[0].task_id in ready
        t = self.model.tasks[leases[0].task_id]
        t["fence"] += 1
        t.update(status="in_progress", holder=who, until=now + ttl, ttl=ttl)
        assert leases[0].fence == t["fence"]

    @rule(auto=st.booleans())
    def sweep(self, auto: bool) -> None:
        now = self.clock.now
        expired = sorted(t.id for t in self.ledger.sweep(auto_release=auto))
        expected = sorted(k for k, t in self.model.tasks.items()
                          if t["holder"] is not None and not self.model.valid(t, now))
        assert expired == expected
        if auto:
            for k in expected:
                t = self.model.tasks[k]
                t.update(holder=None, until=None, ttl=None)
                if t["status"] == "in_progress":
                    t["status"] = "open"

    @rule(seconds=st.sampled_from([0.5, 1, 4.999, 5, 29, 31]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def state_matches(self) -> None:
        for task_id, t in self.model.tasks.items():
            real = self.ledger.status(task_id)
            assert real is not None
            assert real.status == t["status"], task_id
            assert real.fence == t["fence"], task_id
            holder = str(t["holder"]) if t["holder"] is not None else None
            assert real.lease_holder == holder, task_id
            assert real.lease_until == t["until"], task_id

    @precondition(lambda self: bool(self.model.tasks))
    @invariant()
    def event_log_invariants(self) -> None:
        assert check_invariants(self.ledger.events()) == []


LedgerMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase
