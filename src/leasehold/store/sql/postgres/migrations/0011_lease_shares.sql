-- Lease sharing: a holder names other sessions (agent teammates) that may work under its lease.
-- A share belongs to one grant: it names the task's fencing token at the time of sharing, so a
-- new grant of the task (a new fence) leaves the old shares without effect. Times are double
-- precision: UTC seconds since the Unix epoch.

CREATE TABLE lease_shares (
    task_id    text NOT NULL,
    fence      bigint NOT NULL,
    session    text NOT NULL,
    shared_by  text NOT NULL,
    shared_at  double precision NOT NULL,
    PRIMARY KEY (task_id, fence, session)
);
