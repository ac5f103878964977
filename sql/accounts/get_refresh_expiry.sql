-- When the family of a refresh token ends: the refresh cookie lives exactly that long.
SELECT expires_at
FROM refresh_tokens
WHERE token_hash = $1
