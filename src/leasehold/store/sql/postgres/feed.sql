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

-- The head of the queue in one round trip (PostgresStore.feed_queue_head sends these three in a
-- pipeline inside one transaction): each reads the clock as the transaction's timestamp, so all
-- three and the lease overlay agree on one instant.

-- name: feed_head_state
SELECT extract(epoch FROM transaction_timestamp())::float8 AS now,
       COALESCE((SELECT rebuilt FROM feed_state WHERE id = 1), 1) AS rebuilt;

-- name: feed_head_claimed_done
-- feed_queue_claimed_done or feed_queue_claimed_done_items, whichever side is smaller (each
-- counted up to :cap through its index), in one statement: each branch runs only when its
-- one-time filter holds, so one walk is made at most (none when no item is done in the feed).
-- LATERAL (OFFSET 0) fixes each branch's driving side: the clock is not known at planning.
WITH clock AS MATERIALIZED (
    SELECT extract(epoch FROM transaction_timestamp())::float8 AS now
), sizes AS MATERIALIZED (
    SELECT (SELECT count(*) FROM (SELECT 1 FROM feed_items WHERE state = 'DONE' LIMIT :cap) AS d) AS done,
           (SELECT count(*) FROM (SELECT 1 FROM tasks
                                  WHERE lease_until > (SELECT now FROM clock) LIMIT :cap) AS h) AS held
)
SELECT fi.*, t.status AS task_status, t.lease_actor AS task_actor,
       t.lease_session AS task_session, t.lease_until AS task_until, t.fence AS task_fence,
       t.updated_at AS task_updated
FROM (SELECT * FROM tasks WHERE lease_until > (SELECT now FROM clock) AND status <> 'done'
      OFFSET 0) AS t
CROSS JOIN LATERAL (SELECT * FROM feed_items WHERE item = t.id AND state = 'DONE' OFFSET 0) AS fi
WHERE (SELECT done > 0 AND done >= held FROM sizes)
UNION ALL
SELECT fi.*, t.status AS task_status, t.lease_actor AS task_actor,
       t.lease_session AS task_session, t.lease_until AS task_until, t.fence AS task_fence,
       t.updated_at AS task_updated
FROM (SELECT * FROM feed_items WHERE state = 'DONE' OFFSET 0) AS fi
CROSS JOIN LATERAL (SELECT * FROM tasks WHERE id = fi.item OFFSET 0) AS t
WHERE (SELECT done > 0 AND done < held FROM sizes)
  AND t.lease_until > (SELECT now FROM clock) AND t.status <> 'done';

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
