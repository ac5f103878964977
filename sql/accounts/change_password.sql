-- A new password; access tokens issued before $4 (epoch microseconds, from the app's clock that
-- also stamps tokens: service.security.tokens.now_microseconds) stop working. Only if the hash is
-- still the one the current password matched.
UPDATE users
SET password_hash = $3,
    tokens_valid_after = timestamptz 'epoch' + $4::bigint * interval '1 microsecond',
    updated_at = now()
WHERE id = $1 AND password_hash = $2
