-- The account an open challenge belongs to (unspent, unexpired, two-factor still on), with the
-- email its attempts are counted under and its authenticator.
SELECT u.id AS user_id, u.email, u.is_active, t.secret_ciphertext, t.last_step
FROM mfa_challenges AS c
JOIN users AS u ON u.id = c.user_id
JOIN totp_credentials AS t ON t.user_id = c.user_id AND t.confirmed_at IS NOT NULL
WHERE c.token_hash = $1 AND c.used_at IS NULL AND c.expires_at > now()
