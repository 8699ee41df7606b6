-- Lease sharing: a holder names other sessions (agent teammates) that may work under its lease.
-- A share belongs to one grant: it names the task's fencing token at the time of sharing, so a
-- new grant of the task (a new fence) leaves the old shares without effect. Times are REAL: UTC
-- seconds since the Unix epoch.

CREATE TABLE lease_shares (
    task_id    TEXT NOT NULL,
    fence      INTEGER NOT NULL,
    session    TEXT NOT NULL,
    shared_by  TEXT NOT NULL,
    shared_at  REAL NOT NULL,
    PRIMARY KEY (task_id, fence, session)
);
