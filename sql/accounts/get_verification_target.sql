-- The caller's address and whether it is proven, for a new verification mail.
SELECT id, email, email_verified, provider, is_active
FROM users
WHERE id = $1
