"""A linearizability checker for recorded histories of lease operations.

The algorithm is Wing and Gong's search (1993) in Lowe's formulation ("Testing for
linearizability", 2017), with the memoisation Porcupine and Knossos use: the search walks a
doubly linked list of call and return entries ordered by time; a call whose operation the
model accepts in the current state is linearized (its call and return entries are lifted out
of the list) unless the pair (set of linearized operations, model state) was reached before;
reaching a return entry means an operation that must already have taken effect could not be
placed, so the search backtracks. The history is linearizable when every operation with a
known outcome has been placed.

Outcomes (``Op.outcome``):

- ``ok``: the call returned a definite answer (``Op.value``): it took effect exactly once,
  between its invoke and return times, with that answer.
- ``fail``: the ledger said "not applied" (exit 75, ``StoreBusy`` / ``StoreUnavailable``):
  it must have had no effect, so it is left out of the search. If it did apply, the history is
  not linearizable -- exactly what is being verified.
- ``info``: the outcome is unknown (the client was SIGKILLed mid-call, exit 76
  ``OutcomeUnknown``): return time infinity; it may take effect at any point after its invoke
  or never, with any answer.

Histories are partitioned per task id (each operation touches one task, and the tasks are
independent objects), and each partition is checked within a time limit; a search that runs
out of time reports ``unknown`` instead of hanging.
"""

from __future__ import annotations

import time as _time

from verify.model import INIT, READS, State, describe, never_changes, step

LINEARIZABLE, VIOLATION, UNKNOWN = "linearizable", "violation", "unknown"


class Op:
    """One operation of a history. ``invoke`` / ``ret`` are seconds on a clock shared by all
    processes (``time.monotonic``: system-wide on Linux); ``ret`` is None when the call never
    returned. ``value`` is the normalised answer (:mod:`verify.model`)."""

    __slots__ = ("id", "process", "task", "f", "holder", "invoke", "ret", "outcome", "value",
                 "exit", "note")

    def __init__(self, id: int, process: int, task: str, f: str, holder: str, invoke: float,
                 ret: float | None, outcome: str, value: tuple | None = None,
                 exit: int | None = None, note: str | None = None) -> None:
        self.id = id
        self.process = process
        self.task = task
        self.f = f
        self.holder = holder
        self.invoke = invoke
        self.ret = ret
        self.outcome = outcome
        self.value = tuple(value) if value is not None else None
        self.exit = exit
        self.note = note

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict) -> Op:
        return cls(**{name: data.get(name) for name in cls.__slots__})

    def copy(self, **changes: object) -> Op:
        data = self.to_dict()
        data.update(changes)
        return Op.from_dict(data)

    def __repr__(self) -> str:
        ret = "inf" if self.ret is None else f"{self.ret:.6f}"
        answer = {"ok": self.value, "fail": f"not applied (exit {self.exit})",
                  "info": f"unknown ({self.note or 'no answer'})"}.get(self.outcome, self.outcome)
        return (f"op #{self.id} p{self.process} {self.f}({self.task}) by {self.holder} "
                f"[{self.invoke:.6f}, {ret}] -> {answer}")


class PartitionResult:
    """The verdict on one task's operations, with the evidence of a violation: ``blocked``
    (the operation that could be placed nowhere: its return was reached with it unplaced),
    ``prefix`` (the longest linearization found, as op ids) and ``state`` (the model's state
    after it), ``culprits`` (``fail`` operations whose effect would explain the history)."""

    def __init__(self, task: str, verdict: str, ops: int, *, blocked: Op | None = None,
                 prefix: list[int] | None = None, state: State | None = None,
                 culprits: list[Op] | None = None, explored: int = 0) -> None:
        self.task = task
        self.verdict = verdict
        self.ops = ops
        self.blocked = blocked
        self.prefix = prefix or []
        self.state = state
        self.culprits = culprits or []
        self.explored = explored

    def explain(self) -> str:
        if self.verdict == LINEARIZABLE:
            return f"task {self.task}: linearizable ({self.ops} ops)"
        if self.verdict == UNKNOWN:
            return f"task {self.task}: unknown (time limit, {self.explored} steps explored)"
        lines = [f"task {self.task}: NOT linearizable ({self.ops} ops)"]
        if self.blocked is not None:
            lines.append(f"  no order places {self.blocked!r}")
            lines.append(f"  longest linearization: {len(self.prefix)} ops, ending in state "
                         f"({describe(self.state or INIT)}); ops {self.prefix[-8:]}")
        for op in self.culprits:
            lines.append(f"  explained if this 'not applied' op took effect: {op!r}")
        return "\n".join(lines)


class Result:
    """The verdict on a whole history: ``linearizable`` when every partition is, ``violation``
    when one is not, else ``unknown``."""

    def __init__(self, partitions: list[PartitionResult], malformed: list[str]) -> None:
        self.partitions = partitions
        self.malformed = malformed
        verdicts = {p.verdict for p in partitions}
        if malformed or VIOLATION in verdicts:
            self.verdict = VIOLATION
        elif UNKNOWN in verdicts:
            self.verdict = UNKNOWN
        else:
            self.verdict = LINEARIZABLE

    def explain(self) -> str:
        lines = [f"malformed history: {m}" for m in self.malformed]
        lines += [p.explain() for p in self.partitions if p.verdict != LINEARIZABLE]
        return "\n".join(lines) or "linearizable"


