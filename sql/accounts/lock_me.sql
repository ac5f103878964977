-- The caller's row, locked until the end of a PATCH /me transaction, and its version (xmin) for
-- If-Match: compared while the lock is held, so no other change can slip in between. Taken first,
-- in the mode of lock_user_sessions.sql (the lock order of docs/reliability.md).
SELECT xmin::text AS version
FROM users
WHERE id = $1
FOR NO KEY UPDATE
