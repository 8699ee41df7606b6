"""Invariants of a ledger checked from its event log alone (the demo and the race tests use it).

- every task the log completes is completed exactly once (and every expected task is);
- no two valid leases on one task ever overlap in time;
- fencing tokens strictly increase per task on every new grant, and stay the same on renewal
  and extend (fencing tokens: Kleppmann 2016);
- extend and complete come only from the current holder.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from leasehold.model import Event

_ENDS = {"released", "completed", "expired", "force_released"}


class _Lease:
    __slots__ = ("holder", "fence", "until")

    def __init__(self, holder: str | None, fence: int, until: float) -> None:
        self.holder = holder
        self.fence = fence
        self.until = until


def check_invariants(events: Iterable[Event], expected_tasks: Iterable[str] | None = None) -> list[str]:
    """Return the violations found (empty when all hold). ``events`` oldest first."""
    violations: list[str] = []
    current: dict[str, _Lease] = {}
    top_fence: dict[str, int] = {}
    completed: dict[str, int] = {}
    for e in events:
        task = e.task_id
        if task is None:
            continue
        lease = current.get(task)
        if e.kind == "claimed":
            until = float(e.details.get("expires_at", 0.0))
            fence = int(e.fence or 0)
            if e.details.get("renewed"):
                if lease is None or lease.holder != e.holder or lease.fence != fence:
                    violations.append(f"event #{e.id}: renewal of {task} by {e.holder} without its lease")
                elif e.ts >= lease.until:
                    violations.append(f"event #{e.id}: renewal of {task} after its lease expired")
                current[task] = _Lease(e.holder, fence, until)
                continue
            if lease is not None and e.ts < lease.until:
                violations.append(
                    f"event #{e.id}: {task} granted to {e.holder} (fence {fence}) while the lease of "
                    f"{lease.holder} (fence {lease.fence}) was valid: overlapping leases"
                )
            if fence <= top_fence.get(task, 0):
                violations.append(
                    f"event #{e.id}: fence of {task} did not increase ({fence} after {top_fence.get(task, 0)})"
                )
            top_fence[task] = max(fence, top_fence.get(task, 0))
            current[task] = _Lease(e.holder, fence, until)
        elif e.kind == "extended":
            if lease is None or lease.holder != e.holder or lease.fence != e.fence:
                violations.append(f"event #{e.id}: {task} extended by {e.holder}, not its holder")
            elif e.ts >= lease.until:
                violations.append(f"event #{e.id}: {task} extended after its lease expired")
            else:
                lease.until = float(e.details.get("expires_at", lease.until))
        elif e.kind in _ENDS:
            if e.kind == "completed":
                completed[task] = completed.get(task, 0) + 1
                if lease is None or lease.holder != e.holder:
                    violations.append(f"event #{e.id}: {task} completed by {e.holder}, not its holder")
            current.pop(task, None)
    for task, count in completed.items():
        if count != 1:
            violations.append(f"{task} completed {count} times")
    if expected_tasks is not None:
        missing = sorted(set(expected_tasks) - set(completed))
        if missing:
            violations.append(f"{len(missing)} task(s) never completed: {', '.join(missing[:10])}")
    return violations
