-- Tasks, their leases, and the append-only event log (PostgreSQL).
-- Times are double precision: UTC seconds since the Unix epoch, from the server's clock.

CREATE TABLE tasks (
    id                TEXT PRIMARY KEY,
    title             TEXT,
    status            TEXT NOT NULL DEFAULT 'open'
                      CHECK (status IN ('open', 'in_progress', 'done')),
    priority          INTEGER NOT NULL DEFAULT 0,
    lease_actor       TEXT,
    lease_session     TEXT,
    lease_acquired_at DOUBLE PRECISION,
    lease_until       DOUBLE PRECISION,
    lease_ttl         DOUBLE PRECISION,
    fence             BIGINT NOT NULL DEFAULT 0,
    created_at        DOUBLE PRECISION NOT NULL,
    updated_at        DOUBLE PRECISION NOT NULL,
    CHECK ((lease_actor IS NULL) = (lease_until IS NULL))
);

CREATE INDEX tasks_ready ON tasks (status, priority DESC, created_at, id);
CREATE INDEX tasks_lease_until ON tasks (lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX tasks_lease_holder ON tasks (lease_actor, lease_session) WHERE lease_actor IS NOT NULL;

CREATE TABLE events (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts       DOUBLE PRECISION NOT NULL,
    kind     TEXT NOT NULL,
    task_id  TEXT,
    actor    TEXT,
    session  TEXT,
    fence    BIGINT,
    details  TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX events_task ON events (task_id, id);

CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();

CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();

CREATE TRIGGER events_append_only_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
