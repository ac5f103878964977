-- The first statement of a login's session transaction: lock the user as every change to their
-- sessions does (lock_user_sessions.sql), and re-read what the password check relied on, since a
-- deactivation or a password change may have committed while argon2 ran. No row: deleted.
-- mfa_enabled: the password alone does not sign in (service/two_factor/).
SELECT is_active,
       password_hash = $2 AS same_password,
       EXISTS (
           SELECT 1 FROM totp_credentials t WHERE t.user_id = users.id AND t.confirmed_at IS NOT NULL
       ) AS mfa_enabled
FROM users
WHERE id = $1
FOR NO KEY UPDATE
