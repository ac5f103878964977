-- Spend a live refresh token of an active user. The conditional update is the lock: of two
-- concurrent refreshes of one token, only the first gets a row back.
UPDATE refresh_tokens AS r
SET revoked_at = now()
FROM users AS u
WHERE r.token_hash = $1
  AND r.revoked_at IS NULL
  AND r.expires_at > now()
  AND u.id = r.user_id
  AND u.is_active
RETURNING r.id, r.family_id, r.user_id
