-- A user's live sessions (refresh-token families with an unspent, unexpired token), newest
-- first. The newest row of a family is its last refresh (or the login), and holds the address
-- and user agent last seen; `current` marks the family that issued access token $2.
SELECT r.family_id AS id,
       min(r.issued_at) AS created_at,
       max(r.issued_at) AS last_used_at,
       max(r.expires_at) AS expires_at,
       (array_agg(r.ip ORDER BY r.issued_at DESC))[1] AS ip,
       (array_agg(r.user_agent ORDER BY r.issued_at DESC))[1] AS user_agent,
       u.provider,
       coalesce(bool_or(r.access_jti = $2::uuid), false) AS current
FROM refresh_tokens AS r
JOIN users AS u ON u.id = r.user_id
WHERE r.user_id = $1
GROUP BY r.family_id, u.provider
HAVING bool_or(r.revoked_at IS NULL AND r.expires_at > now())
ORDER BY created_at DESC, id DESC
