-- The caller's authenticator: its encrypted secret, whether it is confirmed, the last step used.
SELECT secret_ciphertext, confirmed_at IS NOT NULL AS confirmed, last_step
FROM totp_credentials
WHERE user_id = $1
