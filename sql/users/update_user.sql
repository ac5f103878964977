-- Write a user's new profile, role and active flag. With $5, every access token issued so far
-- stops working (demotion, deactivation): clock_timestamp(), not the transaction start, since the
-- lock taken before may have waited for a refresh that issued one.
UPDATE users
SET full_name = $2,
    role = $3,
    is_active = $4,
    tokens_valid_after = CASE WHEN $5::boolean THEN clock_timestamp() ELSE tokens_valid_after END,
    updated_at = now()
WHERE id = $1
RETURNING id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at
