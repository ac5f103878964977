-- The next refresh token of a family: same user, same absolute end.
INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, access_jti, user_agent, ip)
SELECT $2, family_id, user_id, expires_at, $3, $4, $5
FROM refresh_tokens
WHERE id = $1
RETURNING id
