-- Tamper evidence on every ledger (not only after `leasehold db grant`).
--
-- 1. The chain triggers of events and feed_posts draw a row's id again under the chain lock when
--    the id drawn before it (the column default) is not above the chain's last row: without
--    that, two racing rows of one chain (item-less feed posts, posts on one item, events with no
--    task) could chain against their id order and `leasehold verify` reported a false break.
-- 2. chain_checkpoints_checked (every checkpoint is checked against the table it covers) and
--    lease_shares_explained (every share comes with its `shared` event in the same transaction)
--    are installed here, for every ledger; `leasehold verify` requires them and `leasehold
--    migrate` restores them (sql/postgres/guards.ddl). A ledger where `db grant` installed them
--    already keeps its triggers; the functions are replaced by the ones below.
-- 3. feed_items and feed_state (the feed's reduced state, derived from feed_posts) are written
--    only through the SECURITY DEFINER functions below: an item's row only in a transaction that
--    wrote a post of that item (or renumbered from it), named by its id; the one-time rebuild
--    only while feed_state says it is pending. A role given the ledger by `db grant` has SELECT
--    only on both tables (grants made before this migration lose their writes here), and
--    `leasehold verify` recomputes every item's row from the posts.

CREATE OR REPLACE FUNCTION leasehold_chain_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev text;
    prev_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('leasehold.chain:' || TG_TABLE_SCHEMA
        || '.events:' || coalesce('T' || NEW.task_id, 'N'), 0));
    IF NEW.task_id IS NULL THEN
        SELECT e.id, e.hash INTO prev_id, prev FROM events e WHERE e.task_id IS NULL ORDER BY e.id DESC LIMIT 1;
    ELSE
        SELECT e.id, e.hash INTO prev_id, prev FROM events e WHERE e.task_id = NEW.task_id ORDER BY e.id DESC LIMIT 1;
    END IF;
    -- The id (the column default) was drawn before the chain lock was held: a row of this chain
    -- that took the lock first may have drawn a higher one. Then draw again, under the lock: ids
    -- only grow, so the row chains in id order. Uncontended, the first id stands (no gap).
    IF prev_id IS NOT NULL AND NEW.id <= prev_id THEN
        NEW.id := nextval(pg_get_serial_sequence(quote_ident(TG_TABLE_SCHEMA) || '.events', 'id'));
    END IF;
    NEW.prev_hash := prev;
    NEW.hash := encode(sha256('\x6c65617365686f6c642d636861696e2d7631006576656e747300'::bytea
        || coalesce(decode(prev, 'hex'), '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
        || CASE WHEN NEW.id IS NULL THEN '\x4e'::bytea ELSE '\x49'::bytea || int8send(NEW.id) END
            || CASE WHEN NEW.ts IS NULL THEN '\x4e'::bytea ELSE '\x46'::bytea || float8send(NEW.ts) END
            || CASE WHEN NEW.kind IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.kind, 'UTF8'))) || convert_to(NEW.kind, 'UTF8') END
            || CASE WHEN NEW.task_id IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.task_id, 'UTF8'))) || convert_to(NEW.task_id, 'UTF8') END
            || CASE WHEN NEW.actor IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.actor, 'UTF8'))) || convert_to(NEW.actor, 'UTF8') END
            || CASE WHEN NEW.session IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.session, 'UTF8'))) || convert_to(NEW.session, 'UTF8') END
            || CASE WHEN NEW.fence IS NULL THEN '\x4e'::bytea ELSE '\x49'::bytea || int8send(NEW.fence) END
            || CASE WHEN NEW.details IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.details, 'UTF8'))) || convert_to(NEW.details, 'UTF8') END), 'hex');
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION leasehold_chain_feed_posts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev text;
    prev_id bigint;
