-- One user, locked until the end of the transaction that deletes it: FOR UPDATE, the lock the
-- DELETE itself takes, taken first so that nothing else of this user is locked before it.
SELECT id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at
FROM users
WHERE id = $1
FOR UPDATE
