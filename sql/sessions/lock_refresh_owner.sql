-- A refresh's first statement: share-lock the user who owns refresh token hash $1 (see
-- lock_user_sessions.sql). Refreshes of one user do not block each other; a revocation does.
SELECT u.id
FROM refresh_tokens AS r
JOIN users AS u ON u.id = r.user_id
WHERE r.token_hash = $1
FOR SHARE OF u
