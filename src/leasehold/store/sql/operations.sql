-- Operation ids (idempotency keys): see migrations/0006_operations.sql and
-- 0012_operation_digests.sql (the digest of the call's kind and arguments).

-- name: insert_operation
-- Records an operation with its outcome; a row already there (the same id, committed by an
-- earlier attempt) inserts nothing, and the caller then replays the recorded outcome.
INSERT INTO operations (op_id, kind, task_id, actor, session, ts, result, digest)
VALUES (:op, :kind, :task_id, :actor, :session, :now, :result, :digest)
ON CONFLICT (op_id) DO NOTHING;

-- name: get_operation
SELECT * FROM operations WHERE op_id = :op;
