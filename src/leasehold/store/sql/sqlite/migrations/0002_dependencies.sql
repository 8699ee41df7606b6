-- The ready queue's dependencies: task_id waits until blocked_by is done.

CREATE TABLE dependencies (
    task_id    TEXT NOT NULL REFERENCES tasks (id),
    blocked_by TEXT NOT NULL REFERENCES tasks (id),
    created_at REAL NOT NULL,
    PRIMARY KEY (task_id, blocked_by),
    CHECK (task_id <> blocked_by)
) WITHOUT ROWID;

CREATE INDEX dependencies_blocked_by ON dependencies (blocked_by, task_id);

-- The ready queue scans tasks not done by priority, then age.
CREATE INDEX tasks_not_done ON tasks (priority DESC, created_at, id) WHERE status <> 'done';
