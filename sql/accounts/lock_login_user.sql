-- The first statement of a login's session transaction: lock the user as every change to their
-- sessions does (lock_user_sessions.sql), and re-read what the password check relied on, since a
-- deactivation or a password change may have committed while argon2 ran. No row: deleted.
SELECT is_active, password_hash = $2 AS same_password
FROM users
WHERE id = $1
FOR NO KEY UPDATE
