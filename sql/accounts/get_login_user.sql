-- The local account a login names, by its lowercased email.
SELECT id, password_hash, is_active
FROM users
WHERE lower(email) = $1 AND provider = 'local'
