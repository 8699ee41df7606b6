"""Query plans of the hot paths: each finds its rows through an index, so its cost is O(log n) in
the number of tasks and does not grow with the number of held leases. A regression to a table
scan (or to a walk of an index that steps over held rows) fails here.

SQLite: ``EXPLAIN QUERY PLAN`` as the ledger runs (no ANALYZE statistics). PostgreSQL: ``EXPLAIN``
with ``enable_seqscan`` off on a small table that was ANALYZEd, naming the index each query must
use.
"""

from __future__ import annotations

import json
import re

import pytest

from leasehold import Ledger

#: query -> parameters (besides :now).
PARAMS = {
    "id": "T1", "actor": "a", "session": "s", "status": None, "until": 2e9, "ttl": 60.0,
    "fence": None, "limit": 5, "unlimited": -1, "ids": json.dumps(["T1", "T2"]), "acquired_at": 1.0,
    "kind": "released", "force": False, "details": "{}", "after": 0, "task_id": "T1",
    "before_ts": 1e18, "before_id": "", "op": None, "digest": None, "after_key": "", "after_item": "", "cap": 100,
}

#: Hot queries -> the indexes they must use (SQLite index names; PK lookups: "PRIMARY").
HOT = {
    "get_task": {"PRIMARY"},
    "lock_task": {"PRIMARY"},
    "grant_free": {"PRIMARY"},
    "grant_lease": {"PRIMARY"},
    "release_own": {"PRIMARY"},
    "extend_lease": {"PRIMARY"},
    "clear_lease": {"PRIMARY"},
    "held_among": {"PRIMARY"},
    "ready_candidates": {"tasks_free", "tasks_lease_until"},
    "ready_tasks": {"tasks_free", "tasks_lease_until"},
    "list_tasks_available": {"tasks_free", "tasks_lease_until"},
    "leases_of_holder": {"tasks_lease_session"},
    "leases_of_session": {"tasks_lease_session"},
    "valid_leases_of_session": {"tasks_lease_session"},
    "extend_session_leases": {"tasks_lease_session"},
    "log_session_release": {"tasks_lease_session"},
    "clear_session_leases": {"tasks_lease_session"},
    "expired_leases": {"tasks_lease_until"},
    "active_leases_by_activity": {"tasks_lease_updated"},
    "events_all": {"PRIMARY"},
    "events_task": {"events_task"},
    "feed_queue_open": {"feed_items_open"},
    "feed_queue_claimed_done": {"tasks_lease_until"},
    "feed_queue_claimed_done_items": {"feed_items_done"},
    "feed_queue_rest": {"feed_items_order"},
    "feed_drift": {"feed_items_drift"},
}

#: Index walks in order that are allowed to visit rows (bounded by LIMIT or by the rows wanted).
WALKS = {"tasks_free", "tasks_order", "tasks_lease_updated", "feed_items_open",
         "feed_items_order", "feed_items_drift", "feed_items_done"}


def _sqlite_plan(ledger: Ledger, name: str) -> list[str]:
    store = ledger.store
    sql = store.queries[name]
    params = dict(PARAMS, now=1.8e9)
    used = set(re.findall(r":([A-Za-z_]\w*)", sql))
    rows = store.conn.execute("EXPLAIN QUERY PLAN " + sql, {k: v for k, v in params.items() if k in used})
    return [row[3] for row in rows]


@pytest.mark.parametrize("name", sorted(HOT))
def test_sqlite_hot_queries_use_their_indexes(sqlite_url: str, name: str) -> None:
    with Ledger.open(sqlite_url) as ledger:
        plan = _sqlite_plan(ledger, name)
    text = "\n".join(plan)
    for line in plan:
        # A full scan of a table: "SCAN tasks" (no index), or a walk of an index not meant for it.
        m = re.match(r"SCAN (\w+)(?: AS \w+)?(?: USING (?:COVERING )?INDEX (\w+))?", line)
        if m and m.group(1) in ("tasks", "events", "feed_items", "feed_posts", "t", "b", "o"):
            assert m.group(2) in WALKS & HOT[name], f"{name} scans: {line}\n{text}"
    for index in HOT[name]:
        if index == "PRIMARY":
            assert re.search(r"SEARCH \w+( AS \w+)? USING (INTEGER PRIMARY KEY|(COVERING )?INDEX "
                             r"sqlite_autoindex_tasks_1|PRIMARY KEY)", text), f"{name}:\n{text}"
        else:
            assert f"INDEX {index}" in text, f"{name} does not use {index}:\n{text}"


