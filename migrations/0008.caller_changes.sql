-- Caller-cache invalidation: every committed change that can alter an authenticated request is
-- announced on the channel `caller_changes`, to each worker's LISTEN connection (service/security/
-- caller_listener.py). NOTIFY is transactional: a rolled-back change is never announced.
-- Payloads: 'u:<user id>', 'i:<provider>:<subject>', 't:<access-token jti>', '*' (everything).
-- depends: 0006.identities

CREATE FUNCTION notify_caller_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('caller_changes', '*');
    ELSIF TG_TABLE_NAME = 'users' THEN
        PERFORM pg_notify('caller_changes', 'u:' || OLD.id::text);
    ELSIF TG_TABLE_NAME = 'identities' THEN
        PERFORM pg_notify('caller_changes', 'i:' || OLD.provider || ':' || OLD.subject);
    ELSIF TG_TABLE_NAME = 'revoked_access_tokens' THEN
        PERFORM pg_notify('caller_changes', 't:' || NEW.jti::text);
    END IF;
    RETURN NULL;
END
$$;

-- Only the columns authentication reads: a profile edit (full_name) or a new password hash alone
-- announces nothing. A password change moves tokens_valid_after, which is announced.
CREATE TRIGGER users_caller_change
AFTER UPDATE ON users
FOR EACH ROW
WHEN ((OLD.id, OLD.email, OLD.provider, OLD.role, OLD.is_active, OLD.tokens_valid_after)
      IS DISTINCT FROM (NEW.id, NEW.email, NEW.provider, NEW.role, NEW.is_active, NEW.tokens_valid_after))
EXECUTE FUNCTION notify_caller_change();

CREATE TRIGGER users_caller_delete
AFTER DELETE ON users
FOR EACH ROW EXECUTE FUNCTION notify_caller_change();

CREATE TRIGGER identities_caller_change
AFTER UPDATE OR DELETE ON identities
FOR EACH ROW EXECUTE FUNCTION notify_caller_change();

-- Logout and every other early end of an access token.
CREATE TRIGGER revoked_access_tokens_caller_change
AFTER INSERT ON revoked_access_tokens
FOR EACH ROW EXECUTE FUNCTION notify_caller_change();

CREATE TRIGGER users_caller_truncate
AFTER TRUNCATE ON users
FOR EACH STATEMENT EXECUTE FUNCTION notify_caller_change();

CREATE TRIGGER identities_caller_truncate
AFTER TRUNCATE ON identities
FOR EACH STATEMENT EXECUTE FUNCTION notify_caller_change();
