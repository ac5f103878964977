-- Store a stronger hash of the same password (the argon2 parameters changed).
UPDATE users
SET password_hash = $2
WHERE id = $1