def test_sqlite_ready_queue_never_walks_held_rows(sqlite_url: str) -> None:
    """Held tasks are not in tasks_free: the ready walk starts at the first free task."""
    with Ledger.open(sqlite_url) as ledger:
        for i in range(50):
            ledger.claim(f"H{i:03d}", f"w:{i}", ttl=600)
        ledger.add("free-1")
        assert [t.id for t in ledger.ready(limit=1)] == ["free-1"]
        count = ledger.store.conn.execute(
            "SELECT count(*) FROM tasks INDEXED BY tasks_free WHERE status <> 'done' AND lease_until IS NULL"
        ).fetchone()[0]
        assert count == 1


# -- PostgreSQL -------------------------------------------------------------------------------
#: Hot queries -> indexes they must use (an empty set: any index, with an index condition).
PG_HOT = {
    "get_task": set(),
    "lock_task": set(),
    "grant_free": set(),
    "release_own": set(),
    "extend_lease": set(),
    "held_among": set(),
    "ready_candidates": {"tasks_free", "tasks_lease_until"},
    "ready_tasks": {"tasks_free", "tasks_lease_until"},
    "next_claim": {"tasks_free", "tasks_lease_until"},
    "release_one": set(),
    "complete_many": set(),
    "leases_of_holder": {"tasks_lease_session"},
    "valid_leases_of_session": {"tasks_lease_session"},
    "extend_session_leases": {"tasks_lease_session"},
    "extend_session_returning": {"tasks_lease_session"},
    "release_session_leases": {"tasks_lease_session"},
    "active_leases_by_activity": {"tasks_lease_updated"},
    "feed_queue_open": {"feed_items_open"},
    "feed_drift": {"feed_items_drift"},
}


def _pg_nodes(plan: dict) -> list[dict]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(_pg_nodes(child))
    return out


@pytest.fixture(scope="module")
def pg_ledger():
    from tests import pg

    pg.require_pg()
    schema = pg.create_schema()
    try:
        with Ledger.open(pg.url_for_schema(schema), create=True) as ledger:
            conn = ledger.store._conn()
            # Enough rows that the planner's choice means something: 20,000 tasks, a quarter
            # held (by 50 sessions), a quarter done, some leases expired; ANALYZEd.
            conn.execute(
                "INSERT INTO tasks (id, status, priority, lease_actor, lease_session,"
                " lease_acquired_at, lease_until, lease_ttl, fence, created_at, updated_at) "
                "SELECT 'T' || g, CASE WHEN g % 4 = 0 THEN 'done' WHEN g % 4 = 1 THEN 'in_progress'"
                " ELSE 'open' END, g % 7, CASE WHEN g % 4 = 1 THEN 'w' END,"
                " CASE WHEN g % 4 = 1 THEN 's' || (g % 50) END, CASE WHEN g % 4 = 1 THEN 1.0 END,"
                " CASE WHEN g % 4 = 1 THEN (CASE WHEN g % 400 = 1 THEN 1.0 ELSE 2e9 END) END,"
                " CASE WHEN g % 4 = 1 THEN 60.0 END, 1, g, (g * 7919) % 20000"
                " FROM generate_series(1, 20000) AS g")
            conn.execute(
                "INSERT INTO feed_items (item, state, subject, post, seat, filed_at, filed_key) "
                "SELECT 'T' || g, CASE WHEN g % 100 = 0 THEN 'AWAITING_CLAIM' ELSE 'DONE' END, 's',"
                " g, 'seat', g, lpad(g::text, 10, '0') FROM generate_series(1, 20000) AS g")
            conn.execute("ANALYZE")
            yield ledger
    finally:
        pg.drop_schema(schema)


@pytest.mark.parametrize("name", sorted(PG_HOT))
def test_postgres_hot_queries_use_their_indexes(pg_ledger: Ledger, name: str) -> None:
    store = pg_ledger.store
    sql = store.queries[name]
    params = dict(PARAMS, now=1.8e9, session="s7", ids=["T1", "T2"] if name == "complete_many" else PARAMS["ids"])
    row = store._conn().execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
    plan = row["QUERY PLAN"][0]["Plan"]
    dump = json.dumps(plan, indent=1)
    nodes = _pg_nodes(plan)
    for node in nodes:
        relation = node.get("Relation Name")
        assert not (node["Node Type"] == "Seq Scan" and relation in ("tasks", "feed_items", "events")), \
            f"{name}: sequential scan of {relation}\n{dump}"
        index = node.get("Index Name")
        if index and index not in PG_HOT[name] and relation in ("tasks", "feed_items", "events"):
            assert node.get("Index Cond"), f"{name}: {index} walked without a condition\n{dump}"
    used = {node.get("Index Name") for node in nodes}
    assert PG_HOT[name] <= used, f"{name} uses {used - {None}}, not {PG_HOT[name]}\n{dump}"
