-- One user, locked until the end of the transaction that is about to change it. FOR NO KEY
-- UPDATE is the sessions lock of sql/sessions/lock_user_sessions.sql (a change here may end
-- sessions), without blocking the foreign-key checks of the user's own inserts.
SELECT id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at
FROM users
WHERE id = $1
FOR NO KEY UPDATE
