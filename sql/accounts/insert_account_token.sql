-- A one-time token ($1: its SHA-256) for user $2, for $3 (verify_email, reset_password), sent to
-- address $4, valid for $5 seconds.
INSERT INTO account_tokens (token_hash, user_id, purpose, email, expires_at)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::int))
