-- Logout: end the caller's refresh family that issued access token $2, and the family of
-- refresh token hash $3 when one was presented: their refresh tokens are revoked, and every
-- access token issued in them (each lives $4 seconds from its row's issued_at) is recorded as
-- revoked, so the whole session stops working at once on every worker and host.
WITH families AS (
    SELECT DISTINCT family_id
    FROM refresh_tokens
    WHERE user_id = $1 AND (access_jti = $2 OR token_hash = $3)
), ended AS (
    UPDATE refresh_tokens
    SET revoked_at = now()
    WHERE user_id = $1
      AND revoked_at IS NULL
      AND family_id IN (SELECT family_id FROM families)
)
INSERT INTO revoked_access_tokens (jti, user_id, expires_at)
SELECT r.access_jti, r.user_id, r.issued_at + make_interval(secs => $4::int)
FROM refresh_tokens AS r
WHERE r.user_id = $1
  AND r.family_id IN (SELECT family_id FROM families)
  AND r.access_jti IS NOT NULL
  AND r.issued_at + make_interval(secs => $4::int) > now()
ON CONFLICT (jti) DO NOTHING
