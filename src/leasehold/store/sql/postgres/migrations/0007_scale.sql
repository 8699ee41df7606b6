-- Scale (PostgreSQL): every hot path finds its rows through an index, whatever the number of tasks and of
-- held leases; the feed keeps each item's reduced state in a table (feed_items), updated in the
-- transaction of the post, so the reducer reads open items only.

-- The claimable tasks that have no lease at all (ready / next): the ready queue walks this index
-- in priority order and never steps over held or done rows. Expired leases come from
-- tasks_lease_until (lease_until <= now).
CREATE INDEX tasks_free ON tasks (priority DESC, created_at, id)
    WHERE status <> 'done' AND lease_until IS NULL;
DROP INDEX IF EXISTS tasks_not_done;

-- Leases by expiry, covering what the ready queue's expired-lease walk sorts by: the expired
-- leases are read from the index alone (the sweep and the valid-lease lookups use it too).
DROP INDEX IF EXISTS tasks_lease_until;
CREATE INDEX tasks_lease_until ON tasks (lease_until, status, priority, created_at, id)
    WHERE lease_until IS NOT NULL;

-- Listing order (list), whatever the status.
CREATE INDEX tasks_order ON tasks (priority DESC, created_at, id);
DROP INDEX IF EXISTS tasks_ready;

-- A session's leases (the hooks' heartbeat and release; leases_of_holder with the actor).
CREATE INDEX tasks_lease_session ON tasks (lease_session, lease_actor)
    WHERE lease_session IS NOT NULL;
DROP INDEX IF EXISTS tasks_lease_holder;

-- Leases by last activity (who, most recently active holder first).
CREATE INDEX tasks_lease_updated ON tasks (updated_at, id) WHERE lease_session IS NOT NULL;

-- One row per item the feed names with a state (see leasehold.feed.ItemState): the feed-only
-- state before the lease overlay, the post holding the number and the collisions (drift).
-- filed_key is the filing time as the reducer prints it (ISO UTC, microseconds), so ordering
-- by (filed_key, item) is the reducer's own order.
CREATE TABLE feed_items (
    item          TEXT PRIMARY KEY,
    state         TEXT NOT NULL,
    owner         TEXT,
    pending       INTEGER NOT NULL DEFAULT 0,
    subject       TEXT NOT NULL,
    post          BIGINT NOT NULL,
    seat          TEXT NOT NULL,
    filed_at      DOUBLE PRECISION NOT NULL,
    filed_key     TEXT COLLATE "C" NOT NULL,
    last_activity DOUBLE PRECISION,
    drift_count   INTEGER NOT NULL DEFAULT 0,
    drift         TEXT NOT NULL DEFAULT '[]'
);

CREATE INDEX feed_items_open ON feed_items (filed_key, item COLLATE "C") WHERE state <> 'DONE';
CREATE INDEX feed_items_order ON feed_items (filed_key, item COLLATE "C");
CREATE INDEX feed_items_drift ON feed_items (item) WHERE drift_count > 0;
CREATE INDEX feed_items_done ON feed_items (item) WHERE state = 'DONE';

-- rebuilt = 0: feed_items must be rebuilt from the posts once (a ledger that had posts before
-- this migration); the first reader does it in a write transaction.
CREATE TABLE feed_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    rebuilt INTEGER NOT NULL
);

INSERT INTO feed_state (id, rebuilt)
SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM feed_posts) THEN 0 ELSE 1 END;
