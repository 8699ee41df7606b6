-- Hash chains over the append-only tables (see src/leasehold/chain.py for the encoding).
-- On SQLite the store computes prev_hash and hash in Python inside the inserting transaction
-- (BEGIN IMMEDIATE holds the write lock from the predecessor read to the insert). Namespaces are
-- ordered by their rowid, which only grows: rows are never deleted.
-- Rows written before this migration keep hash NULL and are covered by the genesis checkpoint
-- the store takes right after applying it, in the same transaction.

ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN hash TEXT;
ALTER TABLE feed_posts ADD COLUMN prev_hash TEXT;
ALTER TABLE feed_posts ADD COLUMN hash TEXT;
ALTER TABLE reservations ADD COLUMN prev_hash TEXT;
ALTER TABLE reservations ADD COLUMN hash TEXT;
ALTER TABLE namespaces ADD COLUMN prev_hash TEXT;
ALTER TABLE namespaces ADD COLUMN hash TEXT;

CREATE INDEX reservations_chain ON reservations (prefix, id);

-- Checkpoints over each table's global id range, themselves chained per table.
CREATE TABLE chain_checkpoints (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl        TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('genesis', 'checkpoint')),
    from_id    INTEGER NOT NULL,
    upto_id    INTEGER NOT NULL,
    row_count  INTEGER NOT NULL,
    digest     TEXT NOT NULL,
    prev_hash  TEXT,
    hash       TEXT NOT NULL,
    created_at REAL NOT NULL,
    CHECK (upto_id >= from_id)
);

CREATE INDEX chain_checkpoints_tbl ON chain_checkpoints (tbl, id);

CREATE TRIGGER chain_checkpoints_append_only_update BEFORE UPDATE ON chain_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'chain_checkpoints is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER chain_checkpoints_append_only_delete BEFORE DELETE ON chain_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'chain_checkpoints is append-only: DELETE is not allowed');
END;
