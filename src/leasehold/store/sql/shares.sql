-- Lease sharing (migration 0011). :ids is a JSON array of task ids (json_each on SQLite;
-- PostgreSQL overrides it).

-- name: insert_share
INSERT INTO lease_shares (task_id, fence, session, shared_by, shared_at)
VALUES (:id, :fence, :session, :by, :now)
ON CONFLICT DO NOTHING;

-- name: shares_of_grant
SELECT session FROM lease_shares WHERE task_id = :id AND fence = :fence;

-- name: shares_among
SELECT s.task_id, s.session FROM lease_shares s
JOIN tasks t ON t.id = s.task_id AND t.fence = s.fence
WHERE s.task_id IN (SELECT value FROM json_each(:ids)) AND t.lease_until > :now
ORDER BY s.task_id, s.session;
