-- Reuse of a spent token was detected: end every token of family $1, refresh and access alike
-- (each access token lives $2 seconds from its row's issued_at), on every worker and host.
WITH ended AS (
    UPDATE refresh_tokens
    SET revoked_at = now()
    WHERE family_id = $1 AND revoked_at IS NULL
)
INSERT INTO revoked_access_tokens (jti, user_id, expires_at)
SELECT r.access_jti, r.user_id, r.issued_at + make_interval(secs => $2::int)
FROM refresh_tokens AS r
WHERE r.family_id = $1
  AND r.access_jti IS NOT NULL
  AND r.issued_at + make_interval(secs => $2::int) > now()
ON CONFLICT (jti) DO NOTHING
