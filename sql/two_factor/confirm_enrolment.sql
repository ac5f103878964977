-- Turn two-factor on with the first accepted code (time step $2); no row when it is not pending
-- or that step was already used.
UPDATE totp_credentials
SET confirmed_at = now(), last_step = $2
WHERE user_id = $1 AND confirmed_at IS NULL AND last_step < $2
RETURNING user_id
