-- PostgreSQL overrides of sql/tickets.sql: row locks where SQLite relies on BEGIN IMMEDIATE.

-- name: lock_namespace
SELECT * FROM namespaces WHERE prefix = :prefix FOR UPDATE;

-- name: lock_reservation
SELECT * FROM reservations WHERE ticket_id = :ticket_id FOR UPDATE;

-- name: lock_post_item
-- A post's locks, in the chain trigger's order (migrations 0009, 0013), before its INSERT draws
-- the id: the item's task row (when it is a task), then the chain's advisory lock.
SELECT 1 FROM tasks WHERE id = :item FOR UPDATE;

-- name: lock_post_chain
SELECT pg_advisory_xact_lock(hashtextextended('leasehold.chain:' || current_schema()
    || '.feed_posts:' || coalesce('T' || CAST(:item AS text), 'N'), 0));
