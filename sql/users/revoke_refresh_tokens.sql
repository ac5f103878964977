-- End every refresh-token family of a user: nothing they hold can mint a new access token.
UPDATE refresh_tokens
SET revoked_at = now()
WHERE user_id = $1 AND revoked_at IS NULL
