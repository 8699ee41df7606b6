-- PostgreSQL overrides of sql/sessions.sql.

-- name: held_among
SELECT * FROM tasks
WHERE id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb))) AND lease_until > :now
ORDER BY id;
