-- The ready queue with dependencies: a task waits until every task it is blocked by is done.
-- Portable SQL (SQLite 3.40 and PostgreSQL 15). ready_candidates (queries.sql) applies the same
-- rule for `next`.

-- name: ready_tasks
-- Same query as ready_candidates (queries.sql): two index walks, free tasks and expired leases.
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

-- name: blocked_tasks
SELECT t.*, d.blocked_by AS blocker_id, b.status AS blocker_status
FROM tasks t
JOIN dependencies d ON d.task_id = t.id
JOIN tasks b ON b.id = d.blocked_by
WHERE t.status <> 'done' AND b.status <> 'done'
ORDER BY t.priority DESC, t.created_at, t.id, d.blocked_by;

-- name: blockers_of
SELECT d.blocked_by AS id, b.status AS status
FROM dependencies d JOIN tasks b ON b.id = d.blocked_by
WHERE d.task_id = :id
ORDER BY d.blocked_by;

-- name: task_exists
SELECT id FROM tasks WHERE id = :id;

-- name: lock_dependencies
-- Serialises changes to the dependency graph (the cycle check reads the whole graph).
-- SQLite: BEGIN IMMEDIATE already does; PostgreSQL overrides this with an advisory lock.
SELECT 1 AS locked;

-- name: depends_transitively
-- Does :start wait (directly or through others) on :target? Adding ":target blocked by :start"
-- would then close a cycle.
WITH RECURSIVE up (id) AS (
    SELECT blocked_by FROM dependencies WHERE task_id = :start
    UNION
    SELECT d.blocked_by FROM dependencies d JOIN up ON d.task_id = up.id
)
SELECT id FROM up WHERE id = :target LIMIT 1;

-- name: insert_dependency
INSERT INTO dependencies (task_id, blocked_by, created_at)
VALUES (:id, :blocked_by, :now)
ON CONFLICT (task_id, blocked_by) DO NOTHING;

-- name: delete_dependency
DELETE FROM dependencies WHERE task_id = :id AND blocked_by = :blocked_by;
