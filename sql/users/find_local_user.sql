-- The local account holding a (lowercased) email, locked for the create-admin command.
SELECT id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at
FROM users
WHERE lower(email) = $1 AND provider = 'local'
FOR UPDATE
