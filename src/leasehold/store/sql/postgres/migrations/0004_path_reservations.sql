-- File reservations: leases on gitignore-style path patterns, relative to the repository root.
-- Times are double precision: UTC seconds since the Unix epoch. A reservation is valid while
-- now < expires_at.
--
-- path_fence is a single row: the fencing-token counter of every path reservation (one counter
-- for all patterns keeps each pattern's tokens strictly increasing) and the row every reserving
-- transaction updates first, which serialises reservers (a row lock held to commit): the overlap
-- check and the grant are one atomic step.

CREATE TABLE path_fence (
    id    integer PRIMARY KEY CHECK (id = 1),
    fence bigint NOT NULL
);

INSERT INTO path_fence (id, fence) VALUES (1, 0);

CREATE TABLE path_reservations (
    pattern     text NOT NULL,
    actor       text NOT NULL,
    session     text NOT NULL,
    exclusive   integer NOT NULL CHECK (exclusive IN (0, 1)),
    reason      text,
    acquired_at double precision NOT NULL,
    expires_at  double precision NOT NULL,
    ttl         double precision NOT NULL,
    fence       bigint NOT NULL,
    updated_at  double precision NOT NULL,
    PRIMARY KEY (pattern, actor, session)
);

CREATE INDEX path_reservations_expires ON path_reservations (expires_at);
CREATE INDEX path_reservations_session ON path_reservations (session);
