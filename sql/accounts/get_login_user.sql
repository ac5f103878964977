-- The local account a login names, by its lowercased email.
SELECT id, password_hash, is_active, email_verified
FROM users
WHERE lower(email) = $1 AND provider = 'local'
