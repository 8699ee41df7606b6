-- Operation ids carry the digest of their call: the kind and arguments (SHA-256, hex) of the
-- call that recorded the id. A call repeated with the id and the same arguments replays the
-- recorded outcome; the id with other arguments is a different call, refused (exit 2), as an
-- idempotency key reused for another request is. Rows recorded before this migration have no
-- digest (NULL): their reuse is judged by kind, task and holder only.

ALTER TABLE operations ADD COLUMN digest TEXT;
