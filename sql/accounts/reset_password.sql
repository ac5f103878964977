-- A password set through a reset link: access tokens issued before $3 (epoch microseconds, the
-- clock that stamps tokens: service.security.tokens.now_microseconds) stop working. Following a
-- link sent to $4 also proves that address, if it is still the account's.
UPDATE users
SET password_hash = $2,
    tokens_valid_after = timestamptz 'epoch' + $3::bigint * interval '1 microsecond',
    email_verified = email_verified OR lower(email) = lower($4),
    updated_at = now()
WHERE id = $1 AND provider = 'local' AND is_active
RETURNING email
