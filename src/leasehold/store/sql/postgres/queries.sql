-- PostgreSQL overrides of the shared named queries (sql/queries.sql): row locks.

-- name: lock_task
-- The row, locked, and the server's clock read AFTER the lock is held (the outer projection runs
-- on the row the locking scan returns, so a lock wait comes before the clock): the instant every
-- decision and timestamp of the transaction then uses.
WITH locked AS MATERIALIZED (
    SELECT * FROM tasks WHERE id = :id FOR UPDATE
)
SELECT locked.*, extract(epoch FROM clock_timestamp())::float8 AS now FROM locked;

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
-- `next` in one statement. Candidates are the ready queue (not done, no valid lease, every blocker
-- done) locked FOR UPDATE SKIP LOCKED, so concurrent workers take disjoint tasks without waiting.
-- The queue is read with the clock of the statement's start (a lease expired then is expired
-- later too); each grant is stamped with the clock read after its row is locked (`stamped`), so a
-- grant is never stamped before the release or expiry it follows. Each grant bumps the fence and
-- appends its `claimed` event (same details as the generic path); :op records the operation.
-- The candidates come from two index walks, never a scan of held rows: tasks_free (no lease, in
-- priority order) and tasks_lease_until (expired leases), merged.
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
picked AS MATERIALIZED (
    SELECT id, lease_actor, lease_session, lease_until
    FROM (SELECT * FROM free UNION ALL SELECT * FROM expired) AS ready
    ORDER BY priority DESC, created_at, id
    LIMIT :limit
),
stamped AS MATERIALIZED (
    SELECT p.*, extract(epoch FROM clock_timestamp())::float8 AS now FROM picked p
),
granted AS (
    UPDATE tasks t
    SET lease_actor = :actor, lease_session = :session, lease_acquired_at = s.now,
        lease_until = s.now + :ttl, lease_ttl = :ttl, fence = t.fence + 1,
        status = 'in_progress', updated_at = s.now
    FROM stamped s
    WHERE t.id = s.id
    RETURNING t.*, s.lease_actor AS prev_actor, s.lease_session AS prev_session,
              s.lease_until AS prev_until, s.now AS now
),
logged AS (
    INSERT INTO events (ts, kind, task_id, actor, session, fence, details)
    SELECT g.now, 'claimed', g.id, g.lease_actor, g.lease_session, g.fence,
           (jsonb_build_object('expires_at', g.lease_until, 'ttl', g.lease_ttl, 'via', 'next')
            || CASE WHEN g.prev_actor IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('previous_holder', g.prev_actor || ':' || g.prev_session,
                                            'previous_until', g.prev_until) END
            || CASE WHEN CAST(:op AS TEXT) IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('op', CAST(:op AS TEXT)) END)::text
    FROM granted g
    ORDER BY g.priority DESC, g.created_at, g.id
),
recorded AS (
    INSERT INTO operations (op_id, kind, task_id, actor, session, ts, result, digest)
    SELECT CAST(:op AS TEXT), 'next', NULL, CAST(:actor AS TEXT), CAST(:session AS TEXT), max(g.now),
           jsonb_build_object('tasks', jsonb_agg(
               to_jsonb(g) - 'prev_actor' - 'prev_session' - 'prev_until' - 'now'
               ORDER BY g.priority DESC, g.created_at, g.id))::text, CAST(:digest AS TEXT)
    FROM granted g
    WHERE CAST(:op AS TEXT) IS NOT NULL
    HAVING count(*) > 0
)
SELECT * FROM granted ORDER BY priority DESC, created_at, id;

-- name: release_one
-- `release` / `done` / force-release in one statement: lock the row, read the server's clock
-- after the lock is held (`stamped`), decide the outcome on it (same rules as
-- SQLStore.release), clear the lease and append the event only when the outcome is `released`
-- (and then record :op). Returns the outcome with the row before and after.
WITH locked AS MATERIALIZED (
    SELECT t.* FROM tasks t WHERE t.id = :id FOR UPDATE
),
stamped AS MATERIALIZED (
    SELECT l.*, extract(epoch FROM clock_timestamp())::float8 AS now FROM locked l
),
old AS (
    SELECT s.*,
        CASE
            WHEN :force THEN
                CASE WHEN s.lease_actor IS NULL THEN 'not_held' ELSE 'released' END
            WHEN s.lease_actor IS NULL THEN 'not_held'
            WHEN s.lease_actor = :actor AND s.lease_session = :session AND NOT (s.lease_until > s.now)
                THEN 'expired'
            WHEN s.lease_actor = :actor AND s.lease_session = :session THEN 'released'
            WHEN s.lease_until > s.now THEN 'held_by_other'
            ELSE 'not_held'
        END AS outcome
    FROM stamped s
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
            || jsonb_build_object('holder', o.lease_actor || ':' || o.lease_session)
            || CASE WHEN NOT (o.lease_until > o.now)
                    THEN jsonb_build_object('after_expiry', true) ELSE '{}'::jsonb END
            || CASE WHEN CAST(:op AS TEXT) IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('op', CAST(:op AS TEXT)) END)::text
    FROM old o JOIN new n ON n.id = o.id
),
recorded AS (
    INSERT INTO operations (op_id, kind, task_id, actor, session, ts, result, digest)
    SELECT CAST(:op AS TEXT), :kind, n.id, :actor, :session, o.now,
           jsonb_build_object('tasks', jsonb_build_array(to_jsonb(n)), 'outcome', 'released')::text, CAST(:digest AS TEXT)
    FROM old o JOIN new n ON n.id = o.id
    WHERE CAST(:op AS TEXT) IS NOT NULL
)
SELECT o.outcome, to_jsonb(o) AS old, to_jsonb(n) AS new
FROM old o LEFT JOIN new n ON n.id = o.id;

