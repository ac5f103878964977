-- The first statement of a verification's session transaction: lock the user as a login does
-- (lock_login_user.sql) and re-read whether the account is still active.
SELECT is_active, email
FROM users
WHERE id = $1
FOR NO KEY UPDATE
