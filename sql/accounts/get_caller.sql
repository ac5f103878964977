-- The user behind a verified token, and whether that token was revoked (logout).
SELECT u.id,
       u.email,
       u.role,
       u.provider,
       u.is_active,
       extract(epoch FROM u.tokens_valid_after)::float8 AS tokens_valid_after,
       EXISTS (SELECT 1 FROM revoked_access_tokens r WHERE r.jti = $2::uuid) AS revoked
FROM users u
WHERE u.id = $1
