DROP TRIGGER IF EXISTS identities_caller_truncate ON identities;
DROP TRIGGER IF EXISTS users_caller_truncate ON users;
DROP TRIGGER IF EXISTS revoked_access_tokens_caller_change ON revoked_access_tokens;
DROP TRIGGER IF EXISTS identities_caller_change ON identities;
DROP TRIGGER IF EXISTS users_caller_delete ON users;
DROP TRIGGER IF EXISTS users_caller_change ON users;
DROP FUNCTION IF EXISTS notify_caller_change();
