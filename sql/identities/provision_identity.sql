-- Claim (provider, subject) first, then create its user: a request that loses the race to a
-- concurrent first sign-in inserts nothing at all and returns no row. $5: the provider's own
-- claim that the address is verified.
WITH claimed AS (
    INSERT INTO identities (provider, subject, user_id, email)
    VALUES ($1, $2, gen_random_uuid(), $3)
    ON CONFLICT (provider, subject) DO NOTHING
    RETURNING user_id
)
INSERT INTO users (id, email, provider, full_name, email_verified)
SELECT user_id, $3, $1, $4::text, $5::boolean
FROM claimed
RETURNING id
