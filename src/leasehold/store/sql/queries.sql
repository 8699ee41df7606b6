-- Named queries shared by every dialect. Placeholders are :name; the PostgreSQL store rewrites
-- them to %(name)s. :now is always a bound parameter: the store's clock (the database server's
-- clock on PostgreSQL), so every statement of one transaction sees one instant.
-- A dialect may override any query in sql/<dialect>/queries.sql.

-- name: get_task
SELECT * FROM tasks WHERE id = :id;

-- name: lock_task
SELECT * FROM tasks WHERE id = :id;

-- name: insert_task
INSERT INTO tasks (id, title, priority, status, created_at, updated_at)
VALUES (:id, :title, :priority, 'open', :now, :now)
ON CONFLICT (id) DO NOTHING;

-- name: update_task_meta
UPDATE tasks
SET title = COALESCE(:title, title), priority = COALESCE(:priority, priority),
    status = COALESCE(:status, status), updated_at = :now
WHERE id = :id;

-- name: grant_lease
UPDATE tasks
SET lease_actor = :actor, lease_session = :session, lease_acquired_at = :acquired_at,
    lease_until = :until, lease_ttl = :ttl, fence = :fence, status = 'in_progress',
    updated_at = :now
WHERE id = :id
RETURNING *;

-- name: grant_free
-- The common claim in one statement: the task exists, is not done and has no lease at all.
UPDATE tasks
SET lease_actor = :actor, lease_session = :session, lease_acquired_at = :now,
    lease_until = :until, lease_ttl = :ttl, fence = fence + 1, status = 'in_progress',
    updated_at = :now
WHERE id = :id AND status <> 'done' AND lease_actor IS NULL
RETURNING *;

-- name: release_own
-- The common release in one statement: the caller's own, still valid lease.
UPDATE tasks
SET lease_actor = NULL, lease_session = NULL, lease_acquired_at = NULL, lease_until = NULL,
    lease_ttl = NULL, status = COALESCE(:status, status), updated_at = :now
WHERE id = :id AND lease_actor = :actor AND lease_session = :session AND lease_until > :now
RETURNING *;

-- name: extend_lease
UPDATE tasks
SET lease_until = :until, lease_ttl = :ttl, updated_at = :now
WHERE id = :id AND lease_actor = :actor AND lease_session = :session
  AND lease_until > :now AND (CAST(:fence AS BIGINT) IS NULL OR fence = :fence)
RETURNING *;

-- name: clear_lease
UPDATE tasks
SET lease_actor = NULL, lease_session = NULL, lease_acquired_at = NULL, lease_until = NULL,
    lease_ttl = NULL, status = COALESCE(:status, status), updated_at = :now
WHERE id = :id
RETURNING *;

-- name: expired_leases
SELECT * FROM tasks
WHERE lease_until IS NOT NULL AND lease_until <= :now
ORDER BY lease_until, id;

-- name: lock_expired_leases
-- The leases a sweep clears, read in its write transaction (PostgreSQL locks them).
SELECT * FROM tasks
WHERE lease_until IS NOT NULL AND lease_until <= :now
ORDER BY lease_until, id;

-- name: active_leases
SELECT * FROM tasks
WHERE lease_until IS NOT NULL AND lease_until > :now
ORDER BY lease_acquired_at, id;

-- name: active_leases_by_activity
-- Valid leases, the most recently updated first (who), a page of :limit after (:before_ts,
-- :before_id): walks tasks_lease_updated backwards.
SELECT * FROM tasks
WHERE lease_session IS NOT NULL AND lease_until > :now
  AND (updated_at, id) < (:before_ts, :before_id)
ORDER BY updated_at DESC, id DESC
LIMIT :limit;

-- name: leases_of_holder
SELECT * FROM tasks
WHERE lease_session = :session AND lease_actor = :actor AND lease_until > :now
ORDER BY id;

