"""Ledger verification (``leasehold verify``): is the stored history intact and consistent?

Checks, in this order (the first break found is the one reported first):

1. the append-only triggers (and, on PostgreSQL, the chain triggers) exist and are enabled;
2. every hash chain (:mod:`leasehold.chain`): each row's ``prev_hash`` is its chain
   predecessor's ``hash`` and its ``hash`` recomputes; a row without a hash is allowed only in
   the range of the genesis checkpoint (history written before the chains);
3. the event log's invariants, per task: no two valid leases overlap; each new grant's fencing
   token is the previous grant's + 1 (fencing tokens: Kleppmann 2016); renewals and extends keep
   the holder and fence of a valid lease; a task is completed at most once per (re)open;
4. every task row agrees with its last events: holder, fence, lease expiry and status; a task
   row without any event is a task whose history was deleted; a reservation is abandoned
   exactly when an ``abandoned`` event of its ticket exists (the abandonment columns are the one
   part of a chained row that may change, so they are checked against the chained events); every
   reservation's namespace row exists (a namespace is a chain of one row: only its
   reservations see it deleted after the last checkpoint); every share (``lease_shares``) has
   its ``shared`` event, given by the lease's holder at its fence; the feed's reduced state
   (``feed_items``) is what the posts reduce to, item by item;
5. checkpoints: each covers the id range after the previous one; its row count and digest
   recompute from the rows (so a row deleted from, or slipped into, a covered range is found even
   where the chains cannot see it: the tail of a chain, or a whole chain). On SQLite, where ids
   are dense (AUTOINCREMENT, and a rolled-back insert draws no id), every gap is reported, and
   ids drawn beyond the last row (``sqlite_sequence``) mean a deleted tail; on PostgreSQL a
   rolled-back insert leaves a gap, so only the checkpoints explain the gaps they cover;
6. with an anchor (``leasehold anchor``'s line, kept outside the database): each table still
   reaches the anchored id, and the checkpoint chain recomputed from the rows ends at the anchored
   hash there (a truncated, or rewritten and re-hashed, history does not).

Runs in O(rows) time with memory bounded by one chain's state: every read is a stream in one
read-only snapshot (:meth:`leasehold.store.sql_chain.ChainSQL.audit`).

What it cannot prove: whoever can write the database files (or owns the tables) can rewrite
everything and recompute every hash; only an anchor kept elsewhere catches that.
"""

from __future__ import annotations

from leasehold.chain import CHAINED, TABLES, RangeDigest, checkpoint_hash, legacy_hash, row_hash

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

    from leasehold.store.sql_chain import AuditReader

#: Events that end a lease.
_ENDS = ("released", "completed", "expired", "force_released")
#: Seconds of slack when comparing a lease expiry with an event's ``expires_at`` (PostgreSQL
#: writes the one-statement paths' details through numeric, keeping 15 significant digits:
#: 10 µs at today's epoch).
_SLACK = 1e-3
#: Breaks kept in a report after the first.
MAX_BREAKS = 100


class Break:
    """One finding: ``table``, row ``id`` (None for a table-wide finding), ``what`` happened."""

    __slots__ = ("table", "id", "what")

    def __init__(self, table: str, row_id: Any, what: str) -> None:
        self.table = table
        self.id = row_id
        self.what = what

    def __str__(self) -> str:
        where = self.table if self.id is None else f"{self.table} #{self.id}"
        return f"{where}: {self.what}"

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "id": self.id, "what": self.what}


class Report:
    """The outcome: ``breaks`` (first found first; at most :data:`MAX_BREAKS` kept, ``total``
    counts all) and what was checked (``rows`` per table, ``chains``, ``checkpoints``)."""

    def __init__(self) -> None:
        self.breaks: list[Break] = []
        self.total = 0
        self.rows: dict[str, int] = {}
        self.chains = 0
        self.checkpoints = 0
        self.tasks = 0
        self.anchor_checked = False

    @property
    def ok(self) -> bool:
        return self.total == 0

    def add(self, table: str, row_id: Any, what: str) -> None:
        self.total += 1
        if len(self.breaks) < MAX_BREAKS:
            self.breaks.append(Break(table, row_id, what))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "first_break": self.breaks[0].to_dict() if self.breaks else None,
            "breaks": [b.to_dict() for b in self.breaks],
            "break_count": self.total,
            "rows": self.rows,
            "chains": self.chains,
            "checkpoints": self.checkpoints,
            "tasks_checked": self.tasks,
            "anchor_checked": self.anchor_checked,
        }


