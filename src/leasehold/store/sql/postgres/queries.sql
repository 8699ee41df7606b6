-- PostgreSQL overrides of the shared named queries (sql/queries.sql): row locks.

-- name: lock_task
SELECT * FROM tasks WHERE id = :id FOR UPDATE;

-- name: ready_candidates
-- The generic next path's pick (PostgreSQL's next runs next_claim instead): each index walk of
-- the shared ready_candidates locks its rows FOR UPDATE SKIP LOCKED.
WITH free AS (
    SELECT t.* FROM tasks t
    WHERE t.status <> 'done' AND t.lease_until IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM dependencies d JOIN tasks b ON b.id = d.blocked_by
          WHERE d.task_id = t.id AND b.status <> 'done'
      )
    ORDER BY t.priority DESC, t.created_at, t.id
    LIMIT :limit
    FOR UPDATE OF t SKIP LOCKED
),
expired AS (
    SELECT t.* FROM tasks t
    WHERE t.lease_until <= :now AND t.status <> 'done'
      AND NOT EXISTS (
          SELECT 1 FROM dependencies d JOIN tasks b ON b.id = d.blocked_by
          WHERE d.task_id = t.id AND b.status <> 'done'
      )
    ORDER BY t.priority + 0 DESC, t.created_at, t.id
    LIMIT :limit
    FOR UPDATE OF t SKIP LOCKED
)
SELECT * FROM (SELECT * FROM free UNION ALL SELECT * FROM expired) AS ready
ORDER BY priority DESC, created_at, id
LIMIT :limit;

-- name: lock_expired_leases
-- The sweep decides from these rows, so it locks them: a lease granted after the sweep's snapshot
-- (a takeover committed while the sweep waited) fails the re-check and is never cleared. Rows
-- locked by a claim in flight are skipped (a later sweep sees them); no lock-order deadlock.
SELECT * FROM tasks
WHERE lease_until IS NOT NULL AND lease_until <= :now
ORDER BY lease_until, id
FOR UPDATE SKIP LOCKED;

-- name: lock_dependencies
-- Serialises changes to the dependency graph, so two concurrent `dep add` cannot close a cycle
-- that neither saw.
SELECT pg_advisory_xact_lock(hashtext('leasehold.dependencies:' || coalesce(current_schema(), ''))) AS locked;

