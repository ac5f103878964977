-- End live sessions of user $1: only family $2 when given, and never the family that issued
-- access token $3 when given. Their refresh tokens are revoked, and the access tokens issued
-- in them (each lives $4 seconds from its row's issued_at) are recorded as revoked, so they
-- stop working at once everywhere. Returns the ids of the sessions that ended.
WITH ended AS (
    UPDATE refresh_tokens
    SET revoked_at = now()
    WHERE user_id = $1
      AND revoked_at IS NULL
      AND expires_at > now()
      AND ($2::uuid IS NULL OR family_id = $2::uuid)
      AND ($3::uuid IS NULL OR family_id NOT IN (
          SELECT family_id FROM refresh_tokens WHERE user_id = $1 AND access_jti = $3::uuid
      ))
    RETURNING family_id
), revoked_access AS (
    INSERT INTO revoked_access_tokens (jti, user_id, expires_at)
    SELECT r.access_jti, r.user_id, r.issued_at + make_interval(secs => $4::int)
    FROM refresh_tokens AS r
    WHERE r.family_id IN (SELECT family_id FROM ended)
      AND r.access_jti IS NOT NULL
      AND r.issued_at + make_interval(secs => $4::int) > now()
    ON CONFLICT (jti) DO NOTHING
)
SELECT DISTINCT family_id AS id FROM ended
