-- The caller's own profile fields; $2 says whether full_name was sent at all.
UPDATE users
SET full_name = CASE WHEN $2 THEN $3 ELSE full_name END,
    updated_at = now()
WHERE id = $1
RETURNING id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at, xmin::text AS version
