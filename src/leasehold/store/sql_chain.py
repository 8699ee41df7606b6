"""Store side of the hash chains (:mod:`leasehold.chain`): checkpoints, the streams
``leasehold verify`` reads, the append-only triggers (checked and restored), and the SQLite
store's chained inserts.

Every INSERT into a chained table goes through one place per dialect: PostgreSQL's
``leasehold_chain_*`` BEFORE INSERT triggers (migration 0009), and on SQLite
:func:`chain_insert_params`, which the SQLite transaction calls for the named insert queries of
:data:`CHAIN_INSERTS` (their SQL is extended at load time with ``id``, ``prev_hash`` and
``hash``: the shared statements stay the single source of the columns they write).
"""

from __future__ import annotations

import os

from leasehold.chain import CHAINED, TABLES, RangeDigest, checkpoint_hash, legacy_hash, row_hash

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from leasehold.store.sqlbase import Tx

#: named insert query -> chained table.
CHAIN_INSERTS = {
    "insert_event": "events",
    "insert_post": "feed_posts",
    "insert_reservation": "reservations",
    "insert_namespace": "namespaces",
}

def _split_insert(sql: str) -> tuple[str, str, str, str] | None:
    """``INSERT INTO table (columns) VALUES (values) rest`` -> its four parts, or None. Plain
    string operations: ``re`` costs milliseconds of start-up on every command."""
    text = sql.lstrip()
    if text[:11].upper() != "INSERT INTO" or not text[11:12].isspace():
        return None
    open_cols = text.find("(", 11)
    close_cols = text.find(")", open_cols + 1)
    if open_cols < 0 or close_cols < 0:
        return None
    table = text[11:open_cols].strip()
    after = text[close_cols + 1:].lstrip()
    if not table.isidentifier() or after[:6].upper() != "VALUES":
        return None
    after = after[6:].lstrip()
    close_vals = after.find(")")
    if not after.startswith("(") or close_vals < 0:
        return None
    return table, text[open_cols + 1:close_cols], after[1:close_vals], after[close_vals + 1:]


#: SQLite: the column that orders a table (namespaces has no id column there: its rowid only
#: grows, since rows are never deleted).
SQLITE_ID = {"events": "id", "feed_posts": "id", "reservations": "id", "namespaces": "rowid"}


def _literal(text: str) -> Any:
    text = text.strip()
    if text.upper() == "NULL":
        return None
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    try:
        return int(text)
    except ValueError:
        return float(text)


