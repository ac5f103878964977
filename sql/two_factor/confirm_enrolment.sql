-- Turn two-factor on with the first accepted code (time step $2) of enrolment $3, the one whose
-- secret the code was checked against; no row when it is not pending, that step was already used,
-- or an enrolment replaced the secret in the meantime (enrolment_id changed; a key rotation
-- rewrites the ciphertext but not enrolment_id). PostgreSQL re-checks the condition on the row
-- version a concurrent UPDATE committed.
UPDATE totp_credentials
SET confirmed_at = now(), last_step = $2
WHERE user_id = $1 AND confirmed_at IS NULL AND last_step < $2 AND enrolment_id = $3
RETURNING user_id