-- name: next_claim
-- `next` in one statement. The clock is the server's, read once; candidates are the ready queue
-- (not done, no valid lease, every blocker done), found by two index walks (tasks_free: no lease;
-- tasks_lease_until: expired leases), each locked FOR UPDATE SKIP LOCKED so concurrent
-- workers take disjoint tasks without waiting; each grant bumps the fence and appends its
-- `claimed` event (same details as the generic path).
WITH clock AS MATERIALIZED (
    SELECT extract(epoch FROM clock_timestamp())::float8 AS now
),
free AS (
    SELECT t.id, t.priority, t.created_at, t.lease_actor, t.lease_session, t.lease_until
    FROM tasks t
    WHERE t.status <> 'done' AND t.lease_until IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM dependencies d JOIN tasks b ON b.id = d.blocked_by
          WHERE d.task_id = t.id AND b.status <> 'done'
      )
    ORDER BY t.priority DESC, t.created_at, t.id
    LIMIT :limit
    FOR UPDATE OF t SKIP LOCKED
),
expired AS (
    SELECT t.id, t.priority, t.created_at, t.lease_actor, t.lease_session, t.lease_until
    FROM tasks t
    -- statement_timestamp() (stable, so the planner can use and estimate it; a moment before
    -- the clock above: a lease expiring in between is left alone) keeps this on the index.
    WHERE t.lease_until <= extract(epoch FROM statement_timestamp())::float8 AND t.status <> 'done'
      AND NOT EXISTS (
          SELECT 1 FROM dependencies d JOIN tasks b ON b.id = d.blocked_by
          WHERE d.task_id = t.id AND b.status <> 'done'
      )
    ORDER BY t.priority + 0 DESC, t.created_at, t.id
    LIMIT :limit
    FOR UPDATE OF t SKIP LOCKED
),
picked AS (
    SELECT * FROM (SELECT * FROM free UNION ALL SELECT * FROM expired) AS ready
    ORDER BY priority DESC, created_at, id
    LIMIT :limit
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

-- name: release_one
-- `release` / `done` / force-release in one statement: lock the row, decide the outcome on the
-- server's clock (same rules as SQLStore.release), clear the lease and append the event only
-- when the outcome is `released`. Returns the outcome with the row before and after.
WITH clock AS MATERIALIZED (
    SELECT extract(epoch FROM clock_timestamp())::float8 AS now
),
old AS (
    SELECT t.*, c.now AS now,
        CASE
            WHEN :force THEN
                CASE WHEN t.lease_actor IS NULL AND CAST(:status AS TEXT) IS NULL
                     THEN 'not_held' ELSE 'released' END
            WHEN t.lease_actor IS NULL THEN 'not_held'
            WHEN t.lease_actor = :actor AND t.lease_session = :session THEN 'released'
            WHEN t.lease_until > c.now THEN 'held_by_other'
            ELSE 'not_held'
        END AS outcome
    FROM tasks t, clock c
    WHERE t.id = :id
    FOR UPDATE OF t
),
new AS (
    UPDATE tasks t
    SET lease_actor = NULL, lease_session = NULL, lease_acquired_at = NULL, lease_until = NULL,
        lease_ttl = NULL, status = COALESCE(CAST(:status AS TEXT), t.status), updated_at = o.now
    FROM old o
    WHERE t.id = o.id AND o.outcome = 'released'
    RETURNING t.*
),
logged AS (
    INSERT INTO events (ts, kind, task_id, actor, session, fence, details)
    SELECT o.now, :kind, o.id, :actor, :session, o.fence,
           (CAST(:details AS jsonb) || jsonb_build_object('status', n.status)
            || CASE WHEN o.lease_actor IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('holder', o.lease_actor || ':' || o.lease_session) END
            || CASE WHEN o.lease_actor IS NOT NULL AND NOT (o.lease_until > o.now)
                    THEN jsonb_build_object('after_expiry', true) ELSE '{}'::jsonb END)::text
    FROM old o JOIN new n ON n.id = o.id
)
SELECT o.outcome, to_jsonb(o) AS old, to_jsonb(n) AS new
FROM old o LEFT JOIN new n ON n.id = o.id;

-- name: complete_many
-- `done ID...` in one statement: lock (in id order) the tasks among :ids whose lease the caller
-- holds (valid, or expired with nobody having taken it over), mark them done, clear the lease and
-- append one `completed` event each (same details as SQLStore.complete_many).
WITH clock AS MATERIALIZED (
    SELECT extract(epoch FROM clock_timestamp())::float8 AS now
),
old AS (
    SELECT t.id, t.lease_until
    FROM tasks t
    WHERE t.id = ANY(CAST(:ids AS text[]))
      AND t.lease_actor = CAST(:actor AS text) AND t.lease_session = CAST(:session AS text)
    ORDER BY t.id
    FOR UPDATE
),
done AS (
    UPDATE tasks t
    SET lease_actor = NULL, lease_session = NULL, lease_acquired_at = NULL, lease_until = NULL,
        lease_ttl = NULL, status = 'done', updated_at = c.now
    FROM old o, clock c
    WHERE t.id = o.id
    RETURNING t.*, o.lease_until AS prev_until, c.now AS now
),
logged AS (
    INSERT INTO events (ts, kind, task_id, actor, session, fence, details)
    SELECT d.now, 'completed', d.id, CAST(:actor AS text), CAST(:session AS text), d.fence,
           (jsonb_build_object('status', 'done',
                               'holder', CAST(:actor AS text) || ':' || CAST(:session AS text))
            || CASE WHEN d.prev_until <= d.now THEN jsonb_build_object('after_expiry', true)
                    ELSE '{}'::jsonb END)::text
    FROM done d
    ORDER BY d.id
)
SELECT * FROM done ORDER BY id;
