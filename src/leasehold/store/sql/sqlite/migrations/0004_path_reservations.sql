-- File reservations: leases on gitignore-style path patterns, relative to the repository root.
-- Times are REAL: UTC seconds since the Unix epoch. A reservation is valid while now < expires_at.
--
-- path_fence is a single row: the fencing-token counter of every path reservation (one counter
-- for all patterns keeps each pattern's tokens strictly increasing) and the row every reserving
-- transaction updates first, which serialises reservers on PostgreSQL as BEGIN IMMEDIATE does
-- on SQLite: the overlap check and the grant are one atomic step.

CREATE TABLE path_fence (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    fence INTEGER NOT NULL
);

INSERT INTO path_fence (id, fence) VALUES (1, 0);

CREATE TABLE path_reservations (
    pattern     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    session     TEXT NOT NULL,
    exclusive   INTEGER NOT NULL CHECK (exclusive IN (0, 1)),
    reason      TEXT,
    acquired_at REAL NOT NULL,
    expires_at  REAL NOT NULL,
    ttl         REAL NOT NULL,
    fence       INTEGER NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (pattern, actor, session)
);

CREATE INDEX path_reservations_expires ON path_reservations (expires_at);
CREATE INDEX path_reservations_session ON path_reservations (session);
