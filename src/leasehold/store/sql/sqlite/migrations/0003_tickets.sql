-- Ticket namespaces, reservations and the append-only feed.
-- Times are REAL: UTC seconds since the Unix epoch.

-- A namespace's definition never changes once numbers may have been handed out from it.
CREATE TABLE namespaces (
    prefix     TEXT PRIMARY KEY,
    format     TEXT NOT NULL,
    lane_actor TEXT,
    created_at REAL NOT NULL,
    created_by TEXT
);

CREATE TRIGGER namespaces_immutable_update BEFORE UPDATE ON namespaces
BEGIN
    SELECT RAISE(ABORT, 'namespaces are immutable: UPDATE is not allowed');
END;

CREATE TRIGGER namespaces_immutable_delete BEFORE DELETE ON namespaces
BEGIN
    SELECT RAISE(ABORT, 'namespaces are immutable: DELETE is not allowed');
END;

-- Every number handed out, ever. The unique constraints are the guarantee that no number is
-- handed out twice; rows are never deleted, so an abandoned number is never reused.
CREATE TABLE reservations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id      TEXT NOT NULL,
    prefix         TEXT NOT NULL REFERENCES namespaces (prefix),
    period         TEXT NOT NULL DEFAULT '',
    seq            INTEGER NOT NULL CHECK (seq >= 1),
    actor          TEXT NOT NULL,
    session        TEXT NOT NULL,
    reserved_at    REAL NOT NULL,
    status         TEXT NOT NULL DEFAULT 'reserved' CHECK (status IN ('reserved', 'abandoned')),
    abandoned_at   REAL,
    abandoned_by   TEXT,
    abandon_reason TEXT,
    CONSTRAINT reservations_ticket_id_unique UNIQUE (ticket_id),
    CONSTRAINT reservations_seq_unique UNIQUE (prefix, period, seq)
);

-- Only reserved -> abandoned; the number, namespace, holder and time never change.
CREATE TRIGGER reservations_fixed BEFORE UPDATE ON reservations
WHEN NEW.ticket_id IS NOT OLD.ticket_id OR NEW.prefix IS NOT OLD.prefix
  OR NEW.period IS NOT OLD.period OR NEW.seq IS NOT OLD.seq OR NEW.actor IS NOT OLD.actor
  OR NEW.session IS NOT OLD.session OR NEW.reserved_at IS NOT OLD.reserved_at
  OR OLD.status <> 'reserved' OR NEW.status <> 'abandoned'
BEGIN
    SELECT RAISE(ABORT, 'reservations never change number or holder: only reserved -> abandoned is allowed');
END;

CREATE TRIGGER reservations_no_delete BEFORE DELETE ON reservations
BEGIN
    SELECT RAISE(ABORT, 'reservations are never deleted: a number is never reused');
END;

-- The feed: append-only. Amendments and confirmations are new posts that reference the original.
CREATE TABLE feed_posts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts          REAL NOT NULL,
    recorded_at REAL NOT NULL,
    seat        TEXT NOT NULL,
    actor       TEXT,
    session     TEXT,
    kind        TEXT NOT NULL CHECK (kind IN ('actionable', 'claimed', 'done', 'release', 'repair',
                                              'info', 'amendment', 'confirmed')),
    item        TEXT,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL DEFAULT '',
    refs        INTEGER REFERENCES feed_posts (id),
    flags       TEXT NOT NULL DEFAULT '',
    origin      TEXT NOT NULL DEFAULT 'local' CHECK (origin IN ('local', 'import')),
    proof_kind  TEXT CHECK (proof_kind IN ('release-proof', 'repair', 'auto')),
    proof       TEXT,
    import_key  TEXT,
    details     TEXT NOT NULL DEFAULT '{}',
    CONSTRAINT feed_posts_import_key_unique UNIQUE (import_key),
    CHECK ((proof_kind IS NULL) = (proof IS NULL))
);

CREATE INDEX feed_posts_item ON feed_posts (item, id);
CREATE INDEX feed_posts_refs ON feed_posts (refs) WHERE refs IS NOT NULL;
CREATE INDEX feed_posts_ts ON feed_posts (ts, id);

CREATE TRIGGER feed_posts_append_only_update BEFORE UPDATE ON feed_posts
BEGIN
    SELECT RAISE(ABORT, 'feed_posts is append-only: UPDATE is not allowed (file an amendment)');
END;

CREATE TRIGGER feed_posts_append_only_delete BEFORE DELETE ON feed_posts
BEGIN
    SELECT RAISE(ABORT, 'feed_posts is append-only: DELETE is not allowed');
END;
