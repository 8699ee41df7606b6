-- Queries over everything one session holds (the agent hooks), and the dispatch gate's batched
-- lookup. :ids is a JSON array of task ids (json_each on SQLite; PostgreSQL overrides it).

-- name: held_among
SELECT * FROM tasks
WHERE id IN (SELECT value FROM json_each(:ids)) AND lease_until > :now
ORDER BY id;

-- name: leases_of_session
-- Every lease (valid or expired) of the session, through tasks_lease_session.
SELECT * FROM tasks
WHERE lease_session = :session
ORDER BY id;

-- name: valid_leases_of_session
SELECT * FROM tasks
WHERE lease_session = :session AND lease_until > :now
ORDER BY id;

-- name: extend_session_leases
-- The heartbeat of a session in one statement: each valid lease to now + its own TTL, same fence.
UPDATE tasks
SET lease_until = :now + lease_ttl, updated_at = :now
WHERE lease_session = :session AND lease_until > :now;

-- name: log_session_release
-- One `released` event per lease of the session (before clear_session_leases), set-based; the
-- details are those of SQLStore.release with via=session-end (keys sorted, compact JSON).
INSERT INTO events (ts, kind, task_id, actor, session, fence, details)
SELECT :now, 'released', id, lease_actor, lease_session, fence,
       CASE WHEN lease_until > :now
            THEN json_object('holder', lease_actor || ':' || lease_session,
                             'status', CASE WHEN status = 'in_progress' THEN 'open' ELSE status END,
                             'via', 'session-end')
            ELSE json_object('after_expiry', json('true'),
                             'holder', lease_actor || ':' || lease_session,
                             'status', CASE WHEN status = 'in_progress' THEN 'open' ELSE status END,
                             'via', 'session-end')
       END
FROM tasks
WHERE lease_session = :session
ORDER BY id;

-- name: clear_session_leases
UPDATE tasks
SET lease_actor = NULL, lease_session = NULL, lease_acquired_at = NULL, lease_until = NULL,
    lease_ttl = NULL, status = CASE WHEN status = 'in_progress' THEN 'open' ELSE status END,
    updated_at = :now
WHERE lease_session = :session;

-- name: clear_lease_of_holder
UPDATE tasks
SET lease_actor = NULL, lease_session = NULL, lease_acquired_at = NULL, lease_until = NULL,
    lease_ttl = NULL, status = COALESCE(:status, status), updated_at = :now
WHERE id = :id AND lease_actor = :actor AND lease_session = :session
RETURNING *;
