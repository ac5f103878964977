-- The caller's email and password hash, to check the current password before a change.
SELECT email, password_hash
FROM users
WHERE id = $1