BEGIN
    IF NEW.item IS NOT NULL THEN
        PERFORM 1 FROM tasks t WHERE t.id = NEW.item FOR UPDATE;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('leasehold.chain:' || TG_TABLE_SCHEMA
        || '.feed_posts:' || coalesce('T' || NEW.item, 'N'), 0));
    IF NEW.item IS NULL THEN
        SELECT p.id, p.hash INTO prev_id, prev FROM feed_posts p WHERE p.item IS NULL ORDER BY p.id DESC LIMIT 1;
    ELSE
        SELECT p.id, p.hash INTO prev_id, prev FROM feed_posts p WHERE p.item = NEW.item ORDER BY p.id DESC LIMIT 1;
    END IF;
    -- As for events: an id drawn before the chain lock that is not above the chain's last row is
    -- drawn again under the lock (the ledger takes a post's chain locks before its INSERT, so
    -- its posts keep dense ids; a post inserted without them may leave a gap).
    IF prev_id IS NOT NULL AND (NEW.id IS NULL OR NEW.id <= prev_id) THEN
        NEW.id := nextval(pg_get_serial_sequence(quote_ident(TG_TABLE_SCHEMA) || '.feed_posts', 'id'));
    END IF;
    NEW.prev_hash := prev;
    NEW.hash := encode(sha256('\x6c65617365686f6c642d636861696e2d763100666565645f706f73747300'::bytea
        || coalesce(decode(prev, 'hex'), '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
        || CASE WHEN NEW.id IS NULL THEN '\x4e'::bytea ELSE '\x49'::bytea || int8send(NEW.id) END
            || CASE WHEN NEW.ts IS NULL THEN '\x4e'::bytea ELSE '\x46'::bytea || float8send(NEW.ts) END
            || CASE WHEN NEW.recorded_at IS NULL THEN '\x4e'::bytea ELSE '\x46'::bytea || float8send(NEW.recorded_at) END
            || CASE WHEN NEW.seat IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.seat, 'UTF8'))) || convert_to(NEW.seat, 'UTF8') END
            || CASE WHEN NEW.actor IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.actor, 'UTF8'))) || convert_to(NEW.actor, 'UTF8') END
            || CASE WHEN NEW.session IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.session, 'UTF8'))) || convert_to(NEW.session, 'UTF8') END
            || CASE WHEN NEW.kind IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.kind, 'UTF8'))) || convert_to(NEW.kind, 'UTF8') END
            || CASE WHEN NEW.item IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.item, 'UTF8'))) || convert_to(NEW.item, 'UTF8') END
            || CASE WHEN NEW.subject IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.subject, 'UTF8'))) || convert_to(NEW.subject, 'UTF8') END
            || CASE WHEN NEW.body IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.body, 'UTF8'))) || convert_to(NEW.body, 'UTF8') END
            || CASE WHEN NEW.refs IS NULL THEN '\x4e'::bytea ELSE '\x49'::bytea || int8send(NEW.refs) END
            || CASE WHEN NEW.flags IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.flags, 'UTF8'))) || convert_to(NEW.flags, 'UTF8') END
            || CASE WHEN NEW.origin IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.origin, 'UTF8'))) || convert_to(NEW.origin, 'UTF8') END
            || CASE WHEN NEW.proof_kind IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.proof_kind, 'UTF8'))) || convert_to(NEW.proof_kind, 'UTF8') END
            || CASE WHEN NEW.proof IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.proof, 'UTF8'))) || convert_to(NEW.proof, 'UTF8') END
            || CASE WHEN NEW.import_key IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.import_key, 'UTF8'))) || convert_to(NEW.import_key, 'UTF8') END
            || CASE WHEN NEW.details IS NULL THEN '\x4e'::bytea ELSE '\x54'::bytea || int4send(length(convert_to(NEW.details, 'UTF8'))) || convert_to(NEW.details, 'UTF8') END), 'hex');
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION leasehold_checkpoint_checked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_upto bigint;
    last_hash text;
    n bigint;
    top bigint;
    unhashed bigint;
    d bytea;
