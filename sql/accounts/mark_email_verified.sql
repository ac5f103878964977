-- The address a verification link was sent to is proven, if it is still the account's address.
UPDATE users
SET email_verified = true, updated_at = now()
WHERE id = $1 AND lower(email) = lower($2) AND is_active
RETURNING id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at
