-- API tokens for `leasehold serve`. Only a SHA-256 hash of each token is stored, never the token:
-- the token is printed once when created. Times are double precision: UTC seconds since the Unix
-- epoch. Rows are never deleted: revoking sets revoked_at (the token_created / token_revoked
-- events keep the history).

CREATE TABLE tokens (
    id         text PRIMARY KEY,
    hash       text NOT NULL UNIQUE,
    actor      text NOT NULL,
    role       text NOT NULL CHECK (role IN ('agent', 'admin', 'reader')),
    created_at double precision NOT NULL,
    expires_at double precision,
    revoked_at double precision,
    created_by text
);

CREATE OR REPLACE FUNCTION leasehold_tokens_no_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tokens are never deleted: revoke them (% is not allowed)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER tokens_no_delete BEFORE DELETE ON tokens
FOR EACH ROW EXECUTE FUNCTION leasehold_tokens_no_delete();

CREATE TRIGGER tokens_no_truncate BEFORE TRUNCATE ON tokens
FOR EACH STATEMENT EXECUTE FUNCTION leasehold_tokens_no_delete();
