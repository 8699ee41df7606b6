-- Tasks, their leases, and the append-only event log.
-- Times are REAL: UTC seconds since the Unix epoch.

CREATE TABLE tasks (
    id                TEXT PRIMARY KEY,
    title             TEXT,
    status            TEXT NOT NULL DEFAULT 'open'
                      CHECK (status IN ('open', 'in_progress', 'done')),
    priority          INTEGER NOT NULL DEFAULT 0,
    lease_actor       TEXT,
    lease_session     TEXT,
    lease_acquired_at REAL,
    lease_until       REAL,
    lease_ttl         REAL,
    fence             INTEGER NOT NULL DEFAULT 0,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL,
    CHECK ((lease_actor IS NULL) = (lease_until IS NULL))
);

CREATE INDEX tasks_ready ON tasks (status, priority DESC, created_at, id);
CREATE INDEX tasks_lease_until ON tasks (lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX tasks_lease_holder ON tasks (lease_actor, lease_session) WHERE lease_actor IS NOT NULL;

CREATE TABLE events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    ts       REAL NOT NULL,
    kind     TEXT NOT NULL,
    task_id  TEXT,
    actor    TEXT,
    session  TEXT,
    fence    INTEGER,
    details  TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX events_task ON events (task_id, id);

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events is append-only: UPDATE is not allowed');
END;

CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events is append-only: DELETE is not allowed');
END;