-- name: ready_candidates
-- The ready queue: not done, no valid lease, every blocker done (see dependencies.sql). Two index
-- walks, never a scan of held rows: tasks without a lease through tasks_free (priority order),
-- and expired leases through tasks_lease_until; the first :limit of their merge. The expired
-- arm orders by `priority + 0` (the same order) so that no planner walks the whole
-- priority-ordered index for it instead of taking the few expired rows and sorting them; it
-- picks their ids from the covering expiry index alone (a top-:limit sort, no table reads) and
-- reads only those rows.
SELECT * FROM (
    SELECT * FROM (
        SELECT * FROM tasks
        WHERE status <> 'done' AND lease_until IS NULL
          AND NOT EXISTS (
              SELECT 1 FROM dependencies d JOIN tasks b ON b.id = d.blocked_by
              WHERE d.task_id = tasks.id AND b.status <> 'done'
          )
        ORDER BY priority DESC, created_at, id
        LIMIT :limit
    ) AS free
    UNION ALL
    SELECT tasks.* FROM (
        SELECT id FROM tasks
        WHERE lease_until <= :now AND status <> 'done'
          AND NOT EXISTS (
              SELECT 1 FROM dependencies d JOIN tasks b ON b.id = d.blocked_by
              WHERE d.task_id = tasks.id AND b.status <> 'done'
          )
        ORDER BY priority + 0 DESC, created_at, id
        LIMIT :limit
    ) AS expired JOIN tasks ON tasks.id = expired.id
) AS ready
ORDER BY priority DESC, created_at, id
LIMIT :limit;

-- name: list_tasks
SELECT * FROM tasks ORDER BY priority DESC, created_at, id LIMIT :limit;

-- name: list_tasks_status
SELECT * FROM tasks WHERE status = :status ORDER BY priority DESC, created_at, id LIMIT :limit;

-- name: list_tasks_page
-- A page of tasks in list order (priority DESC, created_at, id) after the previous page's
-- last task (:priority, :created, :id): keyset paging, each page an index walk from the cursor.
-- :status and :held (1 held, 0 available, NULL either) filter as list_tasks_* do.
SELECT * FROM tasks
WHERE priority <= :priority
  AND NOT (priority = :priority AND (created_at < :created OR (created_at = :created AND id <= :id)))
  AND (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:held AS INTEGER) IS NULL
       OR (:held = 1 AND lease_until > :now)
       OR (:held = 0 AND status <> 'done' AND (lease_until IS NULL OR lease_until <= :now)))
ORDER BY priority DESC, created_at, id
LIMIT :limit;

-- name: list_tasks_held
SELECT * FROM tasks WHERE lease_until > :now ORDER BY priority DESC, created_at, id LIMIT :limit;

-- name: list_tasks_available
-- Not done, no valid lease (dependencies aside): the two index walks of ready_candidates.
SELECT * FROM (
    SELECT * FROM (
        SELECT * FROM tasks WHERE status <> 'done' AND lease_until IS NULL
        ORDER BY priority DESC, created_at, id LIMIT :limit
    ) AS free
    UNION ALL
    SELECT * FROM (
        SELECT * FROM tasks WHERE lease_until <= :now AND status <> 'done'
        ORDER BY priority + 0 DESC, created_at, id LIMIT :limit
    ) AS expired
) AS available
ORDER BY priority DESC, created_at, id
LIMIT :limit;

-- name: insert_event
INSERT INTO events (ts, kind, task_id, actor, session, fence, details)
VALUES (:now, :kind, :task_id, :actor, :session, :fence, :details);

-- name: events_all
SELECT * FROM (
    SELECT * FROM events WHERE id > :after ORDER BY id DESC LIMIT :limit
) AS recent ORDER BY id;

-- name: events_all_stream
-- Every event after :after, oldest first (log --all): the primary key in order, streamed.
SELECT * FROM events WHERE id > :after ORDER BY id;

-- name: events_task_stream
SELECT * FROM events WHERE task_id = :task_id AND id > :after ORDER BY id;

-- name: events_task
SELECT * FROM (
    SELECT * FROM events WHERE task_id = :task_id AND id > :after ORDER BY id DESC LIMIT :limit
) AS recent ORDER BY id;


-- name: lease_board
-- Recorded leases (valid, or past expiry and not swept yet) grouped by holder, the most recently
-- active holder first (the newest updated_at among its leases), then each holder's leases by
-- acquisition: a page of :limit from :offset (the dashboard's Now page).
SELECT * FROM (
    SELECT tasks.*,
           MAX(updated_at) OVER (PARTITION BY lease_actor, lease_session) AS holder_active
    FROM tasks
    WHERE lease_until IS NOT NULL
) AS board
ORDER BY holder_active DESC, lease_actor, lease_session, lease_acquired_at, id
LIMIT :limit OFFSET :offset;

-- name: lease_board_counts
-- The size of the board: recorded leases, those past expiry, and distinct holders.
SELECT COUNT(*) AS leases,
       COALESCE(SUM(CASE WHEN lease_until <= :now THEN 1 ELSE 0 END), 0) AS expired,
       (SELECT COUNT(*) FROM (SELECT 1 AS one FROM tasks WHERE lease_until IS NOT NULL
                              GROUP BY lease_actor, lease_session) AS holders) AS holders
FROM tasks
WHERE lease_until IS NOT NULL;
