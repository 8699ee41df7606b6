"""Mutations of recorded histories that no correct ledger could produce: the checker's
self-test requires it to flag every one.

Each mutation applies to one task of a history that checked linearizable and whose operations
on that task all have definite answers (no SIGKILL, no exit 75/76: then every state change is
visible as an answered operation, which is what makes each mutation provably impossible):

- ``fence_skip``: every fence >= F seen on the task (F granted by some claim) goes up by one:
  the grant of F now answers F + 1, skipping a fencing token;
- ``double_grant``: a claim refused with ``held(h1, f)`` now answers ``ok(h2, f)``: two
  holders granted the same fence;
- ``stale_read``: a ``status`` answering fence f (f >= 1) after another call had already
  returned fence f now answers the task as it was at fence f - 1 (or absent);
- ``phantom_release``: a successful ``release`` by h of fence f is inserted between h's grant
  of f and a later call that still sees h holding f.
"""

from __future__ import annotations

import random

from verify.checker import Op

KINDS = ("fence_skip", "double_grant", "stale_read", "phantom_release")

# Where the fence sits in each normalised value (verify.model).
_FENCE_AT = {("claim", "ok"): 2, ("extend", "ok"): 2, ("reopen", "ok"): 2, ("done", "ok"): 1,
             ("release", "released"): 1, ("status", "task"): 2}


def fence_of(op: Op) -> int | None:
    if op.outcome != "ok" or not op.value:
        return None
    if op.value[0] == "held":
        return op.value[2]
    at = _FENCE_AT.get((op.f, op.value[0]))
    return op.value[at] if at is not None else None


def holds(op: Op) -> tuple[str, int] | None:
    """``(holder, fence)`` the answer shows holding the task, if it shows one."""
    if op.outcome != "ok" or not op.value:
        return None
    v = op.value
    if v[0] == "held":
        return v[1], v[2]
    if op.f in ("claim", "extend") and v[0] == "ok":
        return v[1], v[2]
    if op.f == "reopen" and v[0] == "ok" and v[1] is not None:
        return v[1], v[2]
    if op.f == "status" and v[0] == "task" and v[1] is not None:
        return v[1], v[2]
    return None


def clean_tasks(ops: list[Op]) -> list[str]:
    tasks: dict[str, bool] = {}
    for op in ops:
        tasks[op.task] = tasks.get(op.task, True) and op.outcome == "ok"
    return sorted(t for t, clean in tasks.items() if clean)


def _with_fence(op: Op, fence: int) -> Op:
    value = list(op.value or ())
    if value[0] == "held":
        value[2] = fence
    else:
        value[_FENCE_AT[(op.f, value[0])]] = fence
    return op.copy(value=tuple(value))


def mutate(ops: list[Op], kind: str, rng: random.Random) -> tuple[list[Op], str] | None:
    """One random ``kind`` mutation of ``ops``: ``(mutated_ops, description)``, or None when
    the history offers no place for it."""
    tasks = clean_tasks(ops)
    rng.shuffle(tasks)
    for task in tasks:
        mine = [op for op in ops if op.task == task]
        done = globals()["_" + kind](ops, mine, rng)
        if done is not None:
            return done
    return None


def _fence_skip(ops: list[Op], mine: list[Op], rng: random.Random):
    granted = sorted({op.value[2] for op in mine
                      if op.f == "claim" and op.outcome == "ok" and op.value[0] == "ok"})
    if not granted:
        return None
    skip = rng.choice(granted)
    out = []
    for op in ops:
        fence = fence_of(op) if op.task == mine[0].task else None
        out.append(_with_fence(op, fence + 1) if fence is not None and fence >= skip else op)
    return out, f"task {mine[0].task}: fences >= {skip} renumbered +1 (fence {skip} skipped)"


def _double_grant(ops: list[Op], mine: list[Op], rng: random.Random):
    sites = [op for op in mine if op.f == "claim" and op.outcome == "ok" and op.value[0] == "held"
             and op.value[1] != op.holder]
    if not sites:
        return None
    site = rng.choice(sites)
    new = site.copy(value=("ok", site.holder, site.value[2]))
    return ([new if op is site else op for op in ops],
            f"op #{site.id}: claim refused (held by {site.value[1]}, fence {site.value[2]}) "
            f"now granted to {site.holder} with the same fence")


def _stale_read(ops: list[Op], mine: list[Op], rng: random.Random):
    sites = []
    for s in mine:
        if s.f != "status" or s.outcome != "ok" or s.value[0] != "task" or s.value[2] < 1:
            continue
        f = s.value[2]
        if any(x is not s and x.ret is not None and x.ret < s.invoke and fence_of(x) == f
               for x in mine):
            sites.append(s)
    if not sites:
        return None
    site = rng.choice(sites)
    f = site.value[2]
    stale = ("task", None, f - 1, "open") if f > 1 else ("absent",)
    new = site.copy(value=stale)
    return ([new if op is site else op for op in ops],
            f"op #{site.id}: status at fence {f} now reads {stale} (fence {f} already observed)")


def _phantom_release(ops: list[Op], mine: list[Op], rng: random.Random):
    grants = [c for c in mine if c.f == "claim" and c.outcome == "ok" and c.value[0] == "ok"]
    pairs = []
    for c in grants:
        lease = (c.value[1], c.value[2])
        for s in mine:
            if s is not c and s.invoke > c.ret and holds(s) == lease:
                pairs.append((c, s))
    if not pairs:
        return None
    c, s = rng.choice(pairs)
    gap = s.invoke - c.ret
    process = max(op.process for op in ops) + 1
    phantom = Op(max(op.id for op in ops) + 1, process, c.task, "release", c.value[1],
                 c.ret + gap / 3, c.ret + 2 * gap / 3, "ok", ("released", c.value[2]), 0,
                 note="inserted by the self-test")
    return (ops + [phantom],
            f"release by {c.value[1]} of fence {c.value[2]} inserted after op #{c.id}; "
            f"op #{s.id} still sees it held")
