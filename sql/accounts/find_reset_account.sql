-- The active local account with this lowercased email, for a password-reset request.
SELECT id, email
FROM users
WHERE lower(email) = $1 AND provider = 'local' AND is_active