def verify_ledger(store: Any, anchor: Mapping[str, tuple[int, str]] | None = None) -> Report:
    """Verify ``store`` (a SQL store) and, when given, against ``anchor`` (``{table: (upto_id,
    checkpoint hash)}`` from :func:`leasehold.chain.parse_anchor`). Returns a :class:`Report`.

    Raises the store's errors (StoreBusy, StoreUnavailable) if it cannot be read."""
    report = Report()
    with store.audit() as reader:
        _check_triggers(reader, report)
        first = reader.first_checkpoints()
        for table in CHAINED:
            genesis = first.get(table)
            if genesis is None or genesis["kind"] != "genesis" or int(genesis["from_id"]) != 0:
                report.add("chain_checkpoints", None if genesis is None else genesis["id"],
                           f"the genesis checkpoint of {table} is missing or rewritten")
                genesis_upto = 0
            else:
                genesis_upto = int(genesis["upto_id"])
            _check_chains(reader, table, genesis_upto, report)
        for row in reader.tasks_without_events():
            report.add("tasks", row["id"], "task has no events: its history was deleted")
        for row in reader.reservations_disagreeing():
            report.add("reservations", row["id"], f"{row['ticket_id']} is {row['status']} but "
                       f"its events {'never abandon' if row['status'] == 'abandoned' else 'abandon'} it")
        for row in reader.reservations_without_namespace():
            report.add("reservations", row["id"], f"namespace {row['prefix']} is missing: its "
                                                  "row was deleted")
        for row in reader.shares_unexplained():
            report.add("lease_shares", f"{row['task_id']}/{row['fence']}/{row['session']}",
                       f"share of {row['task_id']} (fence {row['fence']}) with {row['session']} by "
                       f"{row['shared_by']} has no shared event: it was written by hand")
        _check_feed_items(reader, report)
        for table in CHAINED:
            _check_checkpoints(reader, table, report, None if anchor is None else anchor.get(table))
        report.anchor_checked = anchor is not None
    return report


def _check_triggers(reader: AuditReader, report: Report) -> None:
    have = reader.triggers()
    for name, table in reader.required_triggers().items():
        state = have.get(name)
        if state is None:
            report.add(table, None, f"trigger {name} is missing (run 'leasehold migrate' to restore it)")
        elif not state[1]:
            report.add(table, None, f"trigger {name} is disabled or altered (run 'leasehold migrate' to "
                                    "restore it)")


def _check_chains(reader: AuditReader, table: str, genesis_upto: int, report: Report) -> None:
    key = TABLES[table][0]
    count = 0
    previous_key: Any = object()
    prev_hash: str | None = None
    prev_id: Any = None
    task = _TaskWalk() if table == "events" else None
    for row in reader.rows_by_chain(table):
        count += 1
        row_id = row["id"]
        if row[key] != previous_key or count == 1:
            if task is not None and count > 1:
                task.finish(report)
            report.chains += 1
            previous_key, prev_hash, prev_id = row[key], None, None
            if task is not None:
                task.start(row)
        stored = row["hash"]
        if stored is None:
            if int(row_id) > genesis_upto:
                report.add(table, row_id, "row has no hash: written with the chain trigger off, "
                                          "or forged")
            elif row["prev_hash"] is not None:
                report.add(table, row_id, "row from before the chains has a prev_hash")
        else:
            if row["prev_hash"] != prev_hash:
                before = f"#{prev_id}" if prev_id is not None else "none"
                report.add(table, row_id,
                           f"prev_hash does not match the previous row of its chain ({key}="
                           f"{row[key]!r}, previous: {before}): a row before it was deleted, "
                           "changed or inserted")
            if row_hash(table, row["prev_hash"], row) != stored:
                report.add(table, row_id, "hash does not match the row: the row was changed")
        prev_hash, prev_id = stored, row_id
        if task is not None:
            task.step(row, report)
    if task is not None and count:
        task.finish(report)
    report.rows[table] = count


