-- Tamper evidence on every ledger (see the PostgreSQL migration of the same number): a
-- checkpoint must match the table it covers (follow its table's last checkpoint, end at the
-- highest id, count the rows after the previous one; `leasehold verify` recomputes the digest
-- and hash, which SQLite cannot), and a share must follow its `shared` event: the task's latest
-- event, by the share's holder at its fence, naming its session (the ledger appends the event,
-- then the shares, in one BEGIN IMMEDIATE transaction). `leasehold verify` requires both
-- triggers and `leasehold migrate` restores them (sql/sqlite/guards.ddl: keep in step).

CREATE TRIGGER chain_checkpoints_checked BEFORE INSERT ON chain_checkpoints
WHEN NEW.tbl NOT IN ('events', 'feed_posts', 'reservations', 'namespaces')
  OR NEW.kind IS NOT (CASE WHEN EXISTS (SELECT 1 FROM chain_checkpoints c WHERE c.tbl = NEW.tbl)
                      THEN 'checkpoint' ELSE 'genesis' END)
  OR NEW.from_id IS NOT coalesce((SELECT c.upto_id FROM chain_checkpoints c WHERE c.tbl = NEW.tbl
                                  ORDER BY c.id DESC LIMIT 1), 0)
  OR NEW.prev_hash IS NOT (SELECT c.hash FROM chain_checkpoints c WHERE c.tbl = NEW.tbl
                           ORDER BY c.id DESC LIMIT 1)
  OR NEW.upto_id IS NOT coalesce(CASE NEW.tbl
       WHEN 'events' THEN (SELECT max(id) FROM events WHERE id > NEW.from_id)
       WHEN 'feed_posts' THEN (SELECT max(id) FROM feed_posts WHERE id > NEW.from_id)
       WHEN 'reservations' THEN (SELECT max(id) FROM reservations WHERE id > NEW.from_id)
       ELSE (SELECT max(rowid) FROM namespaces WHERE rowid > NEW.from_id) END, NEW.from_id)
  OR NEW.row_count IS NOT CASE NEW.tbl
       WHEN 'events' THEN (SELECT count(*) FROM events WHERE id > NEW.from_id)
       WHEN 'feed_posts' THEN (SELECT count(*) FROM feed_posts WHERE id > NEW.from_id)
       WHEN 'reservations' THEN (SELECT count(*) FROM reservations WHERE id > NEW.from_id)
       ELSE (SELECT count(*) FROM namespaces WHERE rowid > NEW.from_id) END
BEGIN
    SELECT RAISE(ABORT, 'checkpoint does not match the table it covers: it must follow its table''s last checkpoint and count every row after it');
END;

CREATE TRIGGER lease_shares_explained BEFORE INSERT ON lease_shares
WHEN NOT EXISTS (SELECT 1 FROM events e
    WHERE e.id = (SELECT max(x.id) FROM events x WHERE x.task_id = NEW.task_id)
      AND e.kind = 'shared' AND e.fence = NEW.fence AND e.actor || ':' || e.session = NEW.shared_by
      AND EXISTS (SELECT 1 FROM json_each(e.details, '$.sessions') j WHERE j.value = NEW.session))
BEGIN
    SELECT RAISE(ABORT, 'a share must follow its shared event (task, fence, holder, session): only the ledger''s operations may share a lease');
END;