-- name: complete_many
-- `done ID...` in one statement: lock (in id order) the tasks among :ids whose lease the caller
-- validly holds (a lease past its expiry is over: see SQLStore.release), read the server's clock
-- after each lock (`stamped`), mark the ones still valid on it done, clear the lease, append one
-- `completed` event each (same details as SQLStore.complete_many) and record :op.
WITH old AS MATERIALIZED (
    SELECT t.id, t.lease_until
    FROM tasks t
    WHERE t.id = ANY(CAST(:ids AS text[]))
      AND t.lease_actor = CAST(:actor AS text) AND t.lease_session = CAST(:session AS text)
    ORDER BY t.id
    FOR UPDATE
),
stamped AS MATERIALIZED (
    SELECT o.*, extract(epoch FROM clock_timestamp())::float8 AS now FROM old o
),
done AS (
    UPDATE tasks t
    SET lease_actor = NULL, lease_session = NULL, lease_acquired_at = NULL, lease_until = NULL,
        lease_ttl = NULL, status = 'done', updated_at = s.now
    FROM stamped s
    WHERE t.id = s.id AND s.lease_until > s.now
    RETURNING t.*, s.lease_until AS prev_until, s.now AS now
),
logged AS (
    INSERT INTO events (ts, kind, task_id, actor, session, fence, details)
    SELECT d.now, 'completed', d.id, CAST(:actor AS text), CAST(:session AS text), d.fence,
           (jsonb_build_object('status', 'done',
                               'holder', CAST(:actor AS text) || ':' || CAST(:session AS text))
            || CASE WHEN d.prev_until <= d.now THEN jsonb_build_object('after_expiry', true)
                    ELSE '{}'::jsonb END
            || CASE WHEN CAST(:op AS TEXT) IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('op', CAST(:op AS TEXT)) END)::text
    FROM done d
    ORDER BY d.id
),
recorded AS (
    INSERT INTO operations (op_id, kind, task_id, actor, session, ts, result, digest)
    SELECT CAST(:op AS TEXT), 'complete_many', NULL, CAST(:actor AS text), CAST(:session AS text),
           max(d.now),
           jsonb_build_object('tasks', jsonb_agg(to_jsonb(d) - 'prev_until' - 'now' ORDER BY d.id))::text, CAST(:digest AS TEXT)
    FROM done d
    WHERE CAST(:op AS TEXT) IS NOT NULL
    HAVING count(*) > 0
)
SELECT * FROM done ORDER BY id;

-- name: claim_free
-- The common claim in one statement: the task exists, is not done and has no lease at all. The
-- row is locked first (`locked`; a lock wait comes before the clock), the server's clock is read
-- after the lock (`stamped`), the lease granted on it (new fence), its `claimed` event appended
-- and :op recorded. No row: the task is unknown, done, or leased (valid or expired), and the
-- store decides in a transaction (lock_task) instead.
WITH locked AS MATERIALIZED (
    SELECT t.id FROM tasks t
    WHERE t.id = :id AND t.status <> 'done' AND t.lease_actor IS NULL
    FOR UPDATE
),
stamped AS MATERIALIZED (
    SELECT l.id, extract(epoch FROM clock_timestamp())::float8 AS now FROM locked l
),
granted AS (
    UPDATE tasks t
    SET lease_actor = :actor, lease_session = :session, lease_acquired_at = s.now,
        lease_until = s.now + :ttl, lease_ttl = :ttl, fence = t.fence + 1,
        status = 'in_progress', updated_at = s.now
    FROM stamped s
    WHERE t.id = s.id
    RETURNING t.*, s.now AS now
),
logged AS (
    INSERT INTO events (ts, kind, task_id, actor, session, fence, details)
    SELECT g.now, 'claimed', g.id, g.lease_actor, g.lease_session, g.fence,
           (jsonb_build_object('expires_at', g.lease_until, 'ttl', g.lease_ttl)
            || CASE WHEN CAST(:op AS TEXT) IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('op', CAST(:op AS TEXT)) END)::text
    FROM granted g
),
recorded AS (
    INSERT INTO operations (op_id, kind, task_id, actor, session, ts, result, digest)
    SELECT CAST(:op AS TEXT), 'claim', g.id, g.lease_actor, g.lease_session, g.now,
           jsonb_build_object('tasks', jsonb_build_array(to_jsonb(g) - 'now'), 'renewed', false,
                              'previous', NULL, 'created', false)::text, CAST(:digest AS TEXT)
    FROM granted g
    WHERE CAST(:op AS TEXT) IS NOT NULL
)
SELECT * FROM granted;
