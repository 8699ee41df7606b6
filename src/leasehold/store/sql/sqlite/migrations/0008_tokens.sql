-- API tokens for `leasehold serve`. Only a SHA-256 hash of each token is stored, never the token:
-- the token is printed once when created. Times are REAL: UTC seconds since the Unix epoch.
-- Rows are never deleted: revoking sets revoked_at (the token_created / token_revoked events
-- keep the history).

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    actor      TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('agent', 'admin', 'reader')),
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL,
    created_by TEXT
);

CREATE TRIGGER tokens_no_delete BEFORE DELETE ON tokens
BEGIN
    SELECT RAISE(ABORT, 'tokens are never deleted: revoke them');
END;
