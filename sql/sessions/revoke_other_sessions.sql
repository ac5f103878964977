-- After a password change: end every refresh family of the user except the one that issued
-- access token $2 (the session that made the change).
UPDATE refresh_tokens
SET revoked_at = now()
WHERE user_id = $1
  AND revoked_at IS NULL
  AND family_id NOT IN (
      SELECT family_id
      FROM refresh_tokens
      WHERE user_id = $1 AND access_jti = $2
  )
