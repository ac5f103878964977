-- Logout: end the caller's refresh family that issued access token $2, and the family of
-- refresh token hash $3 when one was presented.
UPDATE refresh_tokens
SET revoked_at = now()
WHERE user_id = $1
  AND revoked_at IS NULL
  AND family_id IN (
      SELECT family_id
      FROM refresh_tokens
      WHERE user_id = $1 AND (access_jti = $2 OR token_hash = $3)
  )
