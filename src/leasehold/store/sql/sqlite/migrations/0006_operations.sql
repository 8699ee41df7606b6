-- Operation ids (idempotency keys): every mutating call records its id and its outcome here, in
-- the same transaction as its effect. A call whose connection was lost after COMMIT was sent is
-- resolved by looking its id up; a retry with the same id returns the recorded outcome instead of
-- applying twice. A call that changed nothing (a conflict, a task not found) records nothing.
-- Rows are never changed or deleted.

CREATE TABLE IF NOT EXISTS operations (
    op_id    TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    task_id  TEXT,
    actor    TEXT,
    session  TEXT,
    ts       REAL NOT NULL,
    result   TEXT NOT NULL DEFAULT '{}'
);

CREATE TRIGGER IF NOT EXISTS operations_append_only_update BEFORE UPDATE ON operations
BEGIN
    SELECT RAISE(ABORT, 'operations is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER IF NOT EXISTS operations_append_only_delete BEFORE DELETE ON operations
BEGIN
    SELECT RAISE(ABORT, 'operations is append-only: DELETE is not allowed');
END;
