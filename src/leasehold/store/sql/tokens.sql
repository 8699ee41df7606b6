-- API tokens (store/sql_tokens.py). Placeholders are :name; :now is the store's clock.

-- name: insert_token
INSERT INTO tokens (id, hash, actor, role, created_at, expires_at, revoked_at, created_by)
VALUES (:id, :hash, :actor, :role, :now, :expires_at, NULL, :created_by);

-- name: token_by_hash
SELECT * FROM tokens WHERE hash = :hash;

-- name: token_by_id
SELECT * FROM tokens WHERE id = :id;

-- name: list_tokens
SELECT * FROM tokens ORDER BY created_at, id;

-- name: revoke_token
UPDATE tokens SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL;
