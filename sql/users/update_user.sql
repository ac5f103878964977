-- Write a user's new profile, role and active flag. With $5, every access token issued so far
-- stops working (demotion, deactivation).
UPDATE users
SET full_name = $2,
    role = $3,
    is_active = $4,
    tokens_valid_after = CASE WHEN $5::boolean THEN now() ELSE tokens_valid_after END,
    updated_at = now()
WHERE id = $1
RETURNING id, email, full_name, role, is_active, provider, created_at, updated_at