BEGIN
    IF NEW.tbl NOT IN ('events', 'feed_posts', 'reservations', 'namespaces') THEN
        RAISE EXCEPTION 'checkpoint of %: not a chained table', NEW.tbl USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.kind <> 'checkpoint' THEN
        RAISE EXCEPTION 'checkpoint of %: only migration 0009 takes a genesis checkpoint', NEW.tbl
            USING ERRCODE = 'restrict_violation';
    END IF;
    PERFORM leasehold_checkpoint_lock(NEW.tbl);
    PERFORM pg_advisory_xact_lock(hashtextextended('leasehold.checkpoint:' || TG_TABLE_SCHEMA
        || '.' || NEW.tbl, 0));
    SELECT c.upto_id, c.hash INTO last_upto, last_hash FROM chain_checkpoints c
    WHERE c.tbl = NEW.tbl ORDER BY c.id DESC LIMIT 1;
    IF NEW.from_id <> coalesce(last_upto, 0) OR NEW.prev_hash IS DISTINCT FROM last_hash THEN
        RAISE EXCEPTION 'checkpoint of % does not follow its last checkpoint (upto_id %)', NEW.tbl, last_upto
            USING ERRCODE = 'restrict_violation';
    END IF;
    EXECUTE format('SELECT count(*), max(id), count(*) FILTER (WHERE hash IS NULL), '
        'sha256(convert_to(''leasehold-range-v1'', ''UTF8'') || ''\x00''::bytea || '
        'coalesce(string_agg(int8send(id) || decode(hash, ''hex''), ''''::bytea ORDER BY id), ''''::bytea)) '
        'FROM %I WHERE id > $1', NEW.tbl) INTO n, top, unhashed, d USING NEW.from_id;
    IF unhashed > 0 THEN
        RAISE EXCEPTION 'checkpoint of %: % rows after id % have no hash (run leasehold verify)', NEW.tbl, unhashed, NEW.from_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.upto_id <> coalesce(top, NEW.from_id) OR NEW.row_count <> n OR NEW.digest <> encode(d, 'hex')
       OR NEW.hash <> encode(sha256(convert_to('leasehold-checkpoint-v1', 'UTF8') || '\x00'::bytea
            || convert_to(NEW.tbl, 'UTF8') || '\x00'::bytea
            || coalesce(decode(NEW.prev_hash, 'hex'), '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
            || int8send(NEW.from_id) || int8send(NEW.upto_id) || int8send(NEW.row_count)
            || decode(NEW.digest, 'hex') || convert_to(NEW.kind, 'UTF8')), 'hex') THEN
        RAISE EXCEPTION 'checkpoint of % does not match the table: it must cover ids % to % (% rows) with their digest and hash', NEW.tbl, NEW.from_id, coalesce(top, NEW.from_id), n
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                   WHERE t.tgname = 'chain_checkpoints_checked' AND c.relname = 'chain_checkpoints'
                     AND c.relnamespace = current_schema()::regnamespace) THEN
        CREATE TRIGGER chain_checkpoints_checked BEFORE INSERT ON chain_checkpoints
            FOR EACH ROW EXECUTE FUNCTION leasehold_checkpoint_checked();
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION leasehold_shares_explained() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM events e
    WHERE e.task_id = NEW.task_id AND e.kind = 'shared' AND e.fence = NEW.fence
      AND e.actor || ':' || e.session = NEW.shared_by
      AND e.xmin::text::bigint = pg_current_xact_id()::text::bigint % 4294967296
      AND (e.details::jsonb -> 'sessions') ? NEW.session;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'share of task % with % written without its shared event in the same transaction: only the ledger''s operations may share a lease', NEW.task_id, NEW.session
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NULL;
END;
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                   WHERE t.tgname = 'lease_shares_explained' AND c.relname = 'lease_shares'
                     AND c.relnamespace = current_schema()::regnamespace) THEN
        CREATE CONSTRAINT TRIGGER lease_shares_explained AFTER INSERT ON lease_shares
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION leasehold_shares_explained();
    END IF;
END;
$$;

