-- The feed's per-item state (feed_items, migration 0007): kept by leasehold.feed in the
-- transaction of each post, read by the reducer (queue) and the drift check. Portable SQL;
-- sql/postgres/feed.sql orders item ids bytewise (COLLATE "C") as SQLite and Python do.
-- Each queue row carries the task the item names (one primary-key probe): task_* columns.

-- name: feed_state
SELECT rebuilt FROM feed_state WHERE id = 1;

-- name: feed_state_rebuilt
UPDATE feed_state SET rebuilt = 1 WHERE id = 1;

-- name: feed_items_clear
DELETE FROM feed_items;

-- name: feed_item_delete
DELETE FROM feed_items WHERE item = :item;

-- name: feed_item_upsert
INSERT INTO feed_items (item, state, owner, pending, subject, post, seat, filed_at, filed_key,
                        last_activity, drift_count, drift)
VALUES (:item, :state, :owner, :pending, :subject, :post, :seat, :filed_at, :filed_key,
        :last_activity, :drift_count, :drift)
ON CONFLICT (item) DO UPDATE
SET state = excluded.state, owner = excluded.owner, pending = excluded.pending,
    subject = excluded.subject, post = excluded.post, seat = excluded.seat,
    filed_at = excluded.filed_at, filed_key = excluded.filed_key,
    last_activity = excluded.last_activity, drift_count = excluded.drift_count,
    drift = excluded.drift;

-- name: feed_queue_open
-- Items open in the feed, in the reducer's order, a page after (:after_key, :after_item):
-- walks feed_items_open.
SELECT fi.*, t.status AS task_status, t.lease_actor AS task_actor,
       t.lease_session AS task_session, t.lease_until AS task_until, t.fence AS task_fence,
       t.updated_at AS task_updated
FROM feed_items fi LEFT JOIN tasks t ON t.id = fi.item
WHERE fi.state <> 'DONE'
  AND (fi.filed_key, fi.item) > (:after_key, :after_item)
ORDER BY fi.filed_key, fi.item
LIMIT :limit;

-- name: feed_queue_rest
-- Every item in the reducer's order, a page after (:after_key, :after_item): walks
-- feed_items_order (the done items, after the open ones).
SELECT fi.*, t.status AS task_status, t.lease_actor AS task_actor,
       t.lease_session AS task_session, t.lease_until AS task_until, t.fence AS task_fence,
       t.updated_at AS task_updated
FROM feed_items fi LEFT JOIN tasks t ON t.id = fi.item
WHERE (fi.filed_key, fi.item) > (:after_key, :after_item)
ORDER BY fi.filed_key, fi.item
LIMIT :limit;

-- name: feed_queue_claimed_done
-- Items done in the feed whose task is validly held again (the lease overlay makes them
-- CLAIMED), found from the valid leases (tasks_lease_until): when those are the fewer.
SELECT fi.*, t.status AS task_status, t.lease_actor AS task_actor,
       t.lease_session AS task_session, t.lease_until AS task_until, t.fence AS task_fence,
       t.updated_at AS task_updated
FROM tasks t CROSS JOIN feed_items fi
WHERE t.lease_until > :now AND fi.item = t.id AND fi.state = 'DONE' AND t.status <> 'done';

-- name: feed_queue_claimed_done_items
-- The same, found from the items done in the feed (feed_items_done): when those are the fewer.
SELECT fi.*, t.status AS task_status, t.lease_actor AS task_actor,
       t.lease_session AS task_session, t.lease_until AS task_until, t.fence AS task_fence,
       t.updated_at AS task_updated
FROM feed_items fi CROSS JOIN tasks t
WHERE fi.state = 'DONE' AND t.id = fi.item AND t.lease_until > :now AND t.status <> 'done';

-- name: feed_done_capped
SELECT count(*) AS n FROM (SELECT 1 FROM feed_items WHERE state = 'DONE' LIMIT :cap) AS x;

-- name: held_capped
SELECT count(*) AS n FROM (SELECT 1 FROM tasks WHERE lease_until > :now LIMIT :cap) AS x;

-- name: feed_queue_item
SELECT fi.*, t.status AS task_status, t.lease_actor AS task_actor,
       t.lease_session AS task_session, t.lease_until AS task_until, t.fence AS task_fence,
       t.updated_at AS task_updated
FROM feed_items fi LEFT JOIN tasks t ON t.id = fi.item
WHERE fi.item = :item;

-- name: feed_drift
-- Items with colliding posts not yet reconciled: walks feed_items_drift.
SELECT item, drift FROM feed_items WHERE drift_count > 0 ORDER BY item;
