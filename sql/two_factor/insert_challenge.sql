-- A correct password of an account with two-factor on: a challenge valid for $3 seconds.
INSERT INTO mfa_challenges (token_hash, user_id, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3::int))
