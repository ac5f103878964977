-- Why a refresh token was refused: spent by rotation (reuse), revoked, expired; none of these
-- means its user is inactive.
SELECT r.family_id,
       r.user_id,
       r.replaced_by IS NOT NULL AS rotated,
       r.revoked_at IS NOT NULL AS revoked,
       r.expires_at <= now() AS expired
FROM refresh_tokens AS r
WHERE r.token_hash = $1
