-- Operation ids (idempotency keys): every mutating call records its id and its outcome here, in
-- the same transaction (or statement) as its effect. A call whose connection was lost after
-- COMMIT was sent is resolved by looking its id up; a retry with the same id returns the recorded
-- outcome instead of applying twice. A call that changed nothing records nothing.
-- Times are double precision: UTC seconds since the Unix epoch, from the server's clock.

CREATE TABLE IF NOT EXISTS operations (
    op_id    TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    task_id  TEXT,
    actor    TEXT,
    session  TEXT,
    ts       DOUBLE PRECISION NOT NULL,
    result   TEXT NOT NULL DEFAULT '{}'
);

CREATE OR REPLACE FUNCTION leasehold_operations_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'operations is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

DROP TRIGGER IF EXISTS operations_append_only ON operations;
CREATE TRIGGER operations_append_only BEFORE UPDATE OR DELETE ON operations
FOR EACH ROW EXECUTE FUNCTION leasehold_operations_append_only();

DROP TRIGGER IF EXISTS operations_no_truncate ON operations;
CREATE TRIGGER operations_no_truncate BEFORE TRUNCATE ON operations
FOR EACH STATEMENT EXECUTE FUNCTION leasehold_operations_append_only();
