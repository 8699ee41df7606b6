-- File reservations (store/sql_paths.py). Placeholders are :name; :now is the store's clock.
-- A reservation is valid while :now < expires_at.

-- name: lock_path_fence
-- Taken first by every reserving transaction: serialises reservers (see 0004's comment).
UPDATE path_fence SET fence = fence WHERE id = 1;

-- name: next_path_fence
UPDATE path_fence SET fence = fence + 1 WHERE id = 1 RETURNING fence;

-- name: delete_expired_paths
DELETE FROM path_reservations WHERE expires_at <= :now RETURNING *;

-- name: expired_paths
SELECT * FROM path_reservations WHERE expires_at <= :now ORDER BY pattern, acquired_at, actor, session;

-- name: delete_pattern
-- A force release: every holder's reservation of the pattern.
DELETE FROM path_reservations WHERE pattern = :pattern RETURNING *;

-- name: valid_paths
SELECT * FROM path_reservations WHERE expires_at > :now ORDER BY pattern, acquired_at, actor, session;

-- name: valid_paths_of_others
SELECT * FROM path_reservations
WHERE expires_at > :now AND NOT (actor = :actor AND session = :session)
ORDER BY pattern, acquired_at;

-- name: exclusive_paths_not_of_session
SELECT * FROM path_reservations
WHERE expires_at > :now AND exclusive = 1 AND session <> :session
ORDER BY pattern, acquired_at;

-- name: get_path
SELECT * FROM path_reservations WHERE pattern = :pattern AND actor = :actor AND session = :session;

-- name: upsert_path
INSERT INTO path_reservations
    (pattern, actor, session, exclusive, reason, acquired_at, expires_at, ttl, fence, updated_at)
VALUES (:pattern, :actor, :session, :exclusive, :reason, :acquired_at, :until, :ttl, :fence, :now)
ON CONFLICT (pattern, actor, session) DO UPDATE
SET exclusive = excluded.exclusive, reason = excluded.reason, acquired_at = excluded.acquired_at,
    expires_at = excluded.expires_at, ttl = excluded.ttl, fence = excluded.fence,
    updated_at = excluded.updated_at
RETURNING *;

-- name: delete_path
DELETE FROM path_reservations
WHERE pattern = :pattern AND actor = :actor AND session = :session
RETURNING *;

-- name: paths_of_session
SELECT * FROM path_reservations WHERE session = :session ORDER BY pattern, actor;

-- name: extend_path
UPDATE path_reservations
SET expires_at = :until, updated_at = :now
WHERE pattern = :pattern AND actor = :actor AND session = :session AND expires_at > :now
RETURNING *;
