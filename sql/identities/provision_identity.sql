-- Claim (provider, subject) first, then create its user: a request that loses the race to a
-- concurrent first sign-in inserts nothing at all and returns no row.
WITH claimed AS (
    INSERT INTO identities (provider, subject, user_id, email)
    VALUES ($1, $2, gen_random_uuid(), $3)
    ON CONFLICT (provider, subject) DO NOTHING
    RETURNING user_id
)
INSERT INTO users (id, email, provider, full_name)
SELECT user_id, $3, $1, $4::text
FROM claimed
RETURNING id