class _TaskWalk:
    """The invariants of one task's events, then the task row against them."""

    def start(self, row: Any) -> None:
        self.task_id = row["task_id"]
        self.row = row
        self.holder: tuple[Any, Any] | None = None
        self.fence = 0
        self.until = 0.0
        self.top_fence = 0
        self.grants = 0
        self.completions = 0
        self.status: str | None = None
        self.created = False
        self.last_id = row["id"]

    def step(self, e: Any, report: Report) -> None:
        self.row = e
        self.last_id = e["id"]
        if self.task_id is None:
            return
        import json

        kind = e["kind"]
        try:
            details = json.loads(e["details"] or "{}")
        except ValueError:
            report.add("events", e["id"], "details are not JSON")
            return
        if not isinstance(details, dict):
            details = {}
        who = (e["actor"], e["session"])
        ts = float(e["ts"])
        fence = int(e["fence"] or 0)
        if kind == "created":
            self.created = True
            self.status = "open"
        elif kind == "claimed":
            until = float(details.get("expires_at") or 0.0)
            if details.get("renewed"):
                if self.holder != who or self.fence != fence or ts >= self.until + _SLACK:
                    report.add("events", e["id"], f"renewal of {self.task_id} without a valid "
                                                  "lease of the same holder and fence")
            else:
                if self.holder is not None and ts < self.until - _SLACK:
                    report.add("events", e["id"], f"{self.task_id} granted to {_h(who)} while the "
                                                  f"lease of {_h(self.holder)} (fence {self.fence}) "
                                                  "was valid: overlapping leases")
                if fence != self.top_fence + 1:
                    report.add("events", e["id"], f"fence of {self.task_id} went from "
                                                  f"{self.top_fence} to {fence}, not +1")
                self.top_fence = max(self.top_fence, fence)
                self.grants += 1
            self.holder, self.fence, self.until = who, fence, until
            self.status = "in_progress"
        elif kind == "extended":
            if self.holder != who or self.fence != fence or ts >= self.until + _SLACK:
                report.add("events", e["id"], f"{self.task_id} extended without a valid lease of "
                                              "that holder and fence")
            self.until = float(details.get("expires_at") or self.until)
        elif kind in _ENDS:
            if kind == "completed":
                self.completions += 1
                if self.completions > 1:
                    report.add("events", e["id"], f"{self.task_id} completed twice since it was "
                                                  "last opened")
            if kind == "expired" and self.status == "in_progress":
                self.status = "open"
            self.holder = None
            if "status" in details:
                self.status = details["status"]
        elif kind == "shared":
            if self.holder != who or self.fence != fence or ts >= self.until + _SLACK:
                report.add("events", e["id"], f"{self.task_id} shared without a valid lease of "
                                              "that holder and fence")
        elif kind == "reopened":
            self.completions = 0
            self.status = "open"
        elif "status" in details and isinstance(details["status"], str):
            self.status = details["status"]

    def finish(self, report: Report) -> None:
        row = self.row
        if self.task_id is None:
            return
        if row["t_id"] is None:
            if self.created:
                report.add("tasks", self.task_id, "events create this task but the task row is "
                                                  "missing")
            return
        report.tasks += 1
        problems = []
        if int(row["t_fence"]) != self.top_fence:
            problems.append(f"fence {row['t_fence']} but its events last granted fence "
                            f"{self.top_fence}")
        if row["t_actor"] is not None:
            if self.holder != (row["t_actor"], row["t_session"]):
                problems.append(f"held by {row['t_actor']}:{row['t_session']} but its events "
                                f"{'leave it unheld' if self.holder is None else 'give it to ' + _h(self.holder)}")
            elif row["t_until"] is None or abs(float(row["t_until"]) - self.until) > _SLACK:
                problems.append("its lease expiry differs from its last grant or extend")
        elif self.holder is not None:
            problems.append(f"has no lease but its events leave it held by {_h(self.holder)} "
                            f"(fence {self.fence})")
        if self.status is not None and row["t_status"] != self.status:
            problems.append(f"status {row['t_status']!r} but its events say {self.status!r}")
        if problems:
            report.add("tasks", self.task_id, "task row disagrees with its events (last #"
                       f"{self.last_id}): " + "; ".join(problems))


#: feed_items columns, compared with the state the posts reduce to.
_FEED_COLUMNS = ("state", "owner", "pending", "subject", "post", "seat", "filed_at", "filed_key",
                 "last_activity", "drift_count", "drift")


def _check_feed_items(reader: AuditReader, report: Report) -> None:
    """feed_items is derived: each item's row must be what its posts reduce to (the feed's own
    refresh, :meth:`leasehold.feed.Feed._refresh`), and no row may name an item no post gives a
    state. Walks the stored rows and the items the posts name together, in item order; memory:
    one item's posts. Skipped while the one-time rebuild is pending (nothing derived yet)."""
    if not reader.feed_rebuilt():
        return
    from leasehold.feed import item_row, reduce_items
    from leasehold.model import Post

    stored = reader.feed_items()
    names = reader.feed_item_names()
    row: Any = next(stored, None)
    name: Any = next(names, None)
    while row is not None or name is not None:
        if row is None or (name is not None and name["item"] < row["item"]):
            item = name["item"]
        else:
            item = row["item"]
        have = None
        if row is not None and row["item"] == item:
            have, row = row, next(stored, None)
        named = name is not None and name["item"] == item
        if named:
            name = next(names, None)
        want: Any = None
        if named:
            st = reduce_items([Post.from_row(p) for p in reader.posts_for_item(item)]).get(item)
            want = item_row(st) if st is not None else None
        if have is None and want is None:
            continue
        if have is None:
            report.add("feed_items", item, f"the posts give {item} the state {want['state']} but "
                                           "feed_items has no row for it: it was deleted")
        elif want is None:
            report.add("feed_items", item, f"feed_items has a row for {item} but no post gives "
                                           "it a state: it was written by hand")
        else:
            differ = [c for c in _FEED_COLUMNS if have[c] != want[c]]
            if differ:
                report.add("feed_items", item, f"the state of {item} differs from what its posts "
                           f"reduce to ({', '.join(f'{c} {have[c]!r} not {want[c]!r}' for c in differ)}):"
                           " it was rewritten")


