-- One user as the API shows it.
SELECT id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at
FROM users
WHERE id = $1
