-- Ticket namespaces, reservations and the feed (portable: SQLite 3.40 and PostgreSQL 15).
-- :now is the store's clock. Queries named lock_* take the row lock a decision needs: on SQLite
-- the whole write transaction holds the database lock (BEGIN IMMEDIATE), so they are plain
-- SELECTs here; sql/postgres/tickets.sql overrides them with FOR UPDATE.

-- name: insert_namespace
INSERT INTO namespaces (prefix, format, lane_actor, created_at, created_by)
VALUES (:prefix, :format, :lane_actor, :now, :created_by)
ON CONFLICT (prefix) DO NOTHING;

-- name: get_namespace
SELECT * FROM namespaces WHERE prefix = :prefix;

-- name: lock_namespace
SELECT * FROM namespaces WHERE prefix = :prefix;

-- name: list_namespaces
SELECT n.*,
       (SELECT count(*) FROM reservations r WHERE r.prefix = n.prefix) AS reserved,
       (SELECT count(*) FROM reservations r
         WHERE r.prefix = n.prefix AND r.status = 'abandoned') AS abandoned,
       (SELECT r.ticket_id FROM reservations r
         WHERE r.prefix = n.prefix ORDER BY r.id DESC LIMIT 1) AS last_ticket
FROM namespaces n
ORDER BY n.prefix;

-- name: last_seq
SELECT COALESCE(MAX(seq), 0) AS last FROM reservations
WHERE prefix = :prefix AND period = :period;

-- name: ticket_in_use
SELECT 1 AS used FROM reservations WHERE ticket_id = :ticket_id
UNION ALL SELECT 1 FROM tasks WHERE id = :ticket_id
UNION ALL SELECT 1 FROM feed_posts WHERE item = :ticket_id;

-- name: insert_reservation
INSERT INTO reservations (ticket_id, prefix, period, seq, actor, session, reserved_at)
VALUES (:ticket_id, :prefix, :period, :seq, :actor, :session, :now)
RETURNING *;

-- name: get_reservation
SELECT * FROM reservations WHERE ticket_id = :ticket_id;

-- name: lock_reservation
SELECT * FROM reservations WHERE ticket_id = :ticket_id;

-- name: abandon_reservation
UPDATE reservations
SET status = 'abandoned', abandoned_at = :now, abandoned_by = :abandoned_by,
    abandon_reason = :reason
WHERE ticket_id = :ticket_id AND status = 'reserved'
RETURNING *;

-- name: insert_post
INSERT INTO feed_posts (ts, recorded_at, seat, actor, session, kind, item, subject, body, refs,
                        flags, origin, proof_kind, proof, import_key, details)
VALUES (:ts, :now, :seat, :actor, :session, :kind, :item, :subject, :body, :refs,
        :flags, :origin, :proof_kind, :proof, :import_key, :details)
ON CONFLICT (import_key) DO NOTHING
RETURNING *;

-- name: post_imported
SELECT id FROM feed_posts WHERE import_key = :import_key;

-- name: get_post
SELECT * FROM feed_posts WHERE id = :id;

-- name: posts_for_item
SELECT * FROM feed_posts
WHERE item = :item
   OR id IN (SELECT refs FROM feed_posts WHERE item = :item AND refs IS NOT NULL)
   OR refs IN (SELECT id FROM feed_posts WHERE item = :item)
   OR refs IN (SELECT refs FROM feed_posts WHERE item = :item AND refs IS NOT NULL)
ORDER BY id;

-- name: posts_since
SELECT * FROM feed_posts
WHERE ts >= :since AND (CAST(:kind AS TEXT) IS NULL OR kind = :kind)
ORDER BY ts, id;

-- name: posts_since_last
-- The last :limit posts with ts >= :since (optionally of one kind), by ts then id: walks
-- feed_posts_ts backwards.
SELECT * FROM (
    SELECT * FROM feed_posts
    WHERE ts >= :since AND (CAST(:kind AS TEXT) IS NULL OR kind = :kind)
    ORDER BY ts DESC, id DESC
    LIMIT :limit
) AS recent ORDER BY ts, id;

-- name: posts_after
SELECT * FROM feed_posts WHERE id > :after ORDER BY id LIMIT :limit;

-- name: posts_last
SELECT * FROM (SELECT * FROM feed_posts ORDER BY id DESC LIMIT :limit) AS recent ORDER BY id;

-- name: posts_all
SELECT * FROM feed_posts ORDER BY id;

-- name: max_post_id
SELECT COALESCE(MAX(id), 0) AS last FROM feed_posts;
