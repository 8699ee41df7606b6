"""Short TTLs with stalled heartbeats, checked against the event log.

With 1-2 s TTLs time is part of the rules, so these runs are not checked for linearizability
against the untimed model; the ledger's own record must show instead, per task:

- no two valid leases overlap: a new grant is never stamped before the expiry of the lease it
  takes over, nor while a lease is valid (:func:`leasehold.invariants.check_invariants`, which
  also checks that only the holder extends, and only before expiry);
- fencing tokens go up by exactly one per new grant, and stay on renewal and extend;
- event timestamps never decrease in event order;
- every lease a client was handed (task, holder, fence, expiry) is in the log as a grant.

Also counted (not a violation of the log, reported beside it): leases that had already
expired by the wall-clock time the client got them back.
"""

from __future__ import annotations

import json
from pathlib import Path

from leasehold.invariants import check_invariants


def read_records(logs: list[Path]) -> list[dict]:
    records = []
    for log in logs:
        if not log.exists():
            continue
        for line in log.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def check_event_log(events: list, records: list[dict]) -> tuple[list[str], dict]:
    """``events`` of the run's tasks, oldest first; ``records`` the workers' ``grant`` /
    ``lost`` lines. Returns ``(violations, counts)``."""
    violations = list(check_invariants(events))
    top: dict[str, int] = {}
    last_ts: dict[str, tuple[int, float]] = {}
    grants_in_log: set[tuple[str, str, int, float]] = set()
    new_grants = renewals = 0
    for e in events:
        task = e.task_id
        if task is None:
            continue
        previous = last_ts.get(task)
        if previous is not None and e.ts < previous[1]:
            violations.append(f"event #{e.id} ({e.kind} of {task}) stamped {previous[1] - e.ts:.6f}s "
                              f"before event #{previous[0]}")
        last_ts[task] = (e.id, e.ts)
        if e.kind != "claimed":
            continue
        fence = int(e.fence or 0)
        grants_in_log.add((task, e.holder, fence, round(float(e.details.get("expires_at", 0)), 6)))
        if e.details.get("renewed"):
            renewals += 1
            if fence != top.get(task, 0):
                violations.append(f"event #{e.id}: renewal of {task} changed the fence to {fence}")
            continue
        new_grants += 1
        if fence != top.get(task, 0) + 1:
            violations.append(f"event #{e.id}: grant of {task} at fence {fence} after "
                              f"{top.get(task, 0)} (not +1)")
        top[task] = max(top.get(task, 0), fence)
    grants = [r for r in records if r.get("t") == "grant"]
    missing = [r for r in grants
               if (r["task"], r["holder"], r["fence"], round(r["expires_at"], 6)) not in grants_in_log]
    for r in missing[:10]:
        violations.append(f"client got a lease not in the log: {r['task']} {r['holder']} fence {r['fence']}")
    counts = {
        "events": len(events),
        "grants": new_grants,
        "renewals": renewals,
        "heartbeats": sum(1 for e in events if e.kind == "extended"),
        "takeovers": sum(1 for e in events if e.kind == "claimed" and e.details.get("previous_holder")),
        "client_grants": len(grants),
        "lost": sum(1 for r in records if r.get("t") == "lost"),
        "expired_when_returned": sum(1 for r in grants if r["expires_at"] <= r["seen_at"]),
    }
    return violations, counts
