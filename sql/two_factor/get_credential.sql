-- The caller's authenticator: its encrypted secret, whether it is confirmed, the last step used,
-- and which enrolment stored the secret.
SELECT secret_ciphertext, confirmed_at IS NOT NULL AS confirmed, last_step, enrolment_id
FROM totp_credentials
WHERE user_id = $1