-- The feed's reduced state. p_post: the post of this transaction that names the item (or
-- renumbers from it); NULL only during the one-time rebuild. p_state NULL removes the item.
CREATE FUNCTION leasehold_feed_item_put(p_post bigint, p_item text, p_state text, p_owner text,
    p_pending integer, p_subject text, p_lead bigint, p_seat text, p_filed_at double precision,
    p_filed_key text, p_last_activity double precision, p_drift_count integer, p_drift text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM feed_state s WHERE s.id = 1 AND s.rebuilt = 0) THEN
        PERFORM 1 FROM feed_posts p WHERE p.id = p_post
          AND p.xmin::text::bigint = pg_current_xact_id()::text::bigint % 4294967296
          AND (p.item = p_item OR p.details::jsonb ->> 'renumbered_from' = p_item);
        IF NOT FOUND THEN
            RAISE EXCEPTION 'feed item % written without a post of it in the same transaction: only the ledger''s feed operations may change the feed''s state', p_item
                USING ERRCODE = 'restrict_violation';
        END IF;
    END IF;
    IF p_state IS NULL THEN
        DELETE FROM feed_items WHERE item = p_item;
    ELSE
        INSERT INTO feed_items (item, state, owner, pending, subject, post, seat, filed_at,
                                filed_key, last_activity, drift_count, drift)
        VALUES (p_item, p_state, p_owner, p_pending, p_subject, p_lead, p_seat, p_filed_at,
                p_filed_key, p_last_activity, p_drift_count, p_drift)
        ON CONFLICT (item) DO UPDATE
        SET state = excluded.state, owner = excluded.owner, pending = excluded.pending,
            subject = excluded.subject, post = excluded.post, seat = excluded.seat,
            filed_at = excluded.filed_at, filed_key = excluded.filed_key,
            last_activity = excluded.last_activity, drift_count = excluded.drift_count,
            drift = excluded.drift;
    END IF;
END;
$$;

-- The one-time rebuild (a ledger that had posts before migration 0007): empty the table while
-- the rebuild is pending, then mark it done (a latch: it never goes back to pending).
CREATE FUNCTION leasehold_feed_items_clear() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM feed_state s WHERE s.id = 1 AND s.rebuilt = 0) THEN
        RAISE EXCEPTION 'feed_items is rebuilt only once, while feed_state says it is pending'
            USING ERRCODE = 'restrict_violation';
    END IF;
    DELETE FROM feed_items;
END;
$$;

CREATE FUNCTION leasehold_feed_state_rebuilt() RETURNS void LANGUAGE sql SECURITY DEFINER AS $$
    UPDATE feed_state SET rebuilt = 1 WHERE id = 1;
$$;

-- Every function above reads tables by name: pin it to the ledger's schema, pg_temp last (a
-- temporary table of the caller's must not answer), and the SECURITY DEFINER ones above all.
-- Then take the feed state's writes from every role but the owner (`db grant` gives SELECT).
DO $$
DECLARE
    fn text;
    who text;
BEGIN
    FOR fn IN SELECT unnest(ARRAY['leasehold_chain_events()', 'leasehold_chain_feed_posts()',
                                  'leasehold_checkpoint_checked()', 'leasehold_shares_explained()',
                                  'leasehold_feed_items_clear()', 'leasehold_feed_state_rebuilt()',
                                  'leasehold_feed_item_put(bigint, text, text, text, integer, text, '
                                  'bigint, text, double precision, text, double precision, integer, text)'])
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', fn, current_schema());
    END LOOP;
    FOR who IN SELECT DISTINCT g.grantee FROM information_schema.role_table_grants g
               JOIN pg_tables t ON t.schemaname = g.table_schema AND t.tablename = g.table_name
               WHERE g.table_schema = current_schema() AND g.table_name IN ('feed_items', 'feed_state')
                 AND g.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
                 AND g.grantee <> t.tableowner AND g.grantee <> 'PUBLIC'
    LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON feed_items, feed_state FROM %I', who);
    END LOOP;
END;
$$;
