-- PostgreSQL overrides of sql/feed.sql: item ids compare and sort bytewise (COLLATE "C"), as
-- in the feed_items indexes, SQLite and Python.

-- name: feed_queue_open
-- Items open in the feed, in the reducer's order, a page after (:after_key, :after_item):
-- walks feed_items_open.
SELECT fi.*, t.status AS task_status, t.lease_actor AS task_actor,
       t.lease_session AS task_session, t.lease_until AS task_until, t.fence AS task_fence,
       t.updated_at AS task_updated
FROM feed_items fi LEFT JOIN tasks t ON t.id = fi.item
WHERE fi.state <> 'DONE'
  AND (fi.filed_key, fi.item COLLATE "C") > (:after_key, :after_item)
ORDER BY fi.filed_key, fi.item COLLATE "C"
LIMIT :limit;

-- name: feed_queue_rest
-- Every item in the reducer's order, a page after (:after_key, :after_item): walks
-- feed_items_order (the done items, after the open ones).
SELECT fi.*, t.status AS task_status, t.lease_actor AS task_actor,
       t.lease_session AS task_session, t.lease_until AS task_until, t.fence AS task_fence,
       t.updated_at AS task_updated
FROM feed_items fi LEFT JOIN tasks t ON t.id = fi.item
WHERE (fi.filed_key, fi.item COLLATE "C") > (:after_key, :after_item)
ORDER BY fi.filed_key, fi.item COLLATE "C"
LIMIT :limit;

-- name: feed_drift
-- Items with colliding posts not yet reconciled: walks feed_items_drift.
SELECT item, drift FROM feed_items WHERE drift_count > 0 ORDER BY item COLLATE "C";

-- The feed's state is written only through the SECURITY DEFINER functions of migration 0013
-- (a role given the ledger by `db grant` has SELECT only on feed_items and feed_state):
-- :by_post is this transaction's post that names the item (NULL during the one-time rebuild).

-- name: feed_item_upsert
SELECT leasehold_feed_item_put(CAST(:by_post AS bigint), CAST(:item AS text), CAST(:state AS text),
    CAST(:owner AS text), CAST(:pending AS integer), CAST(:subject AS text), CAST(:post AS bigint),
    CAST(:seat AS text), CAST(:filed_at AS double precision), CAST(:filed_key AS text),
    CAST(:last_activity AS double precision), CAST(:drift_count AS integer), CAST(:drift AS text));

-- name: feed_item_delete
SELECT leasehold_feed_item_put(CAST(:by_post AS bigint), CAST(:item AS text), NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- name: feed_items_clear
SELECT leasehold_feed_items_clear();

-- name: feed_state_rebuilt
SELECT leasehold_feed_state_rebuilt();
