-- Immutability of namespaces, reservations and the feed, completed (0003 stays as it was):
-- - TRUNCATE skips row triggers, so it gets statement triggers that refuse it, as on events;
-- - the refusals carry SQLSTATE restrict_violation (an integrity error, like events'), so the
--   store reports them as a refused change (exit 1), not as a store outage.

CREATE OR REPLACE FUNCTION leasehold_namespaces_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'namespaces are immutable: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE OR REPLACE FUNCTION leasehold_feed_posts_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'feed_posts is append-only: % is not allowed (file an amendment)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE OR REPLACE FUNCTION leasehold_reservations_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'reservations are never deleted: a number is never reused'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.ticket_id IS DISTINCT FROM OLD.ticket_id OR NEW.prefix IS DISTINCT FROM OLD.prefix
       OR NEW.period IS DISTINCT FROM OLD.period OR NEW.seq IS DISTINCT FROM OLD.seq
       OR NEW.actor IS DISTINCT FROM OLD.actor OR NEW.session IS DISTINCT FROM OLD.session
       OR NEW.reserved_at IS DISTINCT FROM OLD.reserved_at
       OR OLD.status <> 'reserved' OR NEW.status <> 'abandoned' THEN
        RAISE EXCEPTION 'reservations never change number or holder: only reserved -> abandoned is allowed'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER namespaces_no_truncate BEFORE TRUNCATE ON namespaces
FOR EACH STATEMENT EXECUTE FUNCTION leasehold_namespaces_immutable();

CREATE TRIGGER reservations_no_truncate BEFORE TRUNCATE ON reservations
FOR EACH STATEMENT EXECUTE FUNCTION leasehold_reservations_guard();

CREATE TRIGGER feed_posts_no_truncate BEFORE TRUNCATE ON feed_posts
FOR EACH STATEMENT EXECUTE FUNCTION leasehold_feed_posts_append_only();
