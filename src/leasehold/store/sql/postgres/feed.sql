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
