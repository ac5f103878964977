-- The first refresh token of a new session; the family ends $6 days from now, however often it rotates.
INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, access_jti, user_agent, ip)
VALUES ($1, gen_random_uuid(), $2, now() + make_interval(days => $6::int), $3, $4, $5)
RETURNING id
