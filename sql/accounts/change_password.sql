-- A new password; access tokens issued before $4 (epoch seconds, the app's clock, which also
-- stamps `iat`) stop working. Only if the hash is still the one the current password matched.
UPDATE users
SET password_hash = $3,
    tokens_valid_after = to_timestamp($4),
    updated_at = now()
WHERE id = $1 AND password_hash = $2
