-- PostgreSQL overrides of sql/sessions.sql.

-- name: held_among
-- One primary-key lookup per id (LATERAL), whatever the planner thinks of the id list's size.
SELECT t.* FROM (SELECT DISTINCT jsonb_array_elements_text(CAST(:ids AS jsonb)) AS id) AS wanted
CROSS JOIN LATERAL (
    SELECT * FROM tasks WHERE tasks.id = wanted.id AND tasks.lease_until > :now OFFSET 0
) AS t
ORDER BY t.id;

-- name: extend_session_returning
-- The heartbeat in one statement and one round trip: each valid lease of the session to now +
-- its own TTL, same fence, the extended rows returned (SQLite runs valid_leases_of_session and
-- extend_session_leases instead: through its sqlite3 module RETURNING costs more than the pair).
UPDATE tasks
SET lease_until = :now + lease_ttl, updated_at = :now
WHERE lease_session = :session AND lease_until > :now
RETURNING *;

-- name: log_session_release
-- Not used on PostgreSQL: release_session_leases does the whole release in one statement.
SELECT 1 AS unused WHERE false;

-- name: release_session_leases
-- A session's release in one statement: lock its leases, clear them (in_progress -> open),
-- append one `released` event each (details as SQLStore.release, via=session-end, as compact
-- JSON built by concatenation: 10,000 of them must fit in session-end's budget). Returns the
-- leases as they were.
WITH old AS (
    SELECT t.* FROM tasks t
    WHERE t.lease_session = :session
    ORDER BY t.id
    FOR UPDATE
),
cleared AS (
    UPDATE tasks t
    SET lease_actor = NULL, lease_session = NULL, lease_acquired_at = NULL, lease_until = NULL,
        lease_ttl = NULL, status = CASE WHEN t.status = 'in_progress' THEN 'open' ELSE t.status END,
        updated_at = :now
    FROM old o
    WHERE t.lease_session = :session AND t.id = o.id
    RETURNING t.id, t.status
),
logged AS (
    INSERT INTO events (ts, kind, task_id, actor, session, fence, details)
    SELECT :now, 'released', o.id, o.lease_actor, o.lease_session, o.fence,
           CASE WHEN o.lease_until <= :now THEN '{"after_expiry":true,' ELSE '{' END
           || '"holder":' || to_json(o.lease_actor || ':' || o.lease_session)::text
           || ',"status":' || to_json(c.status)::text || ',"via":"session-end"}'
    FROM old o JOIN cleared c ON c.id = o.id
    ORDER BY o.id
)
SELECT o.* FROM old o JOIN cleared c ON c.id = o.id ORDER BY o.id;

-- name: release_session_leases_count
-- release_session_leases returning only how many leases it released (the session-end hook).
WITH old AS (
    SELECT t.* FROM tasks t
    WHERE t.lease_session = :session
    ORDER BY t.id
    FOR UPDATE
),
cleared AS (
    UPDATE tasks t
    SET lease_actor = NULL, lease_session = NULL, lease_acquired_at = NULL, lease_until = NULL,
        lease_ttl = NULL, status = CASE WHEN t.status = 'in_progress' THEN 'open' ELSE t.status END,
        updated_at = :now
    FROM old o
    WHERE t.lease_session = :session AND t.id = o.id
    RETURNING t.id, t.status
),
logged AS (
    INSERT INTO events (ts, kind, task_id, actor, session, fence, details)
    SELECT :now, 'released', o.id, o.lease_actor, o.lease_session, o.fence,
           CASE WHEN o.lease_until <= :now THEN '{"after_expiry":true,' ELSE '{' END
           || '"holder":' || to_json(o.lease_actor || ':' || o.lease_session)::text
           || ',"status":' || to_json(c.status)::text || ',"via":"session-end"}'
    FROM old o JOIN cleared c ON c.id = o.id
    ORDER BY o.id
)
SELECT count(*) AS released FROM cleared;