def well_formed(ops: list[Op]) -> list[str]:
    """Each process runs one operation at a time: its operations must not overlap."""
    problems = []
    by_process: dict[int, list[Op]] = {}
    for op in ops:
        by_process.setdefault(op.process, []).append(op)
    for process, mine in by_process.items():
        mine.sort(key=lambda o: o.invoke)
        for a, b in zip(mine, mine[1:], strict=False):
            if a.ret is None or a.ret > b.invoke:
                problems.append(f"process {process}: {a!r} overlaps {b!r}")
    return problems


def check_history(ops: list[Op], time_limit: float = 10.0) -> Result:
    """Check a history (operations on any number of tasks), each task within ``time_limit``
    seconds."""
    by_task: dict[str, list[Op]] = {}
    for op in ops:
        by_task.setdefault(op.task, []).append(op)
    results = []
    for task in sorted(by_task):
        result = check_partition(by_task[task], time_limit)
        if result.verdict == VIOLATION:
            result.culprits = _culprits(by_task[task], time_limit)
        results.append(result)
    return Result(results, well_formed(list(ops)))


def _culprits(ops: list[Op], time_limit: float) -> list[Op]:
    """The ``fail`` operations each of which, had it taken effect, makes the partition
    linearizable (a "not applied" answer that was not true)."""
    found = []
    deadline = _time.monotonic() + time_limit
    for i, op in enumerate(ops):
        if op.outcome != "fail" or op.f in READS or _time.monotonic() > deadline:
            continue
        trial = list(ops)
        trial[i] = op.copy(outcome="info", ret=None, value=None)
        if check_partition(trial, max(0.1, deadline - _time.monotonic())).verdict == LINEARIZABLE:
            found.append(op)
    return found


def check_partition(ops: list[Op], time_limit: float = 10.0) -> PartitionResult:
    """Wing-Gong-Lowe search with memoisation over one task's operations."""
    task = ops[0].task if ops else "?"
    live = [op for op in ops
            if op.outcome == "ok" or (op.outcome == "info" and op.f not in READS)]
    n = len(live)
    if n == 0:
        return PartitionResult(task, LINEARIZABLE, 0)
    # Entries: 0..n-1 are calls, n..2n-1 returns (op i's return is n + i). Sorted by time,
    # calls before returns at equal times (concurrent, the conservative reading).
    events = []
    for i, op in enumerate(live):
        events.append((op.invoke, 0, i))
        if op.outcome == "ok":
            events.append((op.ret, 1, n + i))
    events.sort()
    size = 2 * n + 1
    head = 2 * n
    nxt = [-1] * size
    prv = [-1] * size
    prev = head
    for _, _, node in events:
        nxt[prev] = node
        prv[node] = prev
        prev = node
    nxt[prev] = -1
    has_return = [op.outcome == "ok" for op in live]
    remaining = sum(has_return)

    def lift(i: int) -> None:
        p, q = prv[i], nxt[i]
        nxt[p] = q
        if q != -1:
            prv[q] = p
        if has_return[i]:
            r = n + i
            p, q = prv[r], nxt[r]
            nxt[p] = q
            if q != -1:
                prv[q] = p

    def unlift(i: int) -> None:
        if has_return[i]:
            r = n + i
            p, q = prv[r], nxt[r]
            nxt[p] = r
            if q != -1:
                prv[q] = r
        p, q = prv[i], nxt[i]
        nxt[p] = i
        if q != -1:
            prv[q] = i

    deadline = _time.monotonic() + time_limit
    state: State = INIT
    linearized = 0
    cache: set[tuple[int, State]] = set()
    # (call entry, state before it, forced): a forced entry is an operation whose answer
    # changes nothing in any state that gives it (a read, a refusal, a heartbeat); placing
    # such an operation as soon as it fits is never worse than placing it later (moving it
    # earlier leaves every later state as it was, and it only has to come before its own
    # return), so when the search backtracks over it, it backtracks further.
    inert = [op.outcome == "ok" and never_changes(op.f, op.value) for op in live]
    stack: list[tuple[int, State, bool]] = []
    best_depth, best_prefix, best_state, blocked = -1, [], INIT, None
    steps = 0
    entry = nxt[head]
    while remaining:
        steps += 1
        if not steps & 1023 and _time.monotonic() > deadline:
            return PartitionResult(task, UNKNOWN, n, explored=steps)
        if 0 <= entry < n:  # a call
            op = live[entry]
            new_state, expected = step(state, op.f, op.holder)
            if op.outcome == "info" or expected == op.value:
                bits = linearized | (1 << entry)
                key = (bits, new_state)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state, inert[entry]))
                    state = new_state
                    linearized = bits
                    lift(entry)
                    if has_return[entry]:
                        remaining -= 1
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
            continue
        # A return (or the end): its operation could not be placed before it. Backtrack.
        depth = len(stack)
        if depth > best_depth and entry != -1:
            best_depth, best_state = depth, state
            best_prefix = [live[i].id for i, _, _ in stack]
            blocked = live[entry - n]
        while True:
            if not stack:
                return PartitionResult(task, VIOLATION, n, blocked=blocked, prefix=best_prefix,
                                       state=best_state, explored=steps)
            top, state, forced = stack.pop()
            linearized &= ~(1 << top)
            unlift(top)
            if has_return[top]:
                remaining += 1
            if not forced:
                break
        entry = nxt[top]
    return PartitionResult(task, LINEARIZABLE, n, explored=steps)