def rewrite_chain_inserts(queries: dict[str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """SQLite: extend each insert of :data:`CHAIN_INSERTS` in ``queries`` (in place) with
    ``(<id>, prev_hash, hash)`` bound to ``:chain_id, :chain_prev, :chain_hash``. Returns
    ``{query name: (table, {column: ":param" name or ("lit", value)})}`` for
    :func:`chain_insert_params`. Raises RuntimeError if an insert no longer names every
    hashed column (the chain would not cover it)."""
    specs: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, table in CHAIN_INSERTS.items():
        match = _split_insert(queries[name])
        if match is None or match[0] != table:
            raise RuntimeError(f"query {name} is not a plain INSERT INTO {table} (...) VALUES (...)")
        columns = [c.strip() for c in match[1].split(",")]
        values = [v.strip() for v in match[2].split(",")]
        if len(columns) != len(values):
            raise RuntimeError(f"query {name}: {len(columns)} columns but {len(values)} values")
        mapping: dict[str, Any] = {}
        for column, value in zip(columns, values, strict=True):
            mapping[column] = value[1:] if value.startswith(":") else ("lit", _literal(value))
        missing = [c for c, _ in TABLES[table][1] if c != "id" and c not in mapping]
        if missing:
            raise RuntimeError(f"query {name} does not write hashed column(s) {missing}")
        queries[name] = (
            f"INSERT INTO {table} ({SQLITE_ID[table]}, prev_hash, hash, {match[1].strip()}) "
            f"VALUES (:chain_id, :chain_prev, :chain_hash, {match[2].strip()}){match[3]}"
        )
        specs[name] = (table, mapping)
    return specs


def _chain_head_sql(table: str) -> str:
    """SQLite: ``SELECT next id, hash of the chain's last row`` for a chained table, the chain
    key bound as the one parameter."""
    id_col, key_col = SQLITE_ID[table], TABLES[table][0]
    if table == "namespaces":
        next_id = "(SELECT COALESCE(MAX(rowid), 0) + 1 FROM namespaces)"
    else:
        next_id = (f"MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0), "
                   f"COALESCE((SELECT MAX(id) FROM {table}), 0)) + 1")
    return (f"SELECT {next_id}, (SELECT hash FROM {table} WHERE {key_col} IS ?1 "
            f"ORDER BY {id_col} DESC LIMIT 1)")


_CHAIN_HEAD = {table: _chain_head_sql(table) for table in SQLITE_ID}


def chain_insert_params(cursor: Any, table: str, mapping: dict[str, Any],
                        params: dict[str, Any]) -> None:
    """SQLite, inside the write transaction (``BEGIN IMMEDIATE`` holds the database lock from
    here to the insert): add ``chain_id``, ``chain_prev``, ``chain_hash`` to ``params``."""
    row: dict[str, Any] = {}
    for column, source in mapping.items():
        row[column] = source[1] if isinstance(source, tuple) else params[source]
    # The next id and the chain's last hash in one statement (this runs for every event, inside
    # the write lock).
    next_id, prev = cursor.execute(_CHAIN_HEAD[table], (row[TABLES[table][0]],)).fetchone()
    row["id"] = next_id
    params["chain_id"] = next_id
    params["chain_prev"] = prev
    params["chain_hash"] = row_hash(table, prev, row)


def guard_definitions(dialect: str) -> dict[str, tuple[str, str]]:
    """``{trigger name: (table, DDL that recreates it)}`` from ``sql/<dialect>/guards.ddl``:
    the append-only triggers (and, on PostgreSQL, the chain triggers) a ledger must have."""
    from leasehold.store.sqlbase import SQL_DIR, parse_named_queries

    with open(os.path.join(SQL_DIR, dialect, "guards.ddl"), encoding="utf-8") as fh:
        sections = parse_named_queries(fh.read())
    out = {}
    for key, ddl in sections.items():
        name, _, table = key.partition(" on ")
        out[name.strip()] = (table.strip(), ddl)
    return out


class ChainSQL:
    """Mixin of :class:`~leasehold.store.sqlbase.SQLStore`: checkpoints and verification reads.
    Dialects provide :meth:`_checkpoint_lock`, :meth:`_audit_tx`, :meth:`_stream`,
    :meth:`triggers` and :meth:`_restore_guard`."""

    dialect: str

    if TYPE_CHECKING:
        def _write(self) -> Any: ...

    # -- dialect hooks ---------------------------------------------------------------------
    def _checkpoint_lock(self, tx: Tx, table: str) -> None:
        """Make every row of ``table`` whose id is drawn visible, and hold new inserts, until
        the transaction ends."""

    def _audit_tx(self) -> Any:
        """A read-only transaction on one consistent snapshot (a context manager -> Tx)."""
        raise NotImplementedError

    def _stream(self, tx: Tx, sql: str, params: dict[str, Any]) -> Iterator[Any]:
        """Rows of ``sql`` one at a time, without loading the result."""
        raise NotImplementedError

    def triggers(self, tx: Tx) -> dict[str, tuple[str, bool]]:
        """``{trigger name: (table, enabled)}`` of the ledger's triggers."""
        raise NotImplementedError

    def _restore_guard(self, tx: Tx, name: str, ddl: str, present: bool) -> str | None:
        """Recreate trigger ``name`` (``present`` False) or put it back in force; returns the
        line to report, or None for the generic one."""
        raise NotImplementedError

    # -- SQL for one table -----------------------------------------------------------------
    def _select_rows(self, table: str) -> str:
        """``SELECT`` of a chained table's rows with ``id`` and the hash columns."""
        if self.dialect == "sqlite" and table == "namespaces":
            return "SELECT rowid AS id, * FROM namespaces"
        return f"SELECT * FROM {table}"

    def _order_id(self, table: str) -> str:
        return "rowid" if self.dialect == "sqlite" and table == "namespaces" else "id"

    # -- checkpoints -----------------------------------------------------------------------
    def _take_checkpoint(self, tx: Tx, table: str, kind: str) -> tuple[int, str]:
        """Cover the rows of ``table`` after its last checkpoint with a new one (none when no
        row was added). Returns the head ``(upto_id, hash)``."""
        self._checkpoint_lock(tx, table)
        last = tx.cursor.execute(
            self._q("SELECT upto_id, hash FROM chain_checkpoints WHERE tbl = :tbl "
                    "ORDER BY id DESC LIMIT 1"), {"tbl": table}).fetchone()
        from_id, prev = (int(last["upto_id"]), last["hash"]) if last is not None else (0, None)
        digest = RangeDigest()
        order = self._order_id(table)
        sql = f"{self._select_rows(table)} WHERE {order} > :after ORDER BY {order}"
        for row in self._stream(tx, self._q(sql), {"after": from_id}):
            digest.add(int(row["id"]), row["hash"] or legacy_hash(table, row))
        if last is not None and digest.count == 0:
            return from_id, str(prev)
        upto = max(digest.last_id, from_id)
        value = checkpoint_hash(table, prev, from_id, upto, digest.count, digest.hexdigest(), kind)
        tx.cursor.execute(self._q(
            "INSERT INTO chain_checkpoints (tbl, kind, from_id, upto_id, row_count, digest, "
            "prev_hash, hash, created_at) VALUES (:tbl, :kind, :from_id, :upto_id, :row_count, "
            ":digest, :prev_hash, :hash, :now)"),
            {"tbl": table, "kind": kind, "from_id": from_id, "upto_id": upto,
             "row_count": digest.count, "digest": digest.hexdigest(), "prev_hash": prev,
             "hash": value, "now": tx.now})
        return upto, value

    def checkpoint(self) -> dict[str, tuple[int, str]]:
        """Take a checkpoint of every chained table (each in its own short transaction) and
        return the heads ``{table: (upto_id, checkpoint hash)}`` (an anchor's content).

        Raises StoreBusy / StoreUnavailable like any write."""
        heads = {}
        for table in CHAINED:
            with self._write() as tx:
                heads[table] = self._take_checkpoint(tx, table, "checkpoint")
        return heads

    def _genesis(self, tx: Tx) -> None:
        """Right after migration 0009, in its transaction: the genesis checkpoint of every
        chained table, covering the rows written before the chains."""
        for table in CHAINED:
            self._take_checkpoint(tx, table, "genesis")

    def _q(self, sql: str) -> str:
        """Dialect placeholders for an ad-hoc statement (``:name``)."""
        return sql

    # -- verification reads ----------------------------------------------------------------
    def audit(self) -> Any:
        """``with store.audit() as reader:`` a :class:`AuditReader` over one consistent,
        read-only snapshot."""
        return _AuditContext(self)

    def restore_guards(self) -> list[str]:
        """Recreate the append-only and chain triggers that are missing, re-enable disabled
        ones. Returns one line per trigger repaired (empty when all were in place)."""
        repaired = []
        definitions = guard_definitions(self.dialect)
        with self._write() as tx:
            have = self.triggers(tx)
            for name, (table, ddl) in definitions.items():
                state = have.get(name)
                if state is not None and state[1]:
                    continue
                line = self._restore_guard(tx, name, ddl, state is not None)
                repaired.append(line or f"{'re-enabled' if state is not None else 'restored'} "
                                f"trigger {name} on {table}")
        return repaired


class _AuditContext:
    __slots__ = ("store", "cm")

    def __init__(self, store: ChainSQL) -> None:
        self.store = store
        self.cm: Any = None

    def __enter__(self) -> AuditReader:
        self.cm = self.store._audit_tx()
        return AuditReader(self.store, self.cm.__enter__())

    def __exit__(self, *exc: Any) -> Any:
        return self.cm.__exit__(*exc)


class AuditReader:
    """The reads of ``leasehold verify``, each a stream of mapping rows (bounded memory)."""

    def __init__(self, store: ChainSQL, tx: Tx) -> None:
        self.store = store
        self.tx = tx

    def _stream(self, sql: str, **params: Any) -> Iterator[Any]:
        return self.store._stream(self.tx, self.store._q(sql), params)

    def required_triggers(self) -> dict[str, str]:
        """``{trigger name: table}`` every ledger of this dialect must have."""
        return {name: table for name, (table, _) in guard_definitions(self.store.dialect).items()}

    def triggers(self) -> dict[str, tuple[str, bool]]:
        return self.store.triggers(self.tx)

    def first_checkpoints(self) -> dict[str, Any]:
        """``{table: first checkpoint row}`` (the genesis, when intact)."""
        out = {}
        for table in CHAINED:
            for row in self._stream("SELECT * FROM chain_checkpoints WHERE tbl = :tbl "
                                    "ORDER BY id LIMIT 1", tbl=table):
                out[table] = row
        return out

    def rows_by_chain(self, table: str) -> Iterator[Any]:
        """The rows of ``table`` grouped by chain key, each chain in id order. For ``events``
        each row also carries its task's current state (``t_id``, ``t_status``, ``t_actor``,
        ``t_session``, ``t_fence``, ``t_until``; NULL when no task has that id)."""
        key = TABLES[table][0]
        order = self.store._order_id(table)
        if table == "events":
            return self._stream(
                "SELECT e.*, t.id AS t_id, t.status AS t_status, t.lease_actor AS t_actor, "
                "t.lease_session AS t_session, t.fence AS t_fence, t.lease_until AS t_until "
                "FROM events e LEFT JOIN tasks t ON t.id = e.task_id ORDER BY e.task_id, e.id")
        return self._stream(f"{self.store._select_rows(table)} ORDER BY {key}, {order}")

    def rows_by_id(self, table: str) -> Iterator[Any]:
        order = self.store._order_id(table)
        return self._stream(f"{self.store._select_rows(table)} ORDER BY {order}")

    def checkpoints(self, table: str) -> Iterator[Any]:
        return self._stream("SELECT * FROM chain_checkpoints WHERE tbl = :tbl ORDER BY id",
                            tbl=table)

    def tasks_without_events(self) -> Iterator[Any]:
        return self._stream("SELECT t.* FROM tasks t WHERE NOT EXISTS "
                            "(SELECT 1 FROM events e WHERE e.task_id = t.id) ORDER BY t.id")

    def reservations_disagreeing(self) -> Iterator[Any]:
        """Reservations whose status disagrees with the events: abandoned without an
        ``abandoned`` event of that ticket, or still reserved with one."""
        return self._stream(
            "SELECT r.id, r.ticket_id, r.status FROM reservations r "
            "WHERE (r.status = 'abandoned') <> EXISTS (SELECT 1 FROM events e "
            "WHERE e.task_id = r.ticket_id AND e.kind = 'abandoned') ORDER BY r.id")

    def reservations_without_namespace(self) -> Iterator[Any]:
        """The first reservation of each namespace prefix that has no ``namespaces`` row (every
        reservation defines its namespace first, and namespace rows are never deleted)."""
        return self._stream(
            "SELECT MIN(r.id) AS id, r.prefix FROM reservations r WHERE NOT EXISTS "
            "(SELECT 1 FROM namespaces n WHERE n.prefix = r.prefix) GROUP BY r.prefix "
            "ORDER BY MIN(r.id)")

    def shares_unexplained(self) -> Iterator[Any]:
        """Shares (``lease_shares``) without their ``shared`` event: the same task, at the
        share's fence, by its holder (``shared_by`` = actor:session), naming its session."""
        if self.store.dialect == "postgres":
            names = "(CAST(e.details AS jsonb) -> 'sessions') @> jsonb_build_array(s.session)"
        else:
            names = ("EXISTS (SELECT 1 FROM json_each(e.details, '$.sessions') j "
                     "WHERE j.value = s.session)")
        return self._stream(
            "SELECT s.task_id, s.fence, s.session, s.shared_by FROM lease_shares s "
            "WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.task_id = s.task_id "
            "AND e.kind = 'shared' AND e.fence = s.fence "
            f"AND e.actor || ':' || e.session = s.shared_by AND {names}) "
            "ORDER BY s.task_id, s.fence, s.session")

    # -- the feed's reduced state (feed_items): derived from the posts ----------------------
    def _by_item(self) -> str:
        return ' COLLATE "C"' if self.store.dialect == "postgres" else ""

    def feed_rebuilt(self) -> bool:
        """False while feed_items waits for its one-time rebuild (nothing derived yet)."""
        for row in self._stream("SELECT rebuilt FROM feed_state WHERE id = 1"):
            return bool(row["rebuilt"])
        return True

    def feed_items(self) -> Iterator[Any]:
        """The stored feed_items rows, by item (bytewise)."""
        return self._stream(f"SELECT * FROM feed_items ORDER BY item{self._by_item()}")

    def feed_item_names(self) -> Iterator[Any]:
        """Every item the posts give (or took) a state: named by a post, or renumbered from;
        by item (bytewise), each once."""
        if self.store.dialect == "postgres":
            renumbered = "CAST(details AS jsonb) ->> 'renumbered_from'"
        else:
            renumbered = "json_extract(details, '$.renumbered_from')"
        return self._stream(
            "SELECT item FROM (SELECT item FROM feed_posts WHERE item IS NOT NULL UNION "
            f"SELECT {renumbered} AS item FROM feed_posts WHERE details LIKE '%renumbered_from%') "
            f"AS x WHERE item IS NOT NULL ORDER BY item{self._by_item()}")

    def posts_for_item(self, item: str) -> list[Any]:
        """The posts the feed reduces ``item`` from (``posts_for_item``), oldest first."""
        return list(self.tx.all("posts_for_item", item=item))

    def sequence_top(self, table: str) -> int | None:
        """The highest id ever drawn for ``table`` when ids are dense (SQLite: AUTOINCREMENT
        never reuses an id and a rolled-back insert draws none, so every id up to it exists
        unless deleted); None where ids have gaps by design (PostgreSQL sequences) or the
        table has no sequence."""
        if self.store.dialect != "sqlite" or table == "namespaces":
            return None
        for row in self._stream("SELECT COALESCE(MAX(seq), 0) AS top FROM sqlite_sequence "
                                "WHERE name = :name", name=table):
            return int(row["top"])
        return 0

    def dense_ids(self, table: str) -> bool:
        """True when every id from 1 up is used (SQLite), so a gap is a deleted row."""
        return self.store.dialect == "sqlite"

    def max_id(self, table: str) -> int:
        order = self.store._order_id(table)
        for row in self._stream(f"SELECT COALESCE(MAX({order}), 0) AS m FROM {table}"):
            return int(row["m"])
        return 0
