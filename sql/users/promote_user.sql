-- Make a user an active administrator; with a new password hash ($2), also end every token
-- issued before now.
UPDATE users
SET role = 'admin',
    is_active = true,
    password_hash = coalesce($2, password_hash),
    tokens_valid_after = CASE WHEN $2 IS NULL THEN tokens_valid_after ELSE now() END,
    updated_at = now()
WHERE id = $1
RETURNING id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at
