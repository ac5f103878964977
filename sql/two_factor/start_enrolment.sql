-- A new pending authenticator for $1 (replacing a pending one, with a new enrolment_id); no row
-- when two-factor is already on, which only DELETE /api/auth/2fa/totp turns off.
INSERT INTO totp_credentials AS t (user_id, secret_ciphertext)
VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE
SET secret_ciphertext = excluded.secret_ciphertext,
    enrolment_id = gen_random_uuid(),
    last_step = -1,
    created_at = now()
WHERE t.confirmed_at IS NULL
RETURNING user_id
