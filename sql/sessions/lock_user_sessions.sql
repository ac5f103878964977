-- Serialise every change to a user's sessions: whoever ends sessions (logout, password change,
-- deactivation, demotion, reuse detection, ending a session) takes this lock first, and a refresh
-- takes lock_refresh_owner.sql (FOR SHARE of the same row) before it spends its token. So a
-- revocation waits for a rotation in flight and then sees its successor, and a rotation that
-- waited for a revocation then finds its token revoked. Lock order: users row, then
-- refresh_tokens rows (docs/reliability.md). No row: the user does not exist.
SELECT id
FROM users
WHERE id = $1
FOR NO KEY UPDATE