def _h(holder: Any) -> str:
    return "nobody" if holder is None else f"{holder[0]}:{holder[1]}"


def _dense(rows: Iterator[Any], table: str, report: Report, last: list[int]) -> Iterator[Any]:
    """Pass ``rows`` (id order) through, reporting every gap in the ids; ``last[0]`` ends as the
    highest id seen."""
    for row in rows:
        row_id = int(row["id"])
        if row_id != last[0] + 1:
            report.add(table, row_id, f"ids {last[0] + 1}..{row_id - 1} are missing: rows "
                                      "were deleted")
        last[0] = row_id
        yield row


def _check_checkpoints(reader: AuditReader, table: str, report: Report,
                       anchor: tuple[int, str] | None) -> None:
    rows = reader.rows_by_id(table)
    last = [0]
    dense = reader.dense_ids(table)
    if dense:
        rows = _dense(rows, table, report, last)
    pending: Any = next(rows, None)
    expected_from = 0
    stored_prev: str | None = None
    recomputed_prev: str | None = None
    anchor_seen = False
    for cp in reader.checkpoints(table):
        report.checkpoints += 1
        from_id, upto = int(cp["from_id"]), int(cp["upto_id"])
        if from_id != expected_from:
            report.add("chain_checkpoints", cp["id"],
                       f"checkpoint of {table} starts after id {from_id}, the previous one ended "
                       f"at {expected_from}: checkpoints were deleted or rewritten")
        if cp["prev_hash"] != stored_prev:
            report.add("chain_checkpoints", cp["id"], f"checkpoint of {table} does not chain to "
                                                      "the previous checkpoint")
        digest = RangeDigest()
        while pending is not None and int(pending["id"]) <= upto:
            if int(pending["id"]) > from_id:
                digest.add(int(pending["id"]), pending["hash"] or legacy_hash(table, pending))
            pending = next(rows, None)
        recomputed = checkpoint_hash(table, recomputed_prev, from_id, upto, digest.count,
                                     digest.hexdigest(), cp["kind"])
        if digest.count != int(cp["row_count"]):
            report.add(table, None, f"ids {from_id + 1}..{upto} held {cp['row_count']} rows at "
                                    f"checkpoint #{cp['id']}, {digest.count} now: rows were "
                                    f"{'deleted' if digest.count < int(cp['row_count']) else 'inserted'}")
        elif digest.hexdigest() != cp["digest"]:
            report.add(table, None, f"rows in ids {from_id + 1}..{upto} changed since checkpoint "
                                    f"#{cp['id']}")
        if checkpoint_hash(table, cp["prev_hash"], from_id, upto, int(cp["row_count"]),
                           cp["digest"], cp["kind"]) != cp["hash"]:
            report.add("chain_checkpoints", cp["id"], f"checkpoint of {table} does not match "
                                                      "its own hash")
        if anchor is not None and upto == anchor[0]:
            anchor_seen = True
            if recomputed != anchor[1]:
                report.add(table, None, f"history up to id {upto} differs from the anchor: it "
                                        "was rewritten")
        expected_from, stored_prev, recomputed_prev = upto, cp["hash"], recomputed
    if dense:
        for _ in rows:  # the rows after the last checkpoint, for their gaps
            pass
        top = reader.sequence_top(table)
        if top is not None and top > last[0]:
            report.add(table, None, f"ids {last[0] + 1}..{top} were drawn but are missing: "
                                    "the tail was deleted")
    if anchor is not None and not anchor_seen:
        top = reader.max_id(table)
        if top < anchor[0]:
            report.add(table, None, f"the anchor covers ids up to {anchor[0]} but the table ends at "
                                    f"{top}: its tail was truncated")
        else:
            report.add(table, None, f"no checkpoint ends at the anchored id {anchor[0]}: the "
                                    "checkpoints were rewritten")
