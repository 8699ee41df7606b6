-- PostgreSQL overrides of sql/shares.sql.

-- name: shares_among
SELECT s.task_id, s.session FROM lease_shares s
JOIN tasks t ON t.id = s.task_id AND t.fence = s.fence
WHERE s.task_id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb))) AND t.lease_until > :now
ORDER BY s.task_id, s.session;
