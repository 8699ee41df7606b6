-- PostgreSQL overrides of the shared named queries (sql/queries.sql): row locks.

-- name: lock_task
SELECT * FROM tasks WHERE id = :id FOR UPDATE;

-- name: ready_candidates
SELECT * FROM tasks
WHERE status <> 'done' AND (lease_until IS NULL OR lease_until <= :now)
  AND NOT EXISTS (
      SELECT 1 FROM dependencies d JOIN tasks b ON b.id = d.blocked_by
      WHERE d.task_id = tasks.id AND b.status <> 'done'
  )
ORDER BY priority DESC, created_at, id
LIMIT :limit
FOR UPDATE OF tasks SKIP LOCKED;

-- name: lock_dependencies
-- Serialises changes to the dependency graph, so two concurrent `dep add` cannot close a cycle
-- that neither saw.
SELECT pg_advisory_xact_lock(hashtext('leasehold.dependencies:' || coalesce(current_schema(), ''))) AS locked;

-- name: next_claim
-- `next` in one statement. The clock is the server's, read once; candidates are the ready queue
-- (not done, no valid lease, every blocker done) locked FOR UPDATE SKIP LOCKED so concurrent
-- workers take disjoint tasks without waiting; each grant bumps the fence and appends its
-- `claimed` event (same details as the generic path).
WITH clock AS MATERIALIZED (
    SELECT extract(epoch FROM clock_timestamp())::float8 AS now
),
picked AS (
    SELECT t.id, t.lease_actor, t.lease_session, t.lease_until
    FROM tasks t
    WHERE t.status <> 'done'
      AND (t.lease_until IS NULL OR t.lease_until <= (SELECT now FROM clock))
      AND NOT EXISTS (
          SELECT 1 FROM dependencies d JOIN tasks b ON b.id = d.blocked_by
          WHERE d.task_id = t.id AND b.status <> 'done'
      )
    ORDER BY t.priority DESC, t.created_at, t.id
    LIMIT :limit
    FOR UPDATE OF t SKIP LOCKED
),
granted AS (
    UPDATE tasks t
    SET lease_actor = :actor, lease_session = :session, lease_acquired_at = c.now,
        lease_until = c.now + :ttl, lease_ttl = :ttl, fence = t.fence + 1,
        status = 'in_progress', updated_at = c.now
    FROM picked p, clock c
    WHERE t.id = p.id
    RETURNING t.*, p.lease_actor AS prev_actor, p.lease_session AS prev_session,
              p.lease_until AS prev_until, c.now AS now
),
logged AS (
    INSERT INTO events (ts, kind, task_id, actor, session, fence, details)
    SELECT g.now, 'claimed', g.id, g.lease_actor, g.lease_session, g.fence,
           (jsonb_build_object('expires_at', g.lease_until, 'ttl', g.lease_ttl, 'via', 'next')
            || CASE WHEN g.prev_actor IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('previous_holder', g.prev_actor || ':' || g.prev_session,
                                            'previous_until', g.prev_until) END)::text
    FROM granted g
    ORDER BY g.priority DESC, g.created_at, g.id
)
SELECT * FROM granted ORDER BY priority DESC, created_at, id;
