-- Queries over everything one session holds (the agent hooks), and the dispatch gate's batched
-- lookup. :ids is a JSON array of task ids (json_each on SQLite; PostgreSQL overrides it).

-- name: held_among
SELECT * FROM tasks
WHERE id IN (SELECT value FROM json_each(:ids)) AND lease_until > :now
ORDER BY id;

-- name: leases_of_session
SELECT * FROM tasks
WHERE lease_session = :session AND lease_until IS NOT NULL
ORDER BY id;

-- name: clear_lease_of_holder
UPDATE tasks
SET lease_actor = NULL, lease_session = NULL, lease_acquired_at = NULL, lease_until = NULL,
    lease_ttl = NULL, status = COALESCE(:status, status), updated_at = :now
WHERE id = :id AND lease_actor = :actor AND lease_session = :session
RETURNING *;
